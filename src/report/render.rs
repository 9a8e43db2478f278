//! The plain-text report: one aligned line per route and segment (or period),
//! then per route the details a table has no room for: top differing
//! pointers, learned noise, skip reasons, safety hits and feedback.
//!
//! Only formatting happens here; the numbers come from [`super::Report`].

use super::{By, Line, Report, agreement, ms, pct, period};
use std::io::{self, Write};

/// The columns of the table; `PERIOD` only with `--by hour|day`.
pub const HEADER: [&str; 13] = [
    "ROUTE",
    "SEGMENT",
    "PERIOD",
    "SAMPLES",
    "AGREEMENT [95% CI]",
    "GUARD",
    "WEIGHT",
    "CAND ERR",
    "INC ERR",
    "COMPARED",
    "INC P50/P95/P99",
    "CAND P50/P95/P99",
    "SAFETY",
];

/// Columns after the first three are numbers and align right.
const LEFT_ALIGNED: usize = 3;

/// The cells of one line, in [`HEADER`] order.
pub fn cells(l: &Line, by: By) -> [String; 13] {
    [
        l.route.clone(),
        l.segment.clone(),
        l.period.map(|p| period(p, by)).unwrap_or_default(),
        l.samples.to_string(),
        agreement(l),
        guard(l),
        weight_and_stage(l),
        pct(l.candidate_error_rate),
        pct(l.incumbent_error_rate),
        pct(l.coverage),
        latency(&l.incumbent_ms),
        latency(&l.candidate_ms),
        l.safety_hits.to_string(),
    ]
}

/// A weight as `report` and `status` both show it: `0%`, `5%`, `0.125%`
/// (the canary's 0.001 % resolution, trailing zeros cut).
pub fn weight(w: f64) -> String {
    let text = format!("{w:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The weight, and the stage of autonomy when one is recorded (`5% recommend`).
pub fn weight_and_stage(l: &Line) -> String {
    let w = l.weight.map_or_else(|| "–".into(), weight);
    match &l.stage {
        Some(s) => format!("{w} {s}"),
        None => w,
    }
}

/// `pass`, `breach`, or `hold (~N more)`.
pub fn guard(l: &Line) -> String {
    match (l.decision, l.samples_needed) {
        (super::Decision::Hold, Some(n)) => format!("hold (~{n} more)"),
        (d, _) => d.as_str().to_string(),
    }
}

/// `12/30/45 ms`.
pub fn latency(l: &super::line::Latency) -> String {
    match (l.p50, l.p95, l.p99) {
        (Some(a), Some(b), Some(c)) => format!("{a:.0}/{b:.0}/{c:.0} ms"),
        _ => ms(None),
    }
}

/// Writes the table and the details; an empty report says so in one line.
pub fn table(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if report.lines.is_empty() {
        return writeln!(out, "No exchanges recorded.");
    }
    let keep = |i: usize| i != 2 || report.by != By::Segment;
    let header: Vec<String> = (0..HEADER.len())
        .filter(|&i| keep(i))
        .map(|i| HEADER[i].to_string())
        .collect();
    let rows: Vec<Vec<String>> = (report.lines.iter())
        .map(|l| {
            let c = cells(l, report.by);
            (0..c.len())
                .filter(|&i| keep(i))
                .map(|i| c[i].clone())
                .collect()
        })
        .collect();
    let left = if report.by == By::Segment {
        LEFT_ALIGNED - 1
    } else {
        LEFT_ALIGNED
    };
    if let Some(slice) = &report.slice {
        writeln!(out, "Slice: {slice} (its exchanges only)")?;
    }
    let right: Vec<bool> = (0..header.len()).map(|i| i >= left).collect();
    super::aligned::write(out, &header, &rows, &right, "")?;
    details(report, out)?;
    if !report.slices.is_empty() {
        writeln!(out, "\nSlices")?;
        crate::slices::render::table(&report.slices, out)?;
    }
    Ok(())
}

/// What a rollout event changed, the same way in `audit` and the HTML
/// history: `5% → 10%`, `shadow → recommend`, `mirror off`.
pub fn change(
    mirror: Option<&str>,
    from: Option<f64>,
    to: Option<f64>,
    from_stage: Option<&str>,
    to_stage: Option<&str>,
) -> String {
    let weight = |w: Option<f64>| w.map_or_else(|| "–".into(), |w| format!("{w}%"));
    match (mirror, to_stage) {
        (Some(m), _) => format!("mirror {m}"),
        (None, Some(to)) => format!("{} → {to}", from_stage.unwrap_or("none")),
        (None, None) => format!("{} → {}", weight(from), weight(to)),
    }
}

/// Who made a change, and `forced` when it overrode the promotion gate.
pub fn actor(actor: &str, forced: bool) -> String {
    if forced {
        format!("{actor} (forced)")
    } else {
        actor.to_string()
    }
}

/// `a (3), b (1)`.
pub fn counted(items: &[(String, u64)]) -> String {
    items
        .iter()
        .map(|(k, n)| format!("{} ({n})", if k.is_empty() { "(whole body)" } else { k }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A line's top differences with their counts and an exchange to `show`:
/// `/discount (919, e.g. 0193…)`.
pub fn differences(l: &super::Line) -> String {
    (l.top_diffs.iter())
        .map(|(k, n)| {
            let pointer = if k.is_empty() { "(whole body)" } else { k };
            match l.diff_examples.get(k) {
                Some(id) => format!("{pointer} ({n}, e.g. {id})"),
                None => format!("{pointer} ({n})"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Feedback as `3 ratings, mean 4.33 (1: 1, 5: 2)`, or `none`.
pub fn ratings(r: &super::Ratings) -> String {
    match r.mean {
        None => "none".to_string(),
        Some(mean) => {
            let counts: Vec<String> = r.counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            format!(
                "{} rating(s), mean {mean:.2} ({})",
                r.count,
                counts.join(", ")
            )
        }
    }
}

/// Per route: noise, then per segment what differs, why skipped, safety, feedback.
fn details(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut route = "";
    for l in report.lines.iter().filter(|l| l.period.is_none()) {
        if l.route != route {
            route = &l.route;
            writeln!(out, "\n{route}")?;
            let noise: Vec<(String, u64)> = (report.noise.iter())
                .filter(|n| n.route == route)
                .map(|n| (n.pointer.clone(), n.hits))
                .collect();
            if !noise.is_empty() {
                writeln!(out, "  noise (left out of verdicts): {}", counted(&noise))?;
            }
            for c in report.calibration.iter().filter(|c| c.route == route) {
                writeln!(out, "  {}", super::ai::describe_calibration(c))?;
            }
        }
        writeln!(out, "  {}:", l.segment)?;
        for text in l.ai.iter().flat_map(super::ai::describe) {
            writeln!(out, "    {text}")?;
        }
        if !l.top_diffs.is_empty() {
            writeln!(out, "    top differences: {}", differences(l))?;
        }
        if !l.skip_reasons.is_empty() {
            writeln!(out, "    skipped: {}", counted(&l.skip_reasons))?;
        }
        if l.safety_hits > 0 {
            writeln!(out, "    safety hits: {}", counted(&l.safety_patterns))?;
        }
        writeln!(out, "    feedback: {}", ratings(&l.ratings))?;
    }
    if report.by != By::Segment {
        let noise: Vec<(String, u64)> = (report.noise.iter())
            .map(|n| (format!("{}{}", n.route, n.pointer), n.hits))
            .collect();
        if !noise.is_empty() {
            writeln!(out, "\nnoise (left out of verdicts): {}", counted(&noise))?;
        }
    }
    Ok(())
}
