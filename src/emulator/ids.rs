//! Deterministic ids and pseudo-random numbers: everything the emulator
//! generates is a pure function of the seed and an index, so pages, files
//! and byte ranges can be produced again identically at any offset.

/// SplitMix64 of `x`: a fast, well-mixed hash of one 64-bit value.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A value derived from a seed and a path of indices.
pub fn derive(seed: u64, path: &[u64]) -> u64 {
    path.iter().fold(mix(seed), |acc, p| mix(acc ^ mix(*p)))
}

/// A value derived from a seed and a string (ids the client chose).
pub fn derive_str(seed: u64, s: &str) -> u64 {
    s.as_bytes().chunks(8).fold(mix(seed ^ s.len() as u64), |acc, c| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        mix(acc ^ u64::from_le_bytes(b))
    })
}

/// A UUID-shaped id (version 4 layout) from two derived values.
pub fn uuid(seed: u64, path: &[u64]) -> String {
    let a = derive(seed, path);
    let b = mix(a ^ 0x5555_5555_5555_5555);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16 & 0x0fff,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// A random UUID-shaped id (correlation and context ids).
pub fn random_uuid() -> String {
    uuid(rand::random(), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_distinct() {
        let a = uuid(7, &[1, 2]);
        assert_eq!(a, uuid(7, &[1, 2]));
        assert_ne!(a, uuid(7, &[2, 1]));
        assert_ne!(a, uuid(8, &[1, 2]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
