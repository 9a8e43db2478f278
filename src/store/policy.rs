//! Storage policy (docs/src/reference/configuration.md): which bodies a row keeps (`store.bodies`,
//! `store.request_bodies`). Every row keeps its verdict, statuses, latencies
//! and diff whatever the policy, so `report` is the same under each.

use super::Record;
use crate::config::{Bodies, Store};

/// Drops the bodies the policy does not keep, before the row is queued.
pub fn apply(cfg: &Store, rec: &mut Record) {
    let keep_answers = match cfg.bodies {
        Bodies::All => true,
        Bodies::Mismatches => rec.verdict != "match",
        Bodies::None => false,
    };
    if !keep_answers {
        rec.incumbent_body = None;
        rec.candidate_body = None;
    }
    if !cfg.request_bodies {
        rec.request_body = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(verdict: &'static str) -> Record {
        Record {
            verdict,
            request_body: Some(Bytes::from_static(b"{\"q\":1}")),
            incumbent_body: Some(Bytes::from_static(b"{\"a\":1}")),
            candidate_body: Some(Bytes::from_static(b"{\"a\":2}")),
            ..Record::default()
        }
    }

    #[test]
    fn each_policy_keeps_what_it_says() {
        let mut cfg = crate::config::for_test(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n",
        )
        .store;
        let kept = |cfg: &Store, verdict| {
            let mut r = rec(verdict);
            apply(cfg, &mut r);
            (
                r.request_body.is_some(),
                r.incumbent_body.is_some(),
                r.candidate_body.is_some(),
            )
        };
        assert_eq!(kept(&cfg, "match"), (true, true, true), "all by default");
        cfg.bodies = Bodies::Mismatches;
        assert_eq!(kept(&cfg, "match"), (true, false, false));
        assert_eq!(kept(&cfg, "mismatch"), (true, true, true));
        cfg.bodies = Bodies::None;
        cfg.request_bodies = false;
        assert_eq!(kept(&cfg, "mismatch"), (false, false, false));
    }
}
