//! CSV (one row per line, every figure in its own column, raw numbers) and
//! Markdown (the table plus the details, for a pull request or a wiki page).

use super::render::{self, HEADER, cells, counted};
use super::{By, Report, period};
use std::io::{self, Write};

/// The CSV columns.
pub const CSV_HEADER: &[&str] = &[
    "route",
    "segment",
    "period",
    "samples",
    "matches",
    "mismatches",
    "candidate_errors",
    "incumbent_errors",
    "skipped",
    "agreement",
    "agreement_lo",
    "agreement_hi",
    "guard",
    "decided",
    "weight",
    "candidate_error_rate",
    "incumbent_error_rate",
    "compared",
    "incumbent_p50_ms",
    "incumbent_p95_ms",
    "incumbent_p99_ms",
    "candidate_p50_ms",
    "candidate_p95_ms",
    "candidate_p99_ms",
    "safety_hits",
    "ratings",
    "rating_mean",
    "top_diffs",
    "skip_reasons",
    "incumbent_ttft_p50_ms",
    "incumbent_ttft_p95_ms",
    "candidate_ttft_p50_ms",
    "candidate_ttft_p95_ms",
    "incumbent_tokens_in_per_request",
    "incumbent_tokens_out_per_request",
    "candidate_tokens_in_per_request",
    "candidate_tokens_out_per_request",
    "incumbent_cost_per_1k",
    "candidate_cost_per_1k",
    "cost_difference_per_1k",
    "decided_by",
    "stage",
];

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn pairs(items: &[(String, u64)]) -> String {
    items
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(";")
}

pub fn csv(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", CSV_HEADER.join(","))?;
    for l in &report.lines {
        let a = l.agreement;
        let row = [
            l.route.clone(),
            l.segment.clone(),
            l.period.map(|p| period(p, report.by)).unwrap_or_default(),
            l.samples.to_string(),
            l.matches.to_string(),
            l.mismatches.to_string(),
            l.candidate_errors.to_string(),
            l.incumbent_errors.to_string(),
            l.skipped.to_string(),
            num(a.map(|a| a.value)),
            num(a.map(|a| a.lo)),
            num(a.map(|a| a.hi)),
            l.decision.as_str().to_string(),
            l.decided.to_string(),
            num(l.weight),
            num(l.candidate_error_rate),
            num(l.incumbent_error_rate),
            num(l.coverage),
            num(l.incumbent_ms.p50),
            num(l.incumbent_ms.p95),
            num(l.incumbent_ms.p99),
            num(l.candidate_ms.p50),
            num(l.candidate_ms.p95),
            num(l.candidate_ms.p99),
            l.safety_hits.to_string(),
            l.ratings.count.to_string(),
            num(l.ratings.mean),
            pairs(&l.top_diffs),
            pairs(&l.skip_reasons),
            num(l.ai.as_ref().and_then(|a| a.incumbent.ttft_p50)),
            num(l.ai.as_ref().and_then(|a| a.incumbent.ttft_p95)),
            num(l.ai.as_ref().and_then(|a| a.candidate.ttft_p50)),
            num(l.ai.as_ref().and_then(|a| a.candidate.ttft_p95)),
            num(l
                .ai
                .as_ref()
                .and_then(|a| a.incumbent.tokens_in_per_request)),
            num(l
                .ai
                .as_ref()
                .and_then(|a| a.incumbent.tokens_out_per_request)),
            num(l
                .ai
                .as_ref()
                .and_then(|a| a.candidate.tokens_in_per_request)),
            num(l
                .ai
                .as_ref()
                .and_then(|a| a.candidate.tokens_out_per_request)),
            num(l.ai.as_ref().and_then(|a| a.incumbent.cost_per_1k)),
            num(l.ai.as_ref().and_then(|a| a.candidate.cost_per_1k)),
            num(l.ai.as_ref().and_then(|a| a.cost_difference_per_1k)),
            l.ai.as_ref()
                .map(|a| pairs(&a.decided_by))
                .unwrap_or_default(),
            l.stage.clone().unwrap_or_default(),
        ];
        let row: Vec<String> = row.iter().map(|c| field(c)).collect();
        writeln!(out, "{}", row.join(","))?;
    }
    Ok(())
}

/// `|` would end a Markdown cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|")
}

pub fn markdown(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "# Understudy report\n")?;
    if let (Some(a), Some(b)) = (report.first_ts, report.last_ts) {
        writeln!(
            out,
            "Exchanges from {} to {} (UTC), {} database file(s).\n",
            period(a, By::Hour),
            period(b, By::Hour),
            report.dbs.len()
        )?;
    }
    if report.lines.is_empty() {
        return writeln!(out, "No exchanges recorded.");
    }
    let keep = |i: usize| i != 2 || report.by != By::Segment;
    let header: Vec<&str> = (0..HEADER.len())
        .filter(|&i| keep(i))
        .map(|i| HEADER[i])
        .collect();
    writeln!(out, "| {} |", header.join(" | "))?;
    let aligns: Vec<&str> = (0..HEADER.len())
        .filter(|&i| keep(i))
        .map(|i| if i < 3 { "---" } else { "---:" })
        .collect();
    writeln!(out, "|{}|", aligns.join("|"))?;
    for l in &report.lines {
        let c = cells(l, report.by);
        let row: Vec<String> = (0..c.len())
            .filter(|&i| keep(i))
            .map(|i| md(&c[i]))
            .collect();
        writeln!(out, "| {} |", row.join(" | "))?;
    }
    writeln!(out, "\n## Details\n")?;
    for l in report.lines.iter().filter(|l| l.period.is_none()) {
        writeln!(out, "- **{} / {}**", md(&l.route), md(&l.segment))?;
        for text in l.ai.iter().flat_map(super::ai::describe) {
            writeln!(out, "  - {}", md(&text))?;
        }
        if !l.top_diffs.is_empty() {
            writeln!(
                out,
                "  - top differences: {}",
                md(&super::render::differences(l))
            )?;
        }
        if !l.skip_reasons.is_empty() {
            writeln!(out, "  - skipped: {}", md(&counted(&l.skip_reasons)))?;
        }
        if l.safety_hits > 0 {
            let hits = counted(&l.safety_patterns);
            writeln!(out, "  - safety hits: {}", md(&hits))?;
        }
        writeln!(out, "  - feedback: {}", render::ratings(&l.ratings))?;
    }
    if !report.calibration.is_empty() {
        writeln!(out, "\n## Judge calibration\n")?;
        for c in &report.calibration {
            let text = super::ai::describe_calibration(c);
            writeln!(out, "- {}: {}", md(&c.route), md(&text))?;
        }
    }
    if !report.noise.is_empty() {
        writeln!(out, "\n## Noise (left out of verdicts)\n")?;
        for n in &report.noise {
            writeln!(out, "- {} `{}` ({} hits)", md(&n.route), n.pointer, n.hits)?;
        }
    }
    if !report.slices.is_empty() {
        writeln!(out, "\n## Slices\n")?;
        crate::slices::render::markdown(&report.slices, out)?;
    }
    if !report.events.is_empty() {
        writeln!(out, "\n## Rollout events\n")?;
        for e in &report.events {
            writeln!(
                out,
                "- {} {} / {}: {} → {} by {} ({})",
                period(e.ts_ms, By::Hour),
                md(&e.route),
                md(&e.segment),
                num(e.from_weight),
                num(e.to_weight),
                md(&e.actor),
                md(&e.reason)
            )?;
        }
    }
    Ok(())
}
