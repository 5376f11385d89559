//! A small hand-written SVG line chart: panels side by side, each with linear axes, "nice"
//! tick values, one polyline (with point markers) per series and a shared legend. Pure: data
//! in, SVG text out.

use std::fmt::Write as _;

const PANEL_WIDTH: f64 = 460.0;
const PANEL_HEIGHT: f64 = 320.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 50.0;
const TITLE_HEIGHT: f64 = 36.0;
const LEGEND_ROW: f64 = 20.0;

/// Colours given to series in order (colour-blind-safe palette).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// One line: (x, y) points in data units, drawn in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Dashed line (used for the peer engine).
    pub dashed: bool,
}

/// One plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic y axis (one tick per decade); points with y ≤ 0 are not drawn.
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Escapes text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Tick values covering `0..=max` with a 1-2-5 step, about `target` of them; the last
/// tick is at or above `max`.
pub fn nice_ticks(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw_step = max / target.max(1) as f64;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw_step)
        .unwrap_or(10.0 * magnitude);
    // A maximum within 2 % of a tick ends the axis there (its point is drawn on the edge).
    let count = ((max / step) - 0.02).ceil().max(1.0) as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Decade ticks covering the positive values `min..=max` (at least two).
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    let (min, max) = match (valid(min), valid(max)) {
        (true, true) => (min.min(max), max.max(min)),
        (true, false) => (min, min),
        (false, true) => (max, max),
        (false, false) => (1.0, 1.0),
    };
    let low = min.log10().floor() as i32;
    let high = (max.log10().ceil() as i32).max(low + 1);
    (low..=high).map(|exponent| 10f64.powi(exponent)).collect()
}

/// A tick label without noise: integers plainly, small values with enough decimals.
fn tick_label(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if value.abs() >= 1000.0 && value.fract() == 0.0 {
        let thousands = value / 1000.0;
        if thousands.fract() == 0.0 {
            format!("{thousands}k")
        } else {
            format!("{thousands:.1}k")
        }
    } else if value.fract() == 0.0 {
        format!("{value}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The whole chart: a title, the panels in a row and a legend of every distinct series
/// label (series with the same label share a colour across panels).
pub fn chart(title: &str, panels: &[Panel]) -> String {
    let mut labels: Vec<(&str, bool)> = Vec::new();
    for series in panels.iter().flat_map(|panel| &panel.series) {
        if !labels.iter().any(|(label, _)| *label == series.label) {
            labels.push((&series.label, series.dashed));
        }
    }
    let colour = |label: &str| {
        let index = labels.iter().position(|(l, _)| *l == label).unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    };
    let width = PANEL_WIDTH * panels.len().max(1) as f64;
    let height = TITLE_HEIGHT + PANEL_HEIGHT + LEGEND_ROW * (labels.len() as f64 + 1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    for (index, panel) in panels.iter().enumerate() {
        draw_panel(
            &mut svg,
            panel,
            index as f64 * PANEL_WIDTH,
            TITLE_HEIGHT,
            &colour,
        );
    }
    let legend_top = TITLE_HEIGHT + PANEL_HEIGHT + 8.0;
    for (row, (label, dashed)) in labels.iter().enumerate() {
        let y = legend_top + row as f64 * LEGEND_ROW;
        let dash = if *dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{c}" stroke-width="2"{dash}/><text x="{tx}" y="{ty}">{label}</text>"#,
            x1 = MARGIN_LEFT,
            x2 = MARGIN_LEFT + 30.0,
            c = colour(label),
            tx = MARGIN_LEFT + 38.0,
            ty = y + 4.0,
            label = escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(
    svg: &mut String,
    panel: &Panel,
    left: f64,
    top: f64,
    colour: &dyn Fn(&str) -> &'static str,
) {
    let finite = |v: f64| v.is_finite();
    let points = || {
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| finite(*x) && finite(*y))
    };
    let x_ticks = nice_ticks(points().map(|(x, _)| x).fold(0.0, f64::max), 5);
    let y_ticks = if panel.log_y {
        let positive = || points().map(|(_, y)| y).filter(|y| *y > 0.0);
        log_ticks(
            positive().fold(f64::INFINITY, f64::min),
            positive().fold(0.0, f64::max),
        )
    } else {
        nice_ticks(points().map(|(_, y)| y).fold(0.0, f64::max), 5)
    };
    let x_max = x_ticks.last().copied().unwrap_or(1.0);
    let y_min = if panel.log_y {
        y_ticks.first().copied().unwrap_or(1.0)
    } else {
        0.0
    };
    let y_max = y_ticks.last().copied().unwrap_or(1.0);
    // Where on the axis (0 = bottom, 1 = top) a value lies.
    let y_fraction = |y: f64| {
        if panel.log_y {
            (y.log10() - y_min.log10()) / (y_max.log10() - y_min.log10()).max(f64::EPSILON)
        } else {
            y / y_max
        }
    };
    let plot_left = left + MARGIN_LEFT;
    let plot_right = left + PANEL_WIDTH - MARGIN_RIGHT;
    let plot_top = top + MARGIN_TOP;
    let plot_bottom = top + PANEL_HEIGHT - MARGIN_BOTTOM;
    let to_x = |x: f64| plot_left + (x / x_max).clamp(0.0, 1.0) * (plot_right - plot_left);
    let to_y = |y: f64| plot_bottom - y_fraction(y).clamp(0.0, 1.0) * (plot_bottom - plot_top);
    let drawable = |(x, y): &(f64, f64)| finite(*x) && finite(*y) && (!panel.log_y || *y > 0.0);

    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
        (plot_left + plot_right) / 2.0,
        top + 20.0,
        escape(&panel.title)
    );
    for tick in &y_ticks {
        let y = to_y(*tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{plot_left}" y1="{y:.1}" x2="{plot_right}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"##,
            tx = plot_left - 6.0,
            ty = y + 4.0,
            label = tick_label(*tick)
        );
    }
    for tick in &x_ticks {
        let x = to_x(*tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{plot_top}" x2="{x:.1}" y2="{plot_bottom}" stroke="#eee"/><text x="{x:.1}" y="{ty}" text-anchor="middle">{label}</text>"##,
            ty = plot_bottom + 16.0,
            label = tick_label(*tick)
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{plot_left}" y="{plot_top}" width="{w}" height="{h}" fill="none" stroke="black"/>"#,
        w = plot_right - plot_left,
        h = plot_bottom - plot_top
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (plot_left + plot_right) / 2.0,
        plot_bottom + 36.0,
        escape(&panel.x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        left + 16.0,
        (plot_top + plot_bottom) / 2.0,
        escape(&panel.y_label)
    );
    for series in &panel.series {
        let coordinates: Vec<String> = series
            .points
            .iter()
            .filter(|point| drawable(point))
            .map(|(x, y)| format!("{:.1},{:.1}", to_x(*x), to_y(*y)))
            .collect();
        if coordinates.is_empty() {
            continue;
        }
        let c = colour(&series.label);
        let dash = if series.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
            coordinates.join(" "),
            escape(&series.label)
        );
        for point in &coordinates {
            let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(series: Vec<Series>) -> Panel {
        Panel {
            title: "p99 latency".into(),
            x_label: "offered load (packets/s)".into(),
            y_label: "ms".into(),
            log_y: false,
            series,
        }
    }

    #[test]
    fn ticks_are_one_two_five_and_cover_the_maximum() {
        assert_eq!(nice_ticks(10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(
            nice_ticks(9_000.0, 5),
            vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(
            nice_ticks(0.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let small = nice_ticks(0.037, 4);
        assert!(
            small.last().unwrap() >= &0.037 && small.len() <= 6,
            "{small:?}"
        );
        assert_eq!(nice_ticks(f64::NAN, 5).last(), Some(&1.0));
        assert_eq!(tick_label(20_000.0), "20k");
        assert_eq!(tick_label(2_500.0), "2.5k");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(40.0), "40");
    }

    #[test]
    fn draws_every_series_inside_its_plot() {
        let svg = chart(
            "relay <20 ms>",
            &[
                panel(vec![
                    Series {
                        label: "switchboard relay".into(),
                        points: vec![(1_000.0, 0.1), (5_000.0, 0.2), (10_000.0, f64::NAN)],
                        dashed: false,
                    },
                    Series {
                        label: "rtpengine relay".into(),
                        points: vec![(1_000.0, 0.3), (5_000.0, 0.9)],
                        dashed: true,
                    },
                ]),
                panel(vec![Series {
                    label: "switchboard relay".into(),
                    points: vec![],
                    dashed: false,
                }]),
            ],
        );
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains("relay &lt;20 ms&gt;"), "title escaped");
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "empty series draw nothing"
        );
        assert_eq!(svg.matches("<circle").count(), 4, "NaN points are skipped");
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            2,
            "dashed line and its legend"
        );
        // Both series labels in the legend, once each, with distinct colours.
        assert_eq!(svg.matches(">switchboard relay</text>").count(), 1);
        assert_eq!(svg.matches(">rtpengine relay</text>").count(), 1);
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]));
        // Every point lies inside the first panel's plot area.
        for circle in svg.lines().filter(|l| l.starts_with("<circle")) {
            let number = |attribute: &str| -> f64 {
                let start = circle.find(attribute).unwrap() + attribute.len() + 2;
                let rest = &circle[start..];
                rest[..rest.find('"').unwrap()].parse().unwrap()
            };
            let (x, y) = (number("cx"), number("cy"));
            assert!(
                (MARGIN_LEFT..=PANEL_WIDTH - MARGIN_RIGHT).contains(&x),
                "{circle}"
            );
            assert!(
                (TITLE_HEIGHT + MARGIN_TOP..=TITLE_HEIGHT + PANEL_HEIGHT - MARGIN_BOTTOM)
                    .contains(&y),
                "{circle}"
            );
        }
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        assert_eq!(
            log_ticks(0.05, 7_835.0),
            vec![0.01, 0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0]
        );
        assert_eq!(log_ticks(1.0, 1.0), vec![1.0, 10.0]);
        assert_eq!(log_ticks(f64::INFINITY, 0.0), vec![1.0, 10.0]);
        let mut latency = panel(vec![Series {
            label: "engine".into(),
            points: vec![(1.0, 0.1), (2.0, 10.0), (3.0, 0.0), (4.0, 1000.0)],
            dashed: false,
        }]);
        latency.log_y = true;
        let svg = chart("log", &[latency]);
        assert_eq!(
            svg.matches("<circle").count(),
            3,
            "zero cannot be drawn on a log axis"
        );
        // 0.1, 10 and 1000 are evenly spaced on the axis 0.1..1000.
        let ys: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<circle"))
            .map(|l| {
                let start = l.find("cy=\"").unwrap() + 4;
                l[start..start + l[start..].find('"').unwrap()]
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(((ys[0] - ys[1]) - (ys[1] - ys[2])).abs() < 0.2, "{ys:?}");
        assert!(svg.contains(">0.1</text>") && svg.contains(">1k</text>"));
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"a<b>&"c"'"#), "a&lt;b&gt;&amp;&quot;c&quot;&#39;");
    }
}
