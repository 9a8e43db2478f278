//! Inline SVG charts for the HTML report: plain strings, no scripts, no fonts
//! or images fetched from anywhere, so the file opens the same offline.

/// Colours for segments, in order (colour-blind safe, Okabe–Ito).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

pub use crate::html::esc;

/// Font size of the change labels on the chart over time.
const EVENT_FONT: f64 = 10.0;

/// About how wide a label is drawn at [`EVENT_FONT`] (a generous average
/// glyph width: a box that holds the text, for placing labels apart).
fn label_width(label: &str) -> f64 {
    label.chars().count() as f64 * EVENT_FONT * 0.62
}

/// One bar: a label, a value in [0, 1] and its interval.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub color: &'static str,
}

/// Horizontal bars 0–100 % with interval whiskers and a dashed line at `threshold`.
pub fn agreement_bars(bars: &[Bar], threshold: f64) -> String {
    let (left, width, row) = (190.0, 520.0, 34.0);
    let height = 40.0 + row * bars.len() as f64;
    let x = |v: f64| left + v.clamp(0.0, 1.0) * width;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 760 {height}" width="760" height="{height}" role="img">"#
    );
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        s += &format!(
            r##"<line x1="{0}" x2="{0}" y1="10" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" font-size="11" text-anchor="middle" fill="#666">{3}%</text>"##,
            x(t),
            height - 22.0,
            height - 8.0,
            (t * 100.0) as u32
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = 14.0 + row * i as f64;
        s += &format!(
            r##"<text x="{0}" y="{1}" font-size="13" text-anchor="end" fill="#222">{2}</text><rect x="{left}" y="{3}" width="{4:.1}" height="18" fill="{5}" opacity="0.85"/><line x1="{6:.1}" x2="{7:.1}" y1="{8}" y2="{8}" stroke="#222" stroke-width="2"/><line x1="{6:.1}" x2="{6:.1}" y1="{9}" y2="{10}" stroke="#222"/><line x1="{7:.1}" x2="{7:.1}" y1="{9}" y2="{10}" stroke="#222"/><text x="{11:.1}" y="{1}" font-size="12" fill="#222">{12:.1}%</text>"##,
            left - 8.0,
            y + 13.0,
            esc(&b.label),
            y,
            x(b.value) - left,
            b.color,
            x(b.lo),
            x(b.hi),
            y + 9.0,
            y + 3.0,
            y + 15.0,
            x(b.hi) + 6.0,
            b.value * 100.0
        );
    }
    s += &format!(
        r##"<line x1="{0:.1}" x2="{0:.1}" y1="6" y2="{1}" stroke="#c00" stroke-dasharray="5,3" stroke-width="1.5"/><text x="{0:.1}" y="{2}" font-size="11" fill="#c00" text-anchor="middle">target {3:.0}%</text></svg>"##,
        x(threshold),
        height - 22.0,
        height - 26.0,
        threshold * 100.0
    );
    s
}

/// One line of the chart over time.
pub struct Curve {
    pub label: String,
    pub color: &'static str,
    /// `(unix ms, value in [0, 1])`, ascending.
    pub points: Vec<(i64, f64)>,
}

/// Dash patterns of the curves over time, in order: with the colour and a
/// width that shrinks curve by curve (each drawn on top of the ones before),
/// two segments at the same level stay visible.
const DASHES: [&str; 8] = [
    "", "8,3", "2,3", "10,3,2,3", "5,5", "1,3", "14,4", "6,2,2,2",
];

/// The line style of the `i`th curve: its dash pattern and width.
fn line_style(i: usize) -> String {
    let width = (4.0 - 0.7 * i as f64).max(1.5);
    match DASHES[i % DASHES.len()] {
        "" => format!(r#"stroke-width="{width:.1}""#),
        dash => format!(r#"stroke-width="{width:.1}" stroke-dasharray="{dash}""#),
    }
}

/// Places change labels in lanes (rows) so that no two overlap: each goes
/// into the first lane whose last label ends before it starts. Returns each
/// label's left edge and lane, and the number of lanes.
fn label_lanes(at: &[(f64, f64)], right_edge: f64) -> (Vec<(f64, usize)>, usize) {
    let mut order: Vec<usize> = (0..at.len()).collect();
    order.sort_by(|a, b| at[*a].0.total_cmp(&at[*b].0));
    let mut ends: Vec<f64> = Vec::new();
    let mut placed = vec![(0.0, 0); at.len()];
    for i in order {
        let (line_x, width) = at[i];
        // Right of its line, or left of it when it would leave the chart.
        let start = if line_x + 3.0 + width > right_edge {
            line_x - 3.0 - width
        } else {
            line_x + 3.0
        };
        let lane = match ends.iter().position(|end| *end + 4.0 <= start) {
            Some(lane) => lane,
            None => {
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
        };
        ends[lane] = start + width;
        placed[i] = (start, lane);
    }
    (placed, ends.len())
}

/// Agreement over time, one curve per segment, events as labelled vertical
/// lines whose labels stack in lanes above the plot instead of overlapping.
pub fn over_time(
    curves: &[Curve],
    events: &[(i64, String)],
    range: (i64, i64),
    ticks: &[(i64, String)],
) -> String {
    let (left, w, h) = (50.0, 660.0, 220.0);
    let span = (range.1 - range.0).max(1) as f64;
    let x = |t: i64| left + (t - range.0) as f64 / span * w;
    let lane_height = EVENT_FONT + 3.0;
    let at: Vec<(f64, f64)> = (events.iter())
        .map(|(t, label)| (x(*t), label_width(label)))
        .collect();
    let (placed, lanes) = label_lanes(&at, 755.0);
    let top = 16.0 + lane_height * lanes as f64;
    let y = |v: f64| top + (1.0 - v.clamp(0.0, 1.0)) * h;
    let legend_rows = curves.len().div_ceil(4) as f64;
    let height = top + h + 40.0 + 18.0 * legend_rows;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 760 {height}" width="760" height="{height}" role="img">"#
    );
    for v in [0.0, 0.25, 0.5, 0.75, 1.0] {
        s += &format!(
            r##"<line x1="{left}" x2="{0}" y1="{1:.1}" y2="{1:.1}" stroke="#e5e5e5"/><text x="{2}" y="{3:.1}" font-size="11" text-anchor="end" fill="#666">{4}%</text>"##,
            left + w,
            y(v),
            left - 6.0,
            y(v) + 4.0,
            (v * 100.0) as u32
        );
    }
    for (t, label) in ticks {
        s += &format!(
            r##"<text x="{0:.1}" y="{1}" font-size="10" text-anchor="middle" fill="#666">{2}</text>"##,
            x(*t),
            top + h + 14.0,
            esc(label)
        );
    }
    for ((t, label), (label_x, lane)) in events.iter().zip(&placed) {
        let label_y = 12.0 + lane_height * *lane as f64;
        s += &format!(
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2}" stroke="#888" stroke-dasharray="3,3"/><text class="event" x="{3:.1}" y="{4:.1}" font-size="{EVENT_FONT}" fill="#555">{5}</text>"##,
            x(*t),
            label_y - EVENT_FONT + 2.0,
            top + h,
            label_x,
            label_y,
            esc(label)
        );
    }
    for (i, c) in curves.iter().enumerate() {
        let pts: Vec<String> = (c.points.iter())
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        s += &format!(
            r#"<polyline fill="none" stroke="{}" {} points="{}"/>"#,
            c.color,
            line_style(i),
            pts.join(" ")
        );
        for (t, v) in &c.points {
            s += &format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                x(*t),
                y(*v),
                c.color
            );
        }
    }
    for (i, c) in curves.iter().enumerate() {
        let lx = left + 170.0 * (i % 4) as f64;
        let ly = top + h + 32.0 + 18.0 * (i / 4) as f64;
        s += &format!(
            r#"<line x1="{lx}" x2="{0}" y1="{1}" y2="{1}" stroke="{2}" {3}/><text x="{4}" y="{5}" font-size="12">{6}</text>"#,
            lx + 22.0,
            ly - 4.0,
            c.color,
            line_style(i),
            lx + 26.0,
            ly,
            esc(&c.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// Latency of one segment: p50, p95, p99 of each side (ms).
pub struct LatencyRow {
    pub label: String,
    pub incumbent: [Option<f64>; 3],
    pub candidate: [Option<f64>; 3],
}

/// A latency as a tick label: `0.1 ms`, `10 ms`, `1 s`.
fn ms_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", v / 1000.0)
    } else {
        format!("{v} ms")
    }
}

/// Per segment two bars (incumbent grey, candidate blue) to p50, a whisker to
/// p99 and a tick at p95, on a log scale with a labelled tick per power of
/// ten: a 3 ms bar stays visible beside a 700 ms one.
pub fn latency(rows: &[LatencyRow]) -> String {
    let (left, width, row) = (190.0, 420.0, 44.0);
    let values: Vec<f64> = (rows.iter())
        .flat_map(|r| r.incumbent.iter().chain(&r.candidate))
        .filter_map(|v| *v)
        .filter(|v| *v > 0.0)
        .collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(1.0_f64, f64::max);
    // From the power of ten below the fastest (strictly, so it has a bar)
    // to the one at or above the slowest; at least 0.1 ms.
    let lo = if min.is_finite() {
        (min.log10() - 1e-9).floor().max(-1.0)
    } else {
        0.0
    };
    let hi = max.log10().ceil().max(lo + 1.0);
    let x = |v: f64| left + ((v.max(10f64.powf(lo)).log10() - lo) / (hi - lo)) * width;
    let height = 66.0 + row * rows.len() as f64;
    let axis = height - 46.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 760 {height}" width="760" height="{height}" role="img">"#
    );
    for e in (lo as i32)..=(hi as i32) {
        let v = 10f64.powi(e);
        s += &format!(
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="6" y2="{axis}" stroke="#e5e5e5"/><text x="{0:.1}" y="{1}" font-size="11" text-anchor="middle" fill="#666">{2}</text>"##,
            x(v),
            axis + 13.0,
            ms_label(v)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y0 = 10.0 + row * i as f64;
        s += &format!(
            r##"<text x="{0}" y="{1}" font-size="13" text-anchor="end" fill="#222">{2}</text>"##,
            left - 8.0,
            y0 + 20.0,
            esc(&r.label)
        );
        for (k, (side, color)) in [(&r.incumbent, "#999"), (&r.candidate, "#0072B2")]
            .into_iter()
            .enumerate()
        {
            let y = y0 + 4.0 + 17.0 * k as f64;
            let [Some(p50), Some(p95), Some(p99)] = *side else {
                continue;
            };
            s += &format!(
                r##"<rect class="p50" x="{left}" y="{y}" width="{0:.1}" height="13" fill="{color}"/><line x1="{1:.1}" x2="{2:.1}" y1="{3}" y2="{3}" stroke="{color}" stroke-width="2"/><line x1="{4:.1}" x2="{4:.1}" y1="{y}" y2="{5}" stroke="#222"/><text x="{6:.1}" y="{7}" font-size="11" fill="#222">{8:.0} / {9:.0} / {10:.0} ms</text>"##,
                x(p50) - left,
                x(p50),
                x(p99),
                y + 6.5,
                x(p95),
                y + 13.0,
                x(p99) + 6.0,
                y + 11.0,
                p50,
                p95,
                p99
            );
        }
    }
    s += &format!(
        r##"<rect x="{left}" y="{0}" width="12" height="12" fill="#999"/><text x="{1}" y="{2}" font-size="12">incumbent</text><rect x="{3}" y="{0}" width="12" height="12" fill="#0072B2"/><text x="{4}" y="{2}" font-size="12">candidate</text><text x="{5}" y="{2}" font-size="11" fill="#666">bar: p50 · tick: p95 · whisker end: p99 · log scale</text></svg>"##,
        height - 26.0,
        left + 16.0,
        height - 16.0,
        left + 110.0,
        left + 126.0,
        left + 230.0
    );
    s
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
