//! The sticky bucket: `bucket = fnv1a64(route ‖ 0xff ‖ salt ‖ 0xff ‖ key) mod 100000`.
//!
//! FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) is fixed
//! here and in the README: it must stay stable across versions, restarts and
//! replicas, so that a user always lands on the same side. The candidate serves
//! when `bucket < round(weight * 1000)` (weight in percent, 0.001 % resolution).

/// Number of buckets: 100 % in steps of 0.001 %.
pub const BUCKETS: u64 = 100_000;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The bucket of a sticky key on a route.
pub fn bucket(route: &str, salt: &str, key: &str) -> u64 {
    let h = fnv1a(OFFSET, route.as_bytes());
    let h = fnv1a(h, &[0xff]);
    let h = fnv1a(h, salt.as_bytes());
    let h = fnv1a(h, &[0xff]);
    fnv1a(h, key.as_bytes()) % BUCKETS
}

/// The hash of a sticky key, naming its user in the guard's design effect
/// ([`crate::stats::cluster`]).
pub fn user(key: &str) -> u64 {
    fnv1a(OFFSET, key.as_bytes())
}

/// Whether a bucket falls in the candidate's share at `weight` percent.
pub fn is_candidate(bucket: u64, weight: f64) -> bool {
    (bucket as f64) < (weight * 1000.0).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_test_vector() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c.
        assert_eq!(fnv1a(OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn bucket_is_stable_and_in_range() {
        let b = bucket("lead-score", "", "user-42");
        assert_eq!(b, bucket("lead-score", "", "user-42"));
        assert!(b < BUCKETS);
        assert_ne!(
            bucket("lead-score", "s1", "user-42"),
            bucket("lead-score", "s2", "user-42")
        );
    }

    #[test]
    fn weights_split_keys_in_proportion() {
        let n = 20_000;
        let hits = (0..n)
            .filter(|i| is_candidate(bucket("r", "", &format!("user-{i}")), 10.0))
            .count();
        let share = hits as f64 / n as f64;
        assert!((0.09..=0.11).contains(&share), "share {share}");
        assert!(!is_candidate(0, 0.0));
        assert!(is_candidate(99_999, 100.0));
        assert!(is_candidate(0, 0.001) && !is_candidate(1, 0.001));
    }
}
