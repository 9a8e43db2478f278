//! Checks a route's decision tables: the `json` and `judge` compare modes,
//! `rollout` and `guard` (the mode itself is chosen in [`super::compare`]).

use super::Checker;
use crate::config::file::{
    CompareFile, GuardFile, MethodFile, NoiseFile, OnBreachFile, RolloutFile, ServeFile, WindowFile,
};
use crate::config::{
    Guard, GuardMethod, JsonCompare, JudgeCompare, Noise, OnBreach, Rollout, Rule, Segment, Side,
    Upstream, Window,
};
use crate::stats::alpha::Levels;
use std::time::Duration;
use toml::Spanned;

const JUDGE_TIMEOUT: Duration = Duration::from_secs(10);
const JUDGE_MAX_IN_FLIGHT: usize = 16;
/// Connect and header timeout of the noise secondary; the probe as a whole is
/// bounded by `mirror.timeout`.
const NOISE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn json_compare(c: &mut Checker<'_>, f: &CompareFile) -> JsonCompare {
    let mut pointers = |field: &str, list: &Option<Spanned<Vec<Spanned<String>>>>| {
        list.as_ref()
            .map(|l| c.pointers(field, l.get_ref()))
            .unwrap_or_default()
    };
    let ignore = pointers("compare.ignore", &f.ignore);
    let only = pointers("compare.only", &f.only);
    JsonCompare {
        ignore,
        only,
        tolerance: non_negative(c, "compare.tolerance", f.tolerance.as_ref()),
        abs_tolerance: non_negative(c, "compare.abs_tolerance", f.abs_tolerance.as_ref()),
        unordered_arrays: f.unordered_arrays.as_ref().is_some_and(|b| *b.get_ref()),
        noise: f.noise.as_ref().and_then(|n| noise(c, n)),
    }
}

/// `secondary` alone asks it every exchange; `sample` alone re-sends that
/// share to the incumbent; neither is an issue.
fn noise(c: &mut Checker<'_>, f: &Spanned<NoiseFile>) -> Option<Noise> {
    let n = f.get_ref();
    let secondary = n.secondary.as_ref().map(|url| {
        let u = c.url("compare.noise.secondary", url);
        let (uri, base_path) = u.map_or_else(Default::default, |u| (u.uri, u.base_path));
        Upstream {
            uri,
            base_path,
            connect_timeout: NOISE_TIMEOUT,
            timeout: NOISE_TIMEOUT,
            http2: false,
            tls_ca: None,
        }
    });
    let sample = match (&n.sample, &secondary) {
        (Some(s), _) => c.fraction("compare.noise.sample", s),
        (None, Some(_)) => 1.0,
        (None, None) => {
            let msg = "noise needs `secondary` (a second incumbent) or `sample` (a share re-sent to the incumbent)";
            c.issue(f.span(), "compare.noise", msg);
            return None;
        }
    };
    let max_pointers = n.max_pointers.as_ref().map_or(NOISE_MAX_POINTERS, |m| {
        c.nonzero("compare.noise.max_pointers", m)
    });
    Some(Noise {
        secondary,
        sample,
        max_pointers,
    })
}

fn gate(c: &mut Checker<'_>, f: &crate::config::file::GateFile) -> Option<crate::config::Gate> {
    use crate::config::GateCheck;
    const TIMEOUT: Duration = Duration::from_secs(5);
    let field = "guard.gates";
    let (url, check) = match (&f.prometheus, &f.http) {
        (Some(base), None) => {
            let Some(query) = f.query.clone() else {
                c.issue(f.name.span(), field, "a prometheus gate needs `query`");
                return None;
            };
            if f.max.is_some() == f.min.is_some() {
                c.issue(
                    f.name.span(),
                    field,
                    "a prometheus gate needs exactly one of `max` and `min`",
                );
                return None;
            }
            (
                base,
                GateCheck::Prometheus {
                    query,
                    max: f.max,
                    min: f.min,
                },
            )
        }
        (None, Some(url)) => {
            if f.query.is_some() || f.max.is_some() || f.min.is_some() {
                c.issue(
                    f.name.span(),
                    field,
                    "an http gate takes no `query`, `max` or `min`",
                );
                return None;
            }
            (url, GateCheck::Http)
        }
        _ => {
            c.issue(
                f.name.span(),
                field,
                "a gate needs exactly one of `prometheus` and `http`",
            );
            return None;
        }
    };
    c.url(field, url)?;
    let uri: http::Uri = url.get_ref().parse().ok()?;
    let (upstream, path) = Upstream::endpoint(&uri, TIMEOUT);
    Some(crate::config::Gate {
        name: f.name.get_ref().clone(),
        upstream,
        path,
        check,
    })
}

/// `compare.noise.max_pointers` when the file does not say (docs/src/reference/configuration.md).
const NOISE_MAX_POINTERS: usize = 64;

fn non_negative(c: &mut Checker<'_>, field: &str, x: Option<&Spanned<f64>>) -> f64 {
    let Some(x) = x else { return 0.0 };
    let v = *x.get_ref();
    if !(v >= 0.0 && v.is_finite()) {
        c.issue(x.span(), field, format!("{v} must be a finite number >= 0"));
    }
    v
}

pub(super) fn judge_compare(c: &mut Checker<'_>, f: &CompareFile) -> JudgeCompare {
    let url = match &f.url {
        Some(url) => c
            .url("compare.url", url)
            .and_then(|_| url.get_ref().parse().ok()),
        None => {
            let msg = "mode \"judge\" needs `url`, the judge's endpoint";
            c.issue(f.mode.span(), "compare.mode", msg);
            None
        }
    };
    JudgeCompare {
        url: url.unwrap_or_default(),
        timeout: (f.judge_timeout.as_ref())
            .map_or(JUDGE_TIMEOUT, |t| c.timeout("compare.judge_timeout", t)),
        max_in_flight: (f.judge_max_in_flight.as_ref()).map_or(JUDGE_MAX_IN_FLIGHT, |n| {
            c.nonzero("compare.judge_max_in_flight", n)
        }),
    }
}

/// `has_segment_key` is whether `segment` was written at all (even if it failed
/// to validate), so a broken segment is not reported twice.
pub(super) fn rollout(
    c: &mut Checker<'_>,
    f: &RolloutFile,
    has_segment_key: bool,
    segment: Option<&Segment>,
    has_candidate: bool,
) -> Rollout {
    let mut weights = vec![(f.default.span(), c.weight("rollout.default", &f.default))];
    let mut segments = std::collections::BTreeMap::new();
    for (name, w) in &f.segments {
        let field = format!("rollout.segments.{}", name.get_ref());
        weights.push((w.span(), c.weight(&field, w)));
        segments.insert(name.get_ref().clone(), *w.get_ref());
        if !has_segment_key {
            c.issue(
                name.span(),
                &field,
                "a per-segment weight needs a `segment` source",
            );
        } else if let Some(values) = segment.map(|s| &s.values)
            && !values.is_empty()
            && !values.contains(name.get_ref())
        {
            let msg = format!(
                "{:?} is not one of segment.values {values:?}",
                name.get_ref()
            );
            c.issue(name.span(), &field, msg);
        }
    }
    if !has_candidate {
        for (span, w) in weights.into_iter().filter(|(_, w)| *w > 0.0) {
            c.issue(
                span,
                "rollout",
                format!("weight {w} needs a `candidate` to serve"),
            );
        }
    }
    let mut rules = Vec::with_capacity(f.rules.len());
    for (i, rule) in f.rules.iter().enumerate() {
        let field = format!("rollout.rules[{i}]");
        let r = rule.get_ref();
        let source = c.source(&field, rule.span(), r.source_keys());
        if r.values.get_ref().is_empty() {
            c.issue(
                r.values.span(),
                format!("{field}.values"),
                "an empty list matches nothing",
            );
        }
        let serve = match r.serve.get_ref() {
            ServeFile::Incumbent => Side::Incumbent,
            ServeFile::Candidate => Side::Candidate,
        };
        if serve == Side::Candidate && !has_candidate {
            let msg = "serve = \"candidate\" needs a `candidate`";
            c.issue(r.serve.span(), format!("{field}.serve"), msg);
        }
        rules.extend(source.map(|source| Rule {
            source,
            values: r.values.get_ref().clone(),
            serve,
        }));
    }
    Rollout {
        default: *f.default.get_ref(),
        segments,
        salt: f.salt.clone(),
        fallback: f.fallback,
        rules,
    }
}

impl Default for Guard {
    /// The documented defaults: the file's defaults, validated like any
    /// `[routes.guard]` table (so there is one copy of each number).
    fn default() -> Guard {
        guard(&mut Checker::new(""), &GuardFile::default())
    }
}

pub(super) fn guard(c: &mut Checker<'_>, f: &GuardFile) -> Guard {
    let window = match f.window.get_ref() {
        WindowFile::Count(n) => match usize::try_from(*n) {
            Ok(n) if n > 0 => Window::Count(n),
            _ => {
                let msg = format!("window count {n} must be greater than zero");
                c.issue(f.window.span(), "guard.window", msg);
                Window::Count(1)
            }
        },
        WindowFile::Time(text) => {
            Window::Time(c.timeout("guard.window", &Spanned::new(f.window.span(), text.clone())))
        }
    };
    let mut ratio = |field: &str, r: &Spanned<f64>| {
        let v = *r.get_ref();
        if !(v > 0.0 && v.is_finite()) {
            c.issue(r.span(), field, format!("{v} must be a finite number > 0"));
        }
        v
    };
    let max_latency_ratio =
        (f.max_latency_ratio.as_ref()).map(|r| ratio("guard.max_latency_ratio", r));
    let max_ttft_ratio = (f.max_ttft_ratio.as_ref()).map(|r| ratio("guard.max_ttft_ratio", r));
    steps(c, &f.steps);
    if f.auto_promote && f.steps.get_ref().is_empty() {
        c.issue(
            f.steps.span(),
            "guard.steps",
            "auto_promote needs at least one step",
        );
    }
    let method = match f.method {
        MethodFile::Wilson => GuardMethod::Wilson,
        MethodFile::Sequential => {
            let alpha = *f.alpha.get_ref();
            if !(alpha > 0.0 && alpha <= 0.5) {
                c.issue(
                    f.alpha.span(),
                    "guard.alpha",
                    format!("{alpha} must be in (0, 0.5]"),
                );
            }
            GuardMethod::Sequential(Levels::new(alpha, 2, 1))
        }
    };
    let gates = f.gates.iter().filter_map(|g| gate(c, g)).collect();
    Guard {
        gates,
        method,
        window,
        min_samples: f.min_samples,
        min_agreement: c.fraction("guard.min_agreement", &f.min_agreement),
        max_candidate_error_rate: c.fraction(
            "guard.max_candidate_error_rate",
            &f.max_candidate_error_rate,
        ),
        max_latency_ratio,
        max_ttft_ratio,
        on_breach: match f.on_breach {
            OnBreachFile::Step => OnBreach::StepBack,
            OnBreachFile::Shadow => OnBreach::Shadow,
        },
        auto_promote: f.auto_promote,
        steps: f.steps.get_ref().clone(),
        hold: c.timeout("guard.hold", &f.hold),
        min_satisfaction: (f.min_satisfaction.as_ref())
            .map(|x| c.fraction("guard.min_satisfaction", x)),
        max_reversal_rate: (f.max_reversal_rate.as_ref())
            .map(|x| c.fraction("guard.max_reversal_rate", x)),
    }
}

/// Splits the route's `guard.alpha` over the rates its guard and stage
/// tracker test for breaches, in each of its `segments` (the declared values
/// and `other`, or `default`): agreement and the candidate's error rate
/// always; latency, time to first token, satisfaction, reversals and rejects
/// when configured ([`Levels`]).
pub(super) fn split_alpha(guard: &mut Guard, autonomy: &super::super::Autonomy, segments: usize) {
    let GuardMethod::Sequential(levels) = &mut guard.method else {
        return;
    };
    let criteria = autonomy.configured.then_some(&autonomy.criteria);
    let optional = [
        guard.max_latency_ratio.is_some(),
        guard.max_ttft_ratio.is_some(),
        guard.min_satisfaction.is_some() || criteria.is_some_and(|c| c.min_satisfaction.is_some()),
        guard.max_reversal_rate.is_some()
            || criteria.is_some_and(|c| c.max_reversal_rate.is_some()),
        criteria.is_some_and(|c| c.max_reject_rate.is_some()),
    ];
    let metrics = 2 + optional.iter().filter(|on| **on).count();
    *levels = Levels::new(levels.alpha(), metrics, segments);
}

/// Steps must climb strictly within `(0, 100]`.
fn steps(c: &mut Checker<'_>, steps: &Spanned<Vec<f64>>) {
    let mut previous = 0.0;
    for &step in steps.get_ref() {
        let why = if !(step > 0.0 && step <= 100.0) {
            format!("step {step} is outside (0, 100]")
        } else if step <= previous {
            format!("steps must be strictly increasing: {step} follows {previous}")
        } else {
            previous = step;
            continue;
        };
        c.issue(steps.span(), "guard.steps", why);
        return;
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Compare, parse};

    fn route(compare: &str) -> String {
        format!(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\ncompare = {compare}\n"
        )
    }

    #[test]
    fn noise_keys() {
        let c = parse(&route(
            "{ mode = \"json\", noise = { secondary = \"http://127.0.0.1:2\" } }",
        ))
        .unwrap();
        let Compare::Json(spec) = &c.routes[0].compare else {
            panic!("json mode");
        };
        let noise = spec.noise.as_ref().unwrap();
        assert_eq!(noise.sample, 1.0);
        assert_eq!(noise.secondary.as_ref().unwrap().uri, "http://127.0.0.1:2/");
        let c = parse(&route("{ noise = { sample = 0.05 } }")).unwrap();
        let Compare::Json(spec) = &c.routes[0].compare else {
            panic!("json mode");
        };
        assert!(spec.noise.as_ref().is_some_and(|n| n.secondary.is_none()));

        for (compare, expected) in [
            ("{ noise = {} }", "noise needs `secondary`"),
            ("{ noise = { sample = 2.0 } }", "2 is outside 0..=1"),
            ("{ noise = { secondary = \"ftp://x\" } }", "bad URL"),
            (
                "{ noise = { smaple = 0.1 } }",
                "unknown key `smaple`; did you mean `sample`?",
            ),
            (
                "{ mode = \"text\", noise = { sample = 0.1 } }",
                "`noise` belongs to mode \"json\"",
            ),
        ] {
            let err = parse(&route(compare)).unwrap_err().to_string();
            assert!(err.contains(expected), "{compare}: {err}");
        }
    }
}
