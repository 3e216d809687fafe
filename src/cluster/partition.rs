//! Partitions: an event's partition is a stable hash of its partition key,
//! so every event of a conversation lands in the same partition, whichever
//! ingest node publishes it, and is processed in order by one node.

use cxrelay_actors::Event;

/// FNV-1a, 64 bits: fixed by its definition, so every node, version and
/// platform computes the same partition (std's `DefaultHasher` promises
/// none of that).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The partition of `ev` among `partitions`: by its key, else by its id
/// (an event without a key has no order to keep, only a spread).
pub fn partition_of(ev: &Event, partitions: u32) -> u32 {
    let basis = ev.key.as_deref().unwrap_or(&ev.id);
    (stable_hash(basis.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// The subject events of `partition` are published on.
pub fn subject(stream: &str, partition: u32) -> String {
    format!("{stream}.{partition}")
}

/// The durable consumer of `partition`.
pub fn consumer_name(partition: u32) -> String {
    format!("p{partition}")
}

/// Which partitions `node` processes: the live processing nodes sorted by
/// name, partition `p` going to the `p mod n`-th (an even spread; every
/// node computes the same from the same members).
pub fn assigned(partitions: u32, live: &[String], node: &str) -> Vec<u32> {
    let mut live: Vec<&String> = live.iter().collect();
    live.sort();
    live.dedup();
    let Some(me) = live.iter().position(|n| n.as_str() == node) else {
        return Vec::new();
    };
    (0..partitions).filter(|p| *p as usize % live.len() == me).collect()
}

/// The node `partition` is assigned to, among `live`.
pub fn owner_of(partition: u32, live: &[String]) -> Option<String> {
    let mut live: Vec<&String> = live.iter().collect();
    live.sort();
    live.dedup();
    (!live.is_empty()).then(|| live[partition as usize % live.len()].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a() {
        // Published test vectors of FNV-1a 64.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_key_always_has_the_same_partition() {
        let ev = |id: &str, key: Option<&str>| {
            let mut b = Event::builder("s", "t").id(id);
            if let Some(k) = key {
                b = b.key(k);
            }
            b.build()
        };
        let a = partition_of(&ev("1", Some("conv-7")), 16);
        assert_eq!(a, partition_of(&ev("2", Some("conv-7")), 16));
        assert!(a < 16);
        // Keys spread over the partitions.
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_of(&ev("x", Some(&format!("conv-{i}"))), 16))
            .collect();
        assert_eq!(used.len(), 16);
    }

    #[test]
    fn assignment_is_even_and_total() {
        let live = vec!["b".to_string(), "a".to_string(), "c".to_string()];
        let mut all: Vec<u32> = ["a", "b", "c"].iter().flat_map(|n| assigned(16, &live, n)).collect();
        all.sort();
        assert_eq!(all, (0..16).collect::<Vec<_>>());
        for n in ["a", "b", "c"] {
            let k = assigned(16, &live, n).len();
            assert!((5..=6).contains(&k));
        }
        assert!(assigned(16, &live, "d").is_empty());
        assert_eq!(owner_of(4, &live).as_deref(), Some("b"));
    }
}
