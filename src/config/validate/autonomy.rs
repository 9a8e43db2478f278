//! Checks `[routes.autonomy]` (docs/src/concepts/stages.md): stage names, the suggestion
//! pointer, the delivery and review URLs, the criteria.

use super::Checker;
use crate::config::Stage;
use crate::config::file::AutonomyFile;
use crate::config::{Autonomy, Criteria, Endpoint, Segment, Upstream};
use crate::pointer::Pointer;
use std::time::Duration;
use toml::Spanned;

/// Connect and answer timeout of one delivery or review POST.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// `criteria.min_samples` when the file does not say.
const MIN_SAMPLES: u64 = 100;

pub(super) fn autonomy(
    c: &mut Checker<'_>,
    f: Option<&AutonomyFile>,
    segment: Option<&Segment>,
    guard_min_agreement: f64,
) -> Autonomy {
    let configured = f.is_some();
    let default = AutonomyFile::default();
    let f = f.unwrap_or(&default);
    let route_stage = stage(c, "autonomy.stage", &f.stage);
    let mut stages = std::collections::BTreeMap::new();
    for (name, s) in &f.stages {
        let field = format!("autonomy.stages.{}", name.get_ref());
        match segment {
            None => c.issue(
                name.span(),
                &field,
                "a per-segment stage needs a `segment` source",
            ),
            Some(seg)
                if !seg.values.is_empty()
                    && !seg.values.contains(name.get_ref())
                    && name.get_ref() != crate::config::OTHER =>
            {
                let msg = format!(
                    "{:?} is not one of segment.values {:?}",
                    name.get_ref(),
                    seg.values
                );
                c.issue(name.span(), &field, msg);
            }
            Some(_) => {}
        }
        stages.insert(name.get_ref().clone(), stage(c, &field, s));
    }
    let cr = &f.criteria;
    let rate = |c: &mut Checker<'_>, field: &str, x: &Option<Spanned<f64>>| {
        x.as_ref().map(|x| c.fraction(field, x))
    };
    let criteria = Criteria {
        min_agreement: rate(c, "autonomy.criteria.min_agreement", &cr.min_agreement)
            .unwrap_or(guard_min_agreement),
        max_reject_rate: rate(c, "autonomy.criteria.max_reject_rate", &cr.max_reject_rate),
        max_reversal_rate: rate(
            c,
            "autonomy.criteria.max_reversal_rate",
            &cr.max_reversal_rate,
        ),
        min_satisfaction: rate(
            c,
            "autonomy.criteria.min_satisfaction",
            &cr.min_satisfaction,
        ),
        min_samples: cr
            .min_samples
            .as_ref()
            .map_or(MIN_SAMPLES, |n| *n.get_ref()),
    };
    Autonomy {
        configured,
        stage: route_stage,
        stages,
        suggest_pointer: suggest_pointer(c, f.suggest_pointer.as_ref()),
        suggest_timeout: c.timeout("autonomy.suggest_timeout", &f.suggest_timeout),
        deliver: (f.deliver_url.as_ref()).and_then(|u| endpoint(c, "autonomy.deliver_url", u)),
        review: (f.review_url.as_ref()).and_then(|u| endpoint(c, "autonomy.review_url", u)),
        approval_ttl: c.timeout("autonomy.approval_ttl", &f.approval_ttl),
        auto_advance: f.auto_advance,
        hold: c.duration("autonomy.hold", &f.hold),
        criteria,
    }
}

fn stage(c: &mut Checker<'_>, field: &str, s: &Spanned<String>) -> Stage {
    Stage::parse(s.get_ref()).unwrap_or_else(|| {
        let msg = format!(
            "unknown stage {:?} (stages: {})",
            s.get_ref(),
            Stage::names()
        );
        c.issue(s.span(), field, msg);
        Stage::Autonomous
    })
}

fn endpoint(c: &mut Checker<'_>, field: &str, url: &Spanned<String>) -> Option<Endpoint> {
    c.url(field, url)?;
    let uri: http::Uri = url.get_ref().parse().ok()?;
    let (upstream, path) = Upstream::endpoint(&uri, POST_TIMEOUT);
    Some(Endpoint { upstream, path })
}

/// `autonomy.suggest_pointer`: a member to add to the incumbent's answer,
/// never the whole answer (`""`) nor several places (`*`).
fn suggest_pointer(c: &mut Checker<'_>, p: Option<&Spanned<String>>) -> Option<Pointer> {
    let p = p?;
    let pointer = c.pointer("autonomy.suggest_pointer", p)?;
    if pointer.tokens().is_empty() || pointer.has_wildcard() {
        c.issue(
            p.span(),
            "autonomy.suggest_pointer",
            "must name a member to add to the answer (e.g. \"/suggestion\"): \"\" would replace \
             the whole answer and \"*\" names no one place"
                .to_string(),
        );
        return None;
    }
    Some(pointer)
}

#[cfg(test)]
mod tests {
    use crate::config::Stage;
    use crate::config::parse;

    fn route(autonomy: &str) -> String {
        format!(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n\
             candidate = \"http://127.0.0.1:2\"\n\
             segment = {{ header = \"x-tier\", values = [\"gold\", \"silver\"] }}\n{autonomy}"
        )
    }

    #[test]
    fn a_route_without_the_table_is_autonomous_and_never_moves() {
        let c = parse(&route("")).unwrap();
        let a = &c.routes[0].autonomy;
        assert!(!a.configured);
        assert_eq!(a.stage_of("gold"), Stage::Autonomous);
        assert_eq!(a.suggest_timeout.as_millis(), 300);
        assert_eq!(a.approval_ttl.as_secs(), 86_400);
        assert_eq!(a.criteria.min_agreement, c.routes[0].guard.min_agreement);
        assert_eq!(a.criteria.min_samples, 100);
    }

    #[test]
    fn the_table_is_typed_at_load() {
        let c = parse(&route(
            "[routes.autonomy]\nstage = \"shadow\"\nstages = { gold = \"recommend\" }\n\
             suggest_pointer = \"/suggestion\"\nsuggest_timeout = \"150ms\"\n\
             deliver_url = \"http://127.0.0.1:3/deliver\"\nreview_url = \"http://127.0.0.1:4/r\"\n\
             approval_ttl = \"2h\"\nauto_advance = true\nhold = \"30s\"\n\
             [routes.autonomy.criteria]\nmin_agreement = 0.95\nmax_reject_rate = 0.1\n\
             max_reversal_rate = 0.05\nmin_satisfaction = 0.8\nmin_samples = 50\n",
        ))
        .unwrap();
        let a = &c.routes[0].autonomy;
        assert!(a.configured && a.auto_advance);
        assert_eq!(a.stage_of("gold"), Stage::Recommend);
        assert_eq!(a.stage_of("silver"), Stage::Shadow);
        assert_eq!(
            a.suggest_pointer.as_ref().map(|p| p.to_string()),
            Some("/suggestion".into())
        );
        assert_eq!(a.suggest_timeout.as_millis(), 150);
        assert_eq!(a.deliver.as_ref().unwrap().path.as_str(), "/deliver");
        assert_eq!(
            a.review.as_ref().unwrap().upstream.uri,
            "http://127.0.0.1:4/"
        );
        assert_eq!(a.criteria.max_reversal_rate, Some(0.05));
        assert_eq!(a.criteria.min_samples, 50);
    }

    #[test]
    fn every_mistake_is_reported_with_its_place() {
        for (table, expected) in [
            (
                "[routes.autonomy]\nstage = \"auto\"\n",
                "unknown stage \"auto\"",
            ),
            (
                "[routes.autonomy]\nstages = { bronze = \"notify\" }\n",
                "not one of segment.values",
            ),
            (
                "[routes.autonomy]\nsuggest_pointer = \"suggestion\"\n",
                "autonomy.suggest_pointer",
            ),
            (
                "[routes.autonomy]\nsuggest_pointer = \"\"\n",
                "would replace the whole answer",
            ),
            (
                "[routes.autonomy]\nsuggest_pointer = \"/items/*/s\"\n",
                "names no one place",
            ),
            (
                "[routes.autonomy]\nsuggest_timeout = \"0s\"\n",
                "must be greater than zero",
            ),
            ("[routes.autonomy]\ndeliver_url = \"ftp://x\"\n", "bad URL"),
            (
                "[routes.autonomy.criteria]\nmax_reversal_rate = 1.5\n",
                "1.5 is outside 0..=1",
            ),
            (
                "[routes.autonomy]\nstgae = \"notify\"\n",
                "unknown key `stgae`; did you mean `stage`?",
            ),
            (
                "guard = { min_satisfaction = -0.1 }\n",
                "guard.min_satisfaction",
            ),
        ] {
            let err = parse(&route(table)).unwrap_err().to_string();
            assert!(err.contains(expected), "{table}: {err}");
        }
    }
}
