//! `--plot FILE.svg`: the storm over time as one hand-written SVG — boots per second (bars,
//! failures stacked in red) with the cumulative ok boots (line, right axis) on top, and p50 /
//! p99 latency per second below; scenario events (kills, commits, a learner added) drawn as
//! dashed vertical lines across both panels with their labels.
//!
//! Invariants: pure (a function from the series to a `String`, no I/O, no clock); every
//! number written is finite; every label is XML-escaped; no dependency (a browser, or any XML
//! tool, reads it).

use std::fmt::Write as _;

use crate::timeline::{Event, TimelinePoint};

/// Size of the picture in SVG user units (pixels).
pub const PLOT_WIDTH: f64 = 960.0;
pub const PLOT_HEIGHT: f64 = 600.0;
/// Space left of and right of the panels for the axes' labels.
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 80.0;
/// Vertical extent of the two panels.
const TOP_PANEL: (f64, f64) = (70.0, 290.0);
const BOTTOM_PANEL: (f64, f64) = (350.0, 550.0);
/// Horizontal grid lines (and axis labels) per panel.
const Y_TICKS: u32 = 4;
/// Event labels are staggered over this many rows so close events stay readable.
const EVENT_LABEL_ROWS: usize = 3;

const COLOR_OK: &str = "#8fb8de";
const COLOR_FAILED: &str = "#d62728";
const COLOR_TOTAL: &str = "#1f3b73";
const COLOR_P50: &str = "#2ca02c";
const COLOR_P99: &str = "#ff7f0e";
const COLOR_EVENT: &str = "#7f3fbf";

/// Escapes text for an XML text node or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The smallest 1, 2 or 5 × 10^k at or above `value` (1 for nothing to show).
pub fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A number for an axis label: no trailing zeros, thousands as `k`.
fn axis_label(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{}k", trim(value / 1000.0))
    } else {
        trim(value)
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Maps data coordinates onto one panel.
struct Panel {
    top: f64,
    bottom: f64,
    x_max_s: f64,
}

impl Panel {
    fn x(&self, t_s: f64) -> f64 {
        let width = PLOT_WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
        MARGIN_LEFT + width * (t_s / self.x_max_s).clamp(0.0, 1.0)
    }

    fn y(&self, value: f64, max: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * (value / max).clamp(0.0, 1.0)
    }

    /// Frame, horizontal grid and the left (and optionally right) axis labels.
    fn axes(&self, out: &mut String, left_max: f64, left_unit: &str, right: Option<(f64, &str)>) {
        let right_x = PLOT_WIDTH - MARGIN_RIGHT;
        let _ = writeln!(
            out,
            r##"<rect x="{MARGIN_LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#888"/>"##,
            self.top,
            right_x - MARGIN_LEFT,
            self.bottom - self.top
        );
        for tick in 0..=Y_TICKS {
            let fraction = f64::from(tick) / f64::from(Y_TICKS);
            let y = self.bottom - (self.bottom - self.top) * fraction;
            if tick > 0 && tick < Y_TICKS {
                let _ = writeln!(
                    out,
                    r##"<line x1="{MARGIN_LEFT}" y1="{y:.1}" x2="{right_x}" y2="{y:.1}" stroke="#ddd"/>"##
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                MARGIN_LEFT - 6.0,
                y + 4.0,
                axis_label(left_max * fraction)
            );
            if let Some((right_max, _)) = right {
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                    right_x + 6.0,
                    y + 4.0,
                    axis_label(right_max * fraction)
                );
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{MARGIN_LEFT}" y="{:.1}" font-weight="bold">{}</text>"#,
            self.top - 8.0,
            escape(left_unit)
        );
        if let Some((_, unit)) = right {
            let _ = writeln!(
                out,
                r#"<text x="{right_x}" y="{:.1}" text-anchor="end" fill="{COLOR_TOTAL}">{}</text>"#,
                self.top - 8.0,
                escape(unit)
            );
        }
        // Seconds along the bottom.
        let step_s = nice_ceiling(self.x_max_s / 10.0);
        let mut t = 0.0;
        while t <= self.x_max_s + 1e-9 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                self.x(t),
                self.bottom + 16.0,
                trim(t)
            );
            t += step_s;
        }
    }
}

/// A polyline through the points that have a value (gaps are skipped, not drawn as zero).
fn polyline(out: &mut String, color: &str, points: impl Iterator<Item = (f64, f64)>) {
    let coords: Vec<String> = points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    if coords.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        coords.join(" ")
    );
}

fn legend(out: &mut String, x: f64, y: f64, entries: &[(&str, &str)]) {
    let mut x = x;
    for (color, label) in entries {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 10.0,
            x + 16.0,
            escape(label)
        );
        x += 26.0 + 7.0 * label.len() as f64;
    }
}

/// The SVG for a storm: `points` one per second (as `Timeline::points` gives them), `events`
/// at their time, `title` on top.
pub fn svg(points: &[TimelinePoint], events: &[Event], title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN_LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    // The x axis covers every bucket (each 1 s wide) and every event.
    let last_event_s = events.iter().map(|e| e.t_s).fold(0.0, f64::max);
    let x_max_s = (points.len() as f64).max(last_event_s.ceil()).max(1.0);
    let top = Panel {
        top: TOP_PANEL.0,
        bottom: TOP_PANEL.1,
        x_max_s,
    };
    let bottom = Panel {
        top: BOTTOM_PANEL.0,
        bottom: BOTTOM_PANEL.1,
        x_max_s,
    };
    rate_panel(&mut out, &top, points);
    latency_panel(&mut out, &bottom, points);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the storm started</text>"#,
        (MARGIN_LEFT + PLOT_WIDTH - MARGIN_RIGHT) / 2.0,
        BOTTOM_PANEL.1 + 36.0
    );
    if points.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no boot finished</text>"#,
            PLOT_WIDTH / 2.0,
            (TOP_PANEL.0 + TOP_PANEL.1) / 2.0
        );
    }
    event_lines(&mut out, &top, events);
    out.push_str("</svg>\n");
    out
}

/// Top panel: boots per second (bars: ok, failed stacked on top) and the cumulative total.
fn rate_panel(out: &mut String, panel: &Panel, points: &[TimelinePoint]) {
    let rate_max = nice_ceiling(
        points
            .iter()
            .map(|p| (p.boots_ok + p.boots_failed) as f64)
            .fold(0.0, f64::max),
    );
    let total_max = nice_ceiling(points.last().map_or(0, |p| p.boots_ok_total) as f64);
    panel.axes(
        out,
        rate_max,
        "boots/s (per 1 s bucket)",
        Some((total_max, "boots ok, cumulative")),
    );
    for p in points {
        let t = p.t_s as f64;
        let (x0, x1) = (panel.x(t) + 1.0, panel.x(t + 1.0) - 1.0);
        let width = (x1 - x0).max(0.5);
        let y_ok = panel.y(p.boots_ok as f64, rate_max);
        let y_all = panel.y((p.boots_ok + p.boots_failed) as f64, rate_max);
        let _ = writeln!(
            out,
            r#"<rect x="{x0:.1}" y="{y_ok:.1}" width="{width:.1}" height="{:.1}" fill="{COLOR_OK}"/>"#,
            panel.bottom - y_ok
        );
        if p.boots_failed > 0 {
            let _ = writeln!(
                out,
                r#"<rect x="{x0:.1}" y="{y_all:.1}" width="{width:.1}" height="{:.1}" fill="{COLOR_FAILED}"/>"#,
                y_ok - y_all
            );
        }
    }
    polyline(
        out,
        COLOR_TOTAL,
        std::iter::once((panel.x(0.0), panel.y(0.0, total_max))).chain(points.iter().map(|p| {
            (
                panel.x(p.t_s as f64 + 1.0),
                panel.y(p.boots_ok_total as f64, total_max),
            )
        })),
    );
    legend(
        out,
        MARGIN_LEFT + 250.0,
        TOP_PANEL.0 - 8.0,
        &[
            (COLOR_OK, "ok/s"),
            (COLOR_FAILED, "failed/s"),
            (COLOR_TOTAL, "cumulative ok"),
        ],
    );
}

/// Bottom panel: latency percentiles per second, at the middle of each bucket.
fn latency_panel(out: &mut String, panel: &Panel, points: &[TimelinePoint]) {
    let latency_max = nice_ceiling(
        points
            .iter()
            .filter_map(|p| p.p99_ms.or(p.p50_ms))
            .fold(0.0, f64::max),
    );
    panel.axes(out, latency_max, "latency ms (per 1 s bucket)", None);
    for (color, pick) in [
        (
            COLOR_P50,
            (|p: &TimelinePoint| p.p50_ms) as fn(&TimelinePoint) -> Option<f64>,
        ),
        (COLOR_P99, |p: &TimelinePoint| p.p99_ms),
    ] {
        polyline(
            out,
            color,
            points.iter().filter_map(|p| {
                let v = pick(p)?;
                Some((panel.x(p.t_s as f64 + 0.5), panel.y(v, latency_max)))
            }),
        );
    }
    legend(
        out,
        MARGIN_LEFT + 250.0,
        BOTTOM_PANEL.0 - 8.0,
        &[(COLOR_P50, "p50"), (COLOR_P99, "p99")],
    );
}

/// Events across both panels, labels staggered in rows above the top panel (`panel`, whose
/// x axis both panels share).
fn event_lines(out: &mut String, panel: &Panel, events: &[Event]) {
    for (index, event) in events.iter().enumerate() {
        if !event.t_s.is_finite() {
            continue;
        }
        let x = panel.x(event.t_s);
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{COLOR_EVENT}" stroke-width="1.5" stroke-dasharray="5,4"/>"#,
            TOP_PANEL.0 - 2.0,
            BOTTOM_PANEL.1
        );
        let row = (index % EVENT_LABEL_ROWS) as f64;
        let anchor = if x > PLOT_WIDTH * 0.7 { "end" } else { "start" };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{COLOR_EVENT}" text-anchor="{anchor}">{} ({}s)</text>"#,
            x + if anchor == "end" { -3.0 } else { 3.0 },
            TOP_PANEL.0 + 14.0 + 14.0 * row,
            escape(&event.label),
            trim(event.t_s)
        );
    }
}

/// Checks that `text` is well-formed XML as far as this module writes it (nested elements,
/// self-closing tags, attributes without `>` in them): for tests, here and end to end.
pub fn check_well_formed(text: &str) -> Result<(), String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after
            .find('>')
            .ok_or_else(|| format!("unclosed tag near {:?}", &rest[open..]))?;
        let tag = &after[..close];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.starts_with('?') && !tag.starts_with('!') && !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("");
            stack.push(name);
        }
        let text_between = &after[close + 1..];
        let next = text_between.find('<').unwrap_or(text_between.len());
        if text_between[..next].contains('&') {
            let segment = &text_between[..next];
            for (i, _) in segment.match_indices('&') {
                let entity = &segment[i..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e))
                {
                    return Err(format!("bare & in {segment:?}"));
                }
            }
        }
        rest = text_between;
    }
    if !stack.is_empty() {
        return Err(format!("unclosed elements: {stack:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t_s: u64, ok: u64, failed: u64, total: u64, p50: f64, p99: f64) -> TimelinePoint {
        TimelinePoint {
            t_s,
            boots_ok: ok,
            boots_failed: failed,
            boots_ok_total: total,
            p50_ms: Some(p50),
            p99_ms: Some(p99),
        }
    }

    fn storm() -> (Vec<TimelinePoint>, Vec<Event>) {
        let points = vec![
            point(0, 500, 0, 500, 20.0, 40.0),
            point(1, 450, 3, 950, 25.0, 2_100.0),
            TimelinePoint {
                p50_ms: None,
                p99_ms: None,
                ..point(2, 0, 0, 950, 0.0, 0.0)
            },
            point(3, 520, 0, 1_470, 19.0, 35.0),
        ];
        let events = vec![
            Event {
                t_s: 0.0,
                label: "commits every 200 ms".into(),
            },
            Event {
                t_s: 1.002,
                label: "kill -9 learner-1 <rack \"a\"> & co".into(),
            },
        ];
        (points, events)
    }

    #[test]
    fn the_svg_is_well_formed_and_shows_every_series_and_event() {
        let (points, events) = storm();
        let svg = svg(&points, &events, "boots: 1470 ok");
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        check_well_formed(&svg).unwrap();
        // Labels are escaped, and shown with their time.
        assert!(svg.contains("kill -9 learner-1 &lt;rack &quot;a&quot;&gt; &amp; co (1s)"));
        assert!(svg.contains("commits every 200 ms (0s)"));
        // Bars: one ok bar per second, one failed bar where boots failed.
        assert_eq!(
            svg.matches(&format!(r#"fill="{COLOR_OK}"/>"#)).count(),
            4 + 1
        );
        assert_eq!(
            svg.matches(&format!(r#"fill="{COLOR_FAILED}"/>"#)).count(),
            1 + 1
        );
        // Cumulative line and the p50/p99 lines (the empty second is skipped, not 0).
        assert_eq!(svg.matches("<polyline").count(), 3);
        let p99_line = svg
            .lines()
            .find(|l| l.starts_with("<polyline") && l.contains(COLOR_P99))
            .unwrap();
        assert_eq!(p99_line.matches(',').count(), 3, "{p99_line}");
        // The latency axis reaches the 2.1 s spike.
        assert!(svg.contains(">5000<"), "latency axis max 5000 ms");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn an_empty_storm_still_draws() {
        let svg = svg(&[], &[], "nothing");
        check_well_formed(&svg).unwrap();
        assert!(svg.contains("no boot finished"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn an_event_after_the_last_boot_widens_the_axis() {
        let (points, _) = storm();
        let late = [Event {
            t_s: 9.5,
            label: "learner-3 ready".into(),
        }];
        let svg = svg(&points, &late, "t");
        // The axis reaches 10 s: the event is inside the frame, right-aligned near its end.
        assert!(
            svg.contains(r#"text-anchor="end">learner-3 ready (9.5s)"#),
            "{svg}"
        );
    }

    #[test]
    fn nice_ceilings() {
        for (value, nice) in [
            (0.0, 1.0),
            (f64::NAN, 1.0),
            (0.3, 0.5),
            (1.0, 1.0),
            (1.2, 2.0),
            (4.0, 5.0),
            (7.0, 10.0),
            (453.0, 500.0),
            (2_100.0, 5_000.0),
        ] {
            assert!(
                (nice_ceiling(value) - nice).abs() < 1e-9,
                "{value} -> {}",
                nice_ceiling(value)
            );
        }
    }

    #[test]
    fn the_checker_refuses_what_is_not_well_formed() {
        assert!(check_well_formed("<svg><g></svg>").is_err());
        assert!(check_well_formed("<svg>a & b</svg>").is_err());
        assert!(check_well_formed("<svg><rect/>x &amp; y</svg>").is_ok());
    }
}
