//! Issue 27: the over-time chart's change labels overlapped, curves at the
//! same level hid each other, and the latency chart's linear scale hid a
//! 3 ms bar beside 700 ms. Checked on the SVG itself.

use super::*;

/// `(x, y, text)` of every `<text class="event" ...>` label.
fn event_labels(svg: &str) -> Vec<(f64, f64, String)> {
    let attr = |tag: &str, name: &str| -> f64 {
        let start = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        tag[start..].split('"').next().unwrap().parse().unwrap()
    };
    svg.split("<text class=\"event\"")
        .skip(1)
        .map(|rest| {
            let (tag, body) = rest.split_once('>').unwrap();
            let text = body.split("</text>").next().unwrap().to_string();
            (attr(tag, "x"), attr(tag, "y"), text)
        })
        .collect()
}

#[test]
fn change_labels_never_overlap() {
    let curve = Curve {
        label: "enterprise".into(),
        color: PALETTE[0],
        points: vec![(0, 0.9), (3_600_000, 0.95)],
    };
    // Four changes within a few minutes of each other: the labels collide
    // when drawn at one height.
    let events: Vec<(i64, String)> = (0..4)
        .map(|i| {
            (
                1_000_000 + i * 60_000,
                format!("enterprise → {}%", [1, 5, 10, 25][i as usize]),
            )
        })
        .collect();
    let svg = over_time(&[curve], &events, (0, 3_600_000), &[]);
    let labels = event_labels(&svg);
    assert_eq!(labels.len(), 4, "{svg}");
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let (wa, wb) = (label_width(&a.2), label_width(&b.2));
            let apart_x = a.0 + wa <= b.0 || b.0 + wb <= a.0;
            let apart_y = (a.1 - b.1).abs() >= EVENT_FONT;
            assert!(apart_x || apart_y, "{a:?} overlaps {b:?}");
        }
    }
}

#[test]
fn curves_at_the_same_level_stay_visible() {
    let flat = |label: &str, color| Curve {
        label: label.into(),
        color,
        points: vec![(0, 1.0), (1000, 1.0)],
    };
    let svg = over_time(
        &[
            flat("a", PALETTE[0]),
            flat("b", PALETTE[1]),
            flat("c", PALETTE[2]),
        ],
        &[],
        (0, 1000),
        &[],
    );
    let styles: Vec<&str> = svg
        .split("<polyline ")
        .skip(1)
        .map(|p| p.split("points=").next().unwrap())
        .collect();
    assert_eq!(styles.len(), 3);
    for (i, a) in styles.iter().enumerate() {
        for b in &styles[i + 1..] {
            // Apart from the colour, each curve's line differs (dashes, width).
            let without_colour = |s: &str| {
                s.split(' ')
                    .filter(|a| !a.starts_with("stroke="))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            assert_ne!(
                without_colour(a),
                without_colour(b),
                "same line style: {a} / {b}"
            );
        }
    }
    // The later curves are drawn thinner on top, so a line under one shows.
    assert!(svg.contains("stroke-dasharray"), "{svg}");
}

#[test]
fn latency_uses_a_log_scale_with_labelled_ticks() {
    let rows = [
        LatencyRow {
            label: "fast".into(),
            incumbent: [Some(3.0), Some(3.5), Some(4.0)],
            candidate: [Some(3.0), Some(3.2), Some(3.4)],
        },
        LatencyRow {
            label: "slow".into(),
            incumbent: [Some(700.0), Some(710.0), Some(720.0)],
            candidate: [Some(650.0), Some(700.0), Some(800.0)],
        },
    ];
    let svg = latency(&rows);
    for tick in [">1 ms<", ">10 ms<", ">100 ms<", ">1 s<"] {
        assert!(svg.contains(tick), "no tick {tick} in {svg}");
    }
    // The 3 ms bar is a visible share of the 700 ms one, not 0.4 % of it.
    let widths: Vec<f64> = svg
        .split("<rect class=\"p50\"")
        .skip(1)
        .map(|r| {
            let w = r.split("width=\"").nth(1).unwrap();
            w.split('"').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(widths.len(), 4, "{svg}");
    assert!(
        widths[0] / widths[2] > 0.1,
        "3 ms bar {} vs 700 ms bar {}",
        widths[0],
        widths[2]
    );
}
