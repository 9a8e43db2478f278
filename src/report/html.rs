//! The HTML report: one self-contained file (inline CSS and SVG, no script, no
//! network fetch) that a reader without the CLI can follow: a verdict per
//! segment in plain words first, then the charts, then the figures.

use super::render::{cells, counted, guard, ratings};
use super::svg::{self, Bar, Curve, LatencyRow, PALETTE, esc};
use super::{By, Decision, Line, Report, period};
use crate::store::read::DAY_MS;
use std::collections::BTreeMap;
use std::io::{self, Write};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:32px auto;padding:0 24px;max-width:1100px;color:#222;line-height:1.45}
h1{margin-bottom:4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.muted{color:#666}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:8px;padding:12px 16px;min-width:200px;flex:1}
.card .big{font-size:28px;font-weight:600}.pass{border-left:6px solid #009E73}
.breach{border-left:6px solid #D55E00}.hold{border-left:6px solid #E69F00}
table{border-collapse:collapse;font-size:12px;width:100%}th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:right}
th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}th{background:#f6f6f6}code{font-size:12px}";

/// What a decision means to a reader who does not know the guard.
fn plain(d: Decision) -> (&'static str, &'static str) {
    match d {
        Decision::Pass => ("Ready to promote", "pass"),
        Decision::Breach => ("Not ready: keep on the incumbent", "breach"),
        Decision::Hold => ("Not enough data yet", "hold"),
    }
}

pub fn page(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\n<title>Understudy report</title><style>{STYLE}</style></head><body>"
    )?;
    writeln!(out, "<h1>Is the candidate ready?</h1>")?;
    match (report.first_ts, report.last_ts) {
        (Some(a), Some(b)) => writeln!(
            out,
            "<p class=\"muted\">Real traffic from {} to {} (UTC), answered by the current system and, in the shadow, by the candidate. Each answer pair was compared.</p>",
            period(a, By::Hour),
            period(b, By::Hour)
        )?,
        _ => writeln!(out, "<p>No exchanges recorded.</p>")?,
    }
    let lines: Vec<&Line> = report.lines.iter().filter(|l| l.period.is_none()).collect();
    let lines = if lines.is_empty() {
        // Grouped by period only: summarise from the periods' own lines.
        report.lines.iter().collect()
    } else {
        lines
    };
    summary(report, &lines, out)?;
    charts(report, &lines, out)?;
    figures(report, out)?;
    differences(report, &lines, out)?;
    crate::slices::render::html(&report.slices, out)?;
    super::ai::html(report, &lines, out)?;
    events(report, out)?;
    writeln!(
        out,
        "<h2>How to read this</h2><p class=\"muted\">Agreement is the share of compared answers where the candidate agreed with the current system (errors and skipped exchanges left out), with its 95&nbsp;% confidence interval. A segment is ready when the whole interval is above the target and there are enough samples; not ready when the whole interval is below it. Noise fields (values that differ even between two answers of the current system, such as request ids and timestamps) are left out of every comparison. Generated {} UTC from {}.</p></body></html>",
        period(report.generated_ms, By::Hour),
        esc(&report.dbs.join(", "))
    )
}

fn summary(report: &Report, lines: &[&Line], out: &mut dyn Write) -> io::Result<()> {
    if report.lines.is_empty() {
        return Ok(());
    }
    writeln!(out, "<h2>Verdict per segment</h2><div class=\"cards\">")?;
    for l in lines {
        let (words, class) = plain(l.decision);
        let agreement = l.agreement.map_or_else(
            || "no comparisons".to_string(),
            |a| format!("{:.1}%", a.value * 100.0),
        );
        let interval = l.agreement.map_or_else(String::new, |a| {
            format!(
                "likely between {:.1}% and {:.1}%",
                a.lo * 100.0,
                a.hi * 100.0
            )
        });
        let mut weight = l.weight.map_or_else(String::new, |w| {
            format!("<br>candidate now serves {w}% of this segment")
        });
        if let Some(stage) = &l.stage {
            weight.push_str(&format!(", stage {}", esc(stage)));
        }
        writeln!(
            out,
            "<div class=\"card {class}\"><div class=\"muted\">{} · {}</div><div class=\"big\">{agreement}</div><div>{words}</div><div class=\"muted\">{interval}<br>{} comparisons, target {:.0}%{weight}</div></div>",
            esc(&l.route),
            esc(&l.segment),
            l.matches + l.mismatches,
            l.guard.min_agreement * 100.0
        )?;
    }
    writeln!(out, "</div>")
}

fn charts(report: &Report, lines: &[&Line], out: &mut dyn Write) -> io::Result<()> {
    if report.lines.is_empty() {
        return Ok(());
    }
    let colors: BTreeMap<(&str, &str), &'static str> = (report.series.iter())
        .enumerate()
        .map(|(i, s)| {
            (
                (s.route.as_str(), s.segment.as_str()),
                PALETTE[i % PALETTE.len()],
            )
        })
        .collect();
    let color = |r: &str, s: &str| colors.get(&(r, s)).copied().unwrap_or(PALETTE[0]);
    let bars: Vec<Bar> = (lines.iter())
        .filter_map(|l| {
            let a = l.agreement?;
            Some(Bar {
                label: format!("{} · {}", l.route, l.segment),
                value: a.value,
                lo: a.lo,
                hi: a.hi,
                color: color(&l.route, &l.segment),
            })
        })
        .collect();
    let target = lines.first().map_or(0.9, |l| l.guard.min_agreement);
    writeln!(
        out,
        "<h2>Agreement per segment</h2><p class=\"muted\">Bar: agreement. Whisker: 95&nbsp;% interval. Dashed line: the target.</p>{}",
        svg::agreement_bars(&bars, target)
    )?;
    let (Some(first), Some(last)) = (report.first_ts, report.last_ts) else {
        return Ok(());
    };
    let bucket = report.series_ms.max(1);
    let curves: Vec<Curve> = (report.series.iter())
        .map(|s| Curve {
            label: format!("{} · {}", s.route, s.segment),
            color: color(&s.route, &s.segment),
            points: (s.points.iter())
                .filter(|(_, p)| p.decided > 0)
                .map(|(t, p)| (t + bucket / 2, p.matches as f64 / p.decided as f64))
                .collect(),
        })
        .collect();
    let range = (
        first.div_euclid(bucket) * bucket,
        (last.div_euclid(bucket) + 1) * bucket,
    );
    let by = if bucket == DAY_MS { By::Day } else { By::Hour };
    let steps = ((range.1 - range.0) / bucket).max(1);
    // At most six labels: a date and time label is about 80 px wide.
    let every = ((steps + 4) / 5).max(1) * bucket;
    let ticks: Vec<(i64, String)> = (0..=steps)
        .map(|k| range.0 + k * bucket)
        .filter(|t| (t - range.0) % every == 0)
        .map(|t| (t, period(t, by)))
        .collect();
    let events: Vec<(i64, String)> = (report.events.iter())
        .filter(|e| e.ts_ms >= range.0 && e.ts_ms <= range.1)
        .filter_map(|e| Some((e.ts_ms, format!("{} → {}%", e.segment, e.to_weight?))))
        .collect();
    writeln!(
        out,
        "<h2>Agreement over time</h2><p class=\"muted\">Per {}; dashed lines are rollout changes (a segment's share served by the candidate).</p>{}",
        bucket_name(bucket),
        svg::over_time(&curves, &events, range, &ticks)
    )?;
    let rows: Vec<LatencyRow> = (lines.iter())
        .map(|l| LatencyRow {
            label: format!("{} · {}", l.route, l.segment),
            incumbent: [l.incumbent_ms.p50, l.incumbent_ms.p95, l.incumbent_ms.p99],
            candidate: [l.candidate_ms.p50, l.candidate_ms.p95, l.candidate_ms.p99],
        })
        .collect();
    writeln!(out, "<h2>Response time</h2>{}", svg::latency(&rows))
}

/// `day`, `6 hours`, `hour`, `15 minutes`, ...
fn bucket_name(ms: i64) -> String {
    match ms {
        DAY_MS => "day".into(),
        m if m % 3_600_000 == 0 && m > 3_600_000 => format!("{} hours", m / 3_600_000),
        3_600_000 => "hour".into(),
        60_000 => "minute".into(),
        m => format!("{} minutes", m / 60_000),
    }
}

fn figures(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if report.lines.is_empty() {
        return Ok(());
    }
    let keep = |i: usize| i != 2 || report.by != By::Segment;
    writeln!(out, "<h2>All figures</h2><table><tr>")?;
    for (i, h) in super::render::HEADER.iter().enumerate() {
        if keep(i) {
            write!(out, "<th>{}</th>", esc(h))?;
        }
    }
    writeln!(out, "<th>FEEDBACK</th></tr>")?;
    for l in &report.lines {
        write!(out, "<tr>")?;
        let c = cells(l, report.by);
        for (i, cell) in c.iter().enumerate() {
            if keep(i) {
                let cell = if i == 5 { guard(l) } else { cell.clone() };
                write!(out, "<td>{}</td>", esc(&cell))?;
            }
        }
        let feedback = l.ratings.mean.map_or_else(
            || "–".to_string(),
            |m| format!("{m:.1} avg of {}", l.ratings.count),
        );
        writeln!(out, "<td>{}</td></tr>", esc(&feedback))?;
    }
    writeln!(out, "</table>")
}

/// Each top difference with its count, and a command that shows an example.
fn top_differences(l: &Line) -> String {
    let items: Vec<String> = (l.top_diffs.iter())
        .map(|(k, n)| {
            let pointer = if k.is_empty() { "(whole body)" } else { k };
            let example = l.diff_examples.get(k).map_or(String::new(), |id| {
                format!(
                    " <span class=\"muted\">e.g. <code>understudy show {}</code></span>",
                    esc(id)
                )
            });
            format!("<code>{}</code> ({n}){example}", esc(pointer))
        })
        .collect();
    items.join("<br>")
}

fn differences(report: &Report, lines: &[&Line], out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "<h2>Where the candidate differs</h2><table><tr><th>route</th><th>segment</th><th>fields that differed most (count)</th><th>not compared (why)</th><th>safety hits</th><th>feedback</th></tr>"
    )?;
    for l in lines {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.route),
            esc(&l.segment),
            top_differences(l),
            esc(&counted(&l.skip_reasons)),
            l.safety_hits,
            esc(&ratings(&l.ratings))
        )?;
    }
    writeln!(out, "</table>")?;
    if !report.noise.is_empty() {
        writeln!(
            out,
            "<h2>Noise left out</h2><p class=\"muted\">Fields where the current system disagrees with itself; they are not held against the candidate.</p><ul>"
        )?;
        for n in &report.noise {
            writeln!(
                out,
                "<li>{} <code>{}</code> ({} times)</li>",
                esc(&n.route),
                esc(&n.pointer),
                n.hits
            )?;
        }
        writeln!(out, "</ul>")?;
    }
    Ok(())
}

fn events(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    if report.events.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>Rollout history</h2><table><tr><th>when (UTC)</th><th>route</th><th>segment</th><th>change</th><th>by</th><th style=\"text-align:left\">why</th></tr>"
    )?;
    for e in &report.events {
        let change = super::render::change(
            e.mirror.as_deref(),
            e.from_weight,
            e.to_weight,
            e.from_stage.as_deref(),
            e.to_stage.as_deref(),
        );
        writeln!(
            out,
            "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            period(e.ts_ms, By::Hour),
            esc(&e.route),
            esc(&e.segment),
            esc(&change),
            esc(&super::render::actor(&e.actor, e.forced)),
            esc(&e.reason)
        )?;
    }
    writeln!(out, "</table>")
}
