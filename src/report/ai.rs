//! The report's AI figures (docs/src/guide/llm.md), per line: time to first token p50/p95
//! of both sides, tokens per request, cost per 1,000 requests of both sides
//! and their difference, and how many pairs each text stage decided; per
//! route, the judge's calibration against people's ratings (agreement and
//! Cohen's κ).
//!
//! Pure: computed from [`AiStats`] and [`Calibration`] counts.

use crate::stats;
use crate::store::read::ai::{AiStats, Calibration, SideStats};
use serde::Serialize;

/// One side's AI figures on a line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AiSide {
    /// Time to first token, ms.
    pub ttft_p50: Option<f64>,
    pub ttft_p95: Option<f64>,
    pub ttft_p99: Option<f64>,
    /// Mean tokens per request over the answers that reported usage.
    pub tokens_in_per_request: Option<f64>,
    pub tokens_out_per_request: Option<f64>,
    /// Mean cost of 1,000 requests (dollars) over the answers with a known cost.
    pub cost_per_1k: Option<f64>,
    /// Answers whose cost is unknown (no usage, or no price for the side).
    pub cost_unknown: u64,
}

impl AiSide {
    fn of(s: &SideStats, rows: u64) -> AiSide {
        let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        AiSide {
            ttft_p50: stats::percentile(&s.ttft_ms, 50.0),
            ttft_p95: stats::percentile(&s.ttft_ms, 95.0),
            ttft_p99: stats::percentile(&s.ttft_ms, 99.0),
            tokens_in_per_request: mean(s.tokens_in as f64, s.with_tokens),
            tokens_out_per_request: mean(s.tokens_out as f64, s.with_tokens),
            cost_per_1k: mean(s.cost * 1000.0, s.with_cost),
            cost_unknown: rows.saturating_sub(s.with_cost),
        }
    }
}

/// The AI figures of one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AiLine {
    /// Exchanges with AI figures.
    pub rows: u64,
    pub incumbent: AiSide,
    pub candidate: AiSide,
    /// Candidate minus incumbent cost per 1,000 requests, when both are known.
    pub cost_difference_per_1k: Option<f64>,
    /// Candidate p99 / incumbent p99 time to first token (the guard's
    /// `max_ttft_ratio` input).
    pub ttft_ratio: Option<f64>,
    /// Text stage → pairs it decided, most first.
    pub decided_by: Vec<(String, u64)>,
}

impl AiLine {
    pub fn of(s: &AiStats) -> AiLine {
        let incumbent = AiSide::of(&s.incumbent, s.rows);
        let candidate = AiSide::of(&s.candidate, s.rows);
        let mut decided_by: Vec<(String, u64)> =
            s.decided_by.iter().map(|(k, n)| (k.clone(), *n)).collect();
        decided_by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        AiLine {
            rows: s.rows,
            cost_difference_per_1k: candidate
                .cost_per_1k
                .zip(incumbent.cost_per_1k)
                .map(|(c, i)| c - i),
            ttft_ratio: crate::rollout::guard::ratio(candidate.ttft_p99, incumbent.ttft_p99),
            incumbent,
            candidate,
            decided_by,
        }
    }
}

/// The judge against people, on one route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgeCalibration {
    pub route: String,
    /// Judge verdicts paired with a rating of the same exchange.
    pub pairs: u64,
    pub counts: Calibration,
    /// Share of pairs where the judge and the person agree.
    pub agreement: Option<f64>,
    /// Cohen's κ: agreement beyond chance; `None` when chance explains all
    /// (every verdict and rating on one side).
    pub kappa: Option<f64>,
}

impl JudgeCalibration {
    pub fn of(route: String, c: Calibration) -> JudgeCalibration {
        let n = c.both_agree + c.judge_only + c.person_only + c.both_disagree;
        let (agreement, kappa) = if n == 0 {
            (None, None)
        } else {
            let n_f = n as f64;
            let po = (c.both_agree + c.both_disagree) as f64 / n_f;
            let judge_yes = (c.both_agree + c.judge_only) as f64 / n_f;
            let person_yes = (c.both_agree + c.person_only) as f64 / n_f;
            let pe = judge_yes * person_yes + (1.0 - judge_yes) * (1.0 - person_yes);
            let kappa = (pe < 1.0 - 1e-12).then(|| (po - pe) / (1.0 - pe));
            (Some(po), kappa)
        };
        JudgeCalibration {
            route,
            pairs: n,
            counts: c,
            agreement,
            kappa,
        }
    }
}

/// The line's AI figures as text lines (table and Markdown).
pub fn describe(a: &AiLine) -> Vec<String> {
    let (i, c) = (&a.incumbent, &a.candidate);
    let known = |s: &AiSide| {
        s.ttft_p50.is_some() || s.tokens_in_per_request.is_some() || s.cost_per_1k.is_some()
    };
    let mut out = Vec::new();
    if known(i) || known(c) {
        out.extend(figures(a));
    }
    if !a.decided_by.is_empty() {
        let stages: Vec<String> = a
            .decided_by
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push(format!("text decided by: {}", stages.join(", ")));
    }
    out
}

/// Time to first token, tokens and cost of both sides.
fn figures(a: &AiLine) -> Vec<String> {
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.0}"));
    let n = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| format!("{v:.0}"));
    let usd = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| format!("${v:.4}"));
    let (i, c) = (&a.incumbent, &a.candidate);
    let mut out = vec![
        format!(
            "time to first token p50/p95: incumbent {}/{} ms, candidate {}/{} ms",
            ms(i.ttft_p50),
            ms(i.ttft_p95),
            ms(c.ttft_p50),
            ms(c.ttft_p95)
        ),
        format!(
            "tokens per request (in/out): incumbent {}/{}, candidate {}/{}",
            n(i.tokens_in_per_request),
            n(i.tokens_out_per_request),
            n(c.tokens_in_per_request),
            n(c.tokens_out_per_request)
        ),
    ];
    let mut cost = format!(
        "cost per 1,000 requests: incumbent {}, candidate {}",
        usd(i.cost_per_1k),
        usd(c.cost_per_1k)
    );
    if let Some(d) = a.cost_difference_per_1k {
        cost.push_str(&format!(
            ", difference {}{}",
            if d < 0.0 { "-" } else { "+" },
            usd(Some(d.abs()))
        ));
    }
    if i.cost_unknown + c.cost_unknown > 0 {
        cost.push_str(&format!(
            " (unknown: {} incumbent, {} candidate answers)",
            i.cost_unknown, c.cost_unknown
        ));
    }
    out.push(cost);
    out
}

/// One route's calibration as a text line.
pub fn describe_calibration(c: &JudgeCalibration) -> String {
    let pct = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{:.1}%", v * 100.0));
    let kappa = c
        .kappa
        .map_or_else(|| "undefined".to_string(), |k| format!("{k:.2}"));
    format!(
        "judge vs people: {} pairs (judge agree/person agree {}, judge only {}, person only {}, both disagree {}), agreement {}, Cohen's kappa {kappa}",
        c.pairs,
        c.counts.both_agree,
        c.counts.judge_only,
        c.counts.person_only,
        c.counts.both_disagree,
        pct(c.agreement),
    )
}

/// The HTML report's section on AI answers: one row per line with AI
/// figures, then the judge's calibration per route. Nothing without them.
pub fn html(
    report: &super::Report,
    lines: &[&super::Line],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    use super::svg::esc;
    let with_ai: Vec<(&super::Line, &AiLine)> = lines
        .iter()
        .filter_map(|l| l.ai.as_ref().map(|a| (*l, a)))
        .collect();
    if with_ai.is_empty() && report.calibration.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>AI answers</h2><p class=\"muted\">Time to first token (ms), tokens per request and cost per 1,000 requests of the current system and the candidate; which comparison stage decided the text.</p><table><tr><th>route</th><th>segment</th><th>first token p50/p95, current</th><th>candidate</th><th>tokens in/out, current</th><th>candidate</th><th>cost per 1,000, current</th><th>candidate</th><th>difference</th><th style=\"text-align:left\">decided by</th></tr>"
    )?;
    let ms = |a: Option<f64>, b: Option<f64>| {
        let f = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.0}"));
        format!("{}/{}", f(a), f(b))
    };
    let usd = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| format!("${v:.4}"));
    for (l, a) in with_ai {
        let (i, c) = (&a.incumbent, &a.candidate);
        let stages: Vec<String> = a
            .decided_by
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            esc(&l.route),
            esc(&l.segment),
            ms(i.ttft_p50, i.ttft_p95),
            ms(c.ttft_p50, c.ttft_p95),
            ms(i.tokens_in_per_request, i.tokens_out_per_request),
            ms(c.tokens_in_per_request, c.tokens_out_per_request),
            usd(i.cost_per_1k),
            usd(c.cost_per_1k),
            usd(a.cost_difference_per_1k),
            esc(&stages.join(", "))
        )?;
    }
    writeln!(out, "</table>")?;
    if !report.calibration.is_empty() {
        writeln!(out, "<h2>Can the judge be trusted?</h2><ul>")?;
        for c in &report.calibration {
            writeln!(
                out,
                "<li>{}: {}</li>",
                esc(&c.route),
                esc(&describe_calibration(c))
            )?;
        }
        writeln!(out, "</ul>")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohen_kappa_matches_the_textbook_example() {
        // Wikipedia's example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → κ = 0.4.
        let c = Calibration {
            both_agree: 20,
            judge_only: 5,
            person_only: 10,
            both_disagree: 15,
        };
        let k = JudgeCalibration::of("r".into(), c);
        assert_eq!(k.pairs, 50);
        assert!((k.agreement.unwrap() - 0.7).abs() < 1e-12);
        assert!((k.kappa.unwrap() - 0.4).abs() < 1e-12, "{k:?}");
        // All on one side: agreement 1, κ undefined.
        let one = Calibration {
            both_agree: 9,
            ..Calibration::default()
        };
        let k = JudgeCalibration::of("r".into(), one);
        assert_eq!((k.agreement, k.kappa), (Some(1.0), None));
        assert_eq!(
            JudgeCalibration::of("r".into(), Calibration::default()).pairs,
            0
        );
    }

    #[test]
    fn per_request_and_per_thousand() {
        let s = AiStats {
            rows: 4,
            incumbent: SideStats {
                ttft_ms: vec![10.0, 20.0, 30.0, 40.0],
                with_tokens: 4,
                tokens_in: 400,
                tokens_out: 100,
                with_cost: 4,
                cost: 0.004,
            },
            candidate: SideStats {
                ttft_ms: vec![20.0, 40.0, 60.0, 80.0],
                with_tokens: 2,
                tokens_in: 200,
                tokens_out: 60,
                with_cost: 2,
                cost: 0.001,
            },
            decided_by: [("similarity".to_string(), 3), ("judge".to_string(), 1)].into(),
        };
        let a = AiLine::of(&s);
        assert_eq!(a.incumbent.tokens_in_per_request, Some(100.0));
        assert_eq!(a.candidate.tokens_out_per_request, Some(30.0));
        assert!((a.incumbent.cost_per_1k.unwrap() - 1.0).abs() < 1e-12);
        assert!((a.candidate.cost_per_1k.unwrap() - 0.5).abs() < 1e-12);
        assert!((a.cost_difference_per_1k.unwrap() + 0.5).abs() < 1e-12);
        assert_eq!(a.candidate.cost_unknown, 2);
        assert_eq!(a.ttft_ratio, Some(2.0));
        assert_eq!(a.decided_by[0], ("similarity".to_string(), 3));
    }
}
