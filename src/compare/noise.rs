//! Noise learning, as Diffy does it: a share of exchanges is asked of the
//! incumbent twice (a second instance, or the same one again), and every JSON
//! pointer where the two incumbent answers differ is noise for the route from
//! then on (`request_id`, timestamps, ...), left out of every verdict.
//!
//! Pure: [`generalize`] and [`Learner::learn`]. The second call is made by the
//! settle step through the one bounded upstream call, holding a mirror permit
//! and within `mirror.timeout`; only methods listed in `mirror.methods` are
//! asked twice (the route declared them safe to send twice).

use super::json;
use crate::config::Noise;
use crate::pointer::Pointer;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// The noise a route has learned, shared by its settle tasks.
///
/// Readers take an `Arc` snapshot of the pointers (one short read lock, never
/// held across an await); a new pointer swaps the snapshot.
pub struct Learner {
    cfg: Noise,
    known: RwLock<Known>,
}

#[derive(Default)]
struct Known {
    texts: BTreeSet<String>,
    pointers: Arc<Vec<Pointer>>,
}

impl Learner {
    /// `persisted` are pointers learned before (the `noise` table), so a restart
    /// or a reload does not forget them.
    pub fn new(cfg: &Noise, persisted: Vec<String>) -> Learner {
        let learner = Learner {
            cfg: cfg.clone(),
            known: RwLock::default(),
        };
        let _known = learner.add(persisted);
        learner
    }

    /// The settings it learns under.
    pub fn config(&self) -> &Noise {
        &self.cfg
    }

    /// The pointers learned so far.
    pub fn pointers(&self) -> Arc<Vec<Pointer>> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.pointers.clone()
    }

    /// Every learned pointer as text, sorted.
    pub fn texts(&self) -> Vec<String> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.texts.iter().cloned().collect()
    }

    /// Whether this exchange is asked twice (`sample` of them, at random).
    pub fn wants_probe(&self) -> bool {
        self.cfg.sample >= 1.0 || rand::random::<f64>() < self.cfg.sample
    }

    /// Learns from two incumbent answers to the same request: returns the
    /// (generalised) pointers where they differ, now all known as noise.
    /// Bodies that are not both JSON teach nothing.
    pub fn learn(&self, first: &[u8], second: &[u8]) -> Vec<String> {
        if first == second {
            return Vec::new();
        }
        let (Some(a), Some(b)) = (json::parse(first), json::parse(second)) else {
            return Vec::new();
        };
        let found: BTreeSet<String> = json::differing_pointers(&a, &b)
            .iter()
            .map(|p| generalize(p))
            // The root differing means "not comparable at all", not noise.
            .filter(|p| !p.is_empty())
            .collect();
        let _added = self.add(found.iter().cloned().collect());
        // Every differing pointer that is (now) known: a hit on each.
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        found
            .into_iter()
            .filter(|p| known.texts.contains(p))
            .collect()
    }

    /// Adds pointers up to `max_pointers`; the rest are not learned (and
    /// not returned as learned).
    fn add(&self, texts: Vec<String>) -> Vec<String> {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        let before = known.texts.len();
        let mut added = Vec::new();
        for t in texts {
            if known.texts.len() >= self.cfg.max_pointers {
                tracing::warn!(max_pointers = self.cfg.max_pointers, pointer = %t,
                    "Noise set full: pointer not learned");
                continue;
            }
            if known.texts.insert(t.clone()) {
                added.push(t);
            }
        }
        if known.texts.len() != before {
            let pointers = known
                .texts
                .iter()
                .filter_map(|t| Pointer::parse(t).ok())
                .collect();
            known.pointers = Arc::new(pointers);
        }
        added
    }
}

/// A concrete pointer with every array index replaced by `*`: noise at
/// `/items/3/ts` is noise at every item's `ts`. (An object key made only of
/// digits is generalised too; for noise that errs on the side of ignoring.)
pub fn generalize(pointer: &str) -> String {
    if pointer.is_empty() {
        return String::new();
    }
    pointer
        .split('/')
        .skip(1)
        .map(|t| {
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                t
            }
        })
        .fold(String::new(), |mut acc, t| {
            acc.push('/');
            acc.push_str(t);
            acc
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner(sample: f64) -> Learner {
        capped(sample, 64)
    }

    fn capped(sample: f64, max_pointers: usize) -> Learner {
        let cfg = Noise {
            secondary: None,
            sample,
            max_pointers,
        };
        Learner::new(&cfg, vec!["/trace".into()])
    }

    #[test]
    fn generalize_replaces_indices() {
        assert_eq!(generalize("/items/3/ts"), "/items/*/ts");
        assert_eq!(generalize("/request_id"), "/request_id");
        assert_eq!(generalize("/a/10"), "/a/*");
        assert_eq!(generalize(""), "");
    }

    #[test]
    fn learns_the_pointers_where_the_incumbent_disagrees_with_itself() {
        let l = learner(0.5);
        assert_eq!(l.texts(), ["/trace"]);
        let a = br#"{"score":1,"request_id":"a","items":[{"ts":1,"v":2}]}"#;
        let b = br#"{"score":1,"request_id":"b","items":[{"ts":9,"v":2}]}"#;
        assert_eq!(l.learn(a, b), ["/items/*/ts", "/request_id"]);
        assert_eq!(l.texts(), ["/items/*/ts", "/request_id", "/trace"]);
        let ptrs: Vec<String> = l
            .pointers()
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        assert_eq!(ptrs, l.texts());
        // Equal answers and non-JSON answers teach nothing.
        assert!(l.learn(a, a).is_empty());
        assert!(l.learn(b"x", b"y").is_empty());
        assert_eq!(l.texts().len(), 3);
    }

    #[test]
    fn keys_are_learned_by_their_text_and_the_last_of_a_duplicate_counts() {
        let l = learner(1.0);
        let a = br#"{"gen\u0065rated": 1, "id": 1, "id": 2, "n": 1}"#;
        let b = br#"{"generated": 2, "id": 2, "n": 1}"#;
        assert_eq!(l.learn(a, b), ["/generated"]);
    }

    #[test]
    fn the_noise_set_is_capped() {
        let l = capped(1.0, 3);
        let a = br#"{"a":1,"b":1,"c":1,"d":1}"#;
        let b = br#"{"a":2,"b":2,"c":2,"d":2}"#;
        // Room for two beside /trace: the first two in order, then full.
        assert_eq!(l.learn(a, b), ["/a", "/b"]);
        assert_eq!(l.texts(), ["/a", "/b", "/trace"]);
        assert_eq!(l.learn(a, b), ["/a", "/b"], "known ones still count hits");
    }

    #[test]
    fn a_full_sample_always_probes() {
        assert!(learner(1.0).wants_probe());
        assert!(!learner(0.0).wants_probe());
    }
}
