//! Checks `[routes.autonomy]` (SPEC §14): stage names, the suggestion
//! pointer, the delivery and review URLs, the criteria.

use super::Checker;
use crate::autonomy::Stage;
use crate::config::file::AutonomyFile;
use crate::config::{Autonomy, Criteria, Endpoint, Segment, Upstream};
use std::time::Duration;
use toml::Spanned;

/// Connect and answer timeout of one delivery or review POST.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// `criteria.min_samples` when the file does not say.
const MIN_SAMPLES: u64 = 100;

pub(super) fn autonomy(
    c: &mut Checker<'_>,
    f: &AutonomyFile,
    segment: Option<&Segment>,
    guard_min_agreement: f64,
) -> Autonomy {
    let default = stage(c, "autonomy.stage", &f.stage);
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
                    && name.get_ref() != crate::segment::OTHER =>
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
        stage: default,
        stages,
        suggest_pointer: (f.suggest_pointer.as_ref())
            .and_then(|p| c.pointer("autonomy.suggest_pointer", p)),
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
