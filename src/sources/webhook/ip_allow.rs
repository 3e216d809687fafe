//! Source address allow-lists: addresses and CIDR ranges. Only the peer
//! address of the connection is used; forwarded-for headers can be forged.

use std::net::IpAddr;

/// Addresses allowed to call; empty allows everyone.
#[derive(Debug, Clone, Default)]
pub struct IpAllowList(Vec<(IpAddr, u8)>);

impl IpAllowList {
    /// Parses `10.0.0.0/8`, `192.168.1.7`, `::1`, ...
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for e in entries {
            let (addr, len) = match e.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (e.as_str(), None),
            };
            let ip: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("`{e}` is not an IP address or CIDR range"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(l) => l
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| format!("`{e}` has a bad prefix length"))?,
                None => max,
            };
            out.push((ip, len));
        }
        Ok(IpAllowList(out))
    }

    /// Whether `peer` may call (an unknown peer only when the list is empty).
    pub fn admits(&self, peer: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(peer) = peer.map(|p| match p {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(p),
            v4 => v4,
        }) else {
            return false;
        };
        self.0.iter().any(|(net, len)| in_range(peer, *net, *len))
    }
}

fn in_range(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (u32::from(a) & mask) == (u32::from(b) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            (u128::from(a) & mask) == (u128::from(b) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_addresses() {
        let l = IpAllowList::parse(&["10.0.0.0/8".into(), "192.168.1.7".into(), "::1".into()]).unwrap();
        assert!(l.admits(Some("10.200.3.4".parse().unwrap())));
        assert!(l.admits(Some("192.168.1.7".parse().unwrap())));
        assert!(!l.admits(Some("192.168.1.8".parse().unwrap())));
        assert!(l.admits(Some("::1".parse().unwrap())));
        assert!(l.admits(Some("::ffff:10.1.1.1".parse().unwrap())));
        assert!(!l.admits(None));
        assert!(IpAllowList::default().admits(None));
        assert!(IpAllowList::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(IpAllowList::parse(&["nope".into()]).is_err());
    }
}
