//! Hand-written SVG charts: lines on (log) axes, grouped bars, and event
//! timelines. Small on purpose: the report needs three kinds of chart and
//! no plotting dependency.
//!
//! This file holds what every chart shares (the canvas, legend, axis
//! labels, and [`Scale`] mapping values onto an axis); each kind of chart
//! has its file: `line` ([`LineChart`]), `bar` ([`BarChart`]), `timeline`
//! ([`Timeline`]).

mod bar;
mod line;
mod timeline;

use std::fmt::Write as _;

pub(crate) use self::bar::BarChart;
pub(crate) use self::line::{LineChart, Series};
pub(crate) use self::timeline::{Timeline, Track};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Series colours (colour-blind friendly).
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as the axes print it.
fn tick_label(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 10.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

fn open(svg: &mut String, title: &str) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (WIDTH - RIGHT + LEFT) / 2.0,
        escape(title)
    );
}

fn legend(svg: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 18.0;
        let x = WIDTH - RIGHT + 15.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            PALETTE[i % PALETTE.len()],
            x + 18.0,
            y,
            escape(name)
        );
    }
}

fn axis_labels(svg: &mut String, x_label: &str, y_label: &str) {
    let plot_mid_x = (LEFT + WIDTH - RIGHT) / 2.0;
    let plot_mid_y = (TOP + HEIGHT - BOTTOM) / 2.0;
    let _ = write!(
        svg,
        r#"<text x="{plot_mid_x}" y="{}" text-anchor="middle">{}</text><text x="16" y="{plot_mid_y}" text-anchor="middle" transform="rotate(-90 16 {plot_mid_y})">{}</text>"#,
        HEIGHT - 15.0,
        escape(x_label),
        escape(y_label)
    );
}

/// Maps values onto one axis.
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, log: bool, from: f64, to: f64) -> Self {
        let values: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let (mut lo, mut hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        if !lo.is_finite() {
            (lo, hi) = (1.0, 10.0);
        }
        if log {
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
        } else {
            lo = lo.min(0.0);
            if hi <= lo {
                hi = lo + 1.0;
            }
            hi *= 1.1;
        }
        Self {
            log,
            lo,
            hi,
            from,
            to,
        }
    }

    fn map(&self, value: f64) -> f64 {
        let t = if self.log {
            (value.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (value - self.lo) / (self.hi - self.lo)
        };
        self.from + t * (self.to - self.from)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut ticks = Vec::new();
            let mut tick = self.lo;
            while tick <= self.hi * 1.0001 {
                ticks.push(tick);
                tick *= 10.0;
            }
            ticks
        } else {
            let raw = (self.hi - self.lo) / 5.0;
            let magnitude = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .into_iter()
                .map(|m| m * magnitude)
                .find(|s| *s >= raw)
                .unwrap_or(raw);
            let mut ticks = Vec::new();
            let mut tick = (self.lo / step).ceil() * step;
            while tick <= self.hi {
                ticks.push(tick);
                tick += step;
            }
            ticks
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every opened element is closed, in order.
    fn balanced(svg: &str) -> bool {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let Some(end) = rest[start..].find('>') else {
                return false;
            };
            let tag = &rest[start + 1..start + end];
            rest = &rest[start + end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop().as_deref() != Some(name.trim()) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or_default();
                stack.push(name.to_owned());
            }
        }
        stack.is_empty()
    }

    #[test]
    fn line_chart_is_well_formed() {
        let chart = LineChart {
            title: "a <title> & more".into(),
            x_label: "subscribers".into(),
            y_label: "ms".into(),
            log_x: true,
            log_y: true,
            series: vec![Series {
                name: "raw".into(),
                points: vec![(1.0, 0.2), (100.0, 1.5), (10_000.0, 40.0)],
            }],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(balanced(&svg), "{svg}");
        assert!(svg.contains("a &lt;title&gt; &amp; more"));
        assert!(!svg.contains("NaN"));
        assert_eq!(svg.matches("<circle").count(), 3);
    }

    #[test]
    fn bar_chart_and_timeline_are_well_formed() {
        let bars = BarChart {
            title: "throughput".into(),
            y_label: "calls/s".into(),
            groups: vec!["1 backend".into(), "3 backends".into()],
            series: vec![
                ("ours".into(), vec![100.0, 200.0]),
                ("direct".into(), vec![110.0, f64::NAN]),
            ],
        };
        let svg = bars.render();
        assert!(balanced(&svg), "{svg}");
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 3 + 2,
            "background, 3 bars, 2 legend keys"
        );
        let timeline = Timeline {
            title: "rollout".into(),
            duration_s: 17.0,
            tracks: vec![Track {
                label: "ours".into(),
                marks: vec![3.0],
                events: vec![1.0, 6.5],
            }],
        };
        let svg = timeline.render();
        assert!(balanced(&svg), "{svg}");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn ticks_cover_the_data() {
        let scale = Scale::new([0.3, 42.0].into_iter(), true, 0.0, 100.0);
        assert_eq!(scale.ticks(), [0.1, 1.0, 10.0, 100.0]);
        let linear = Scale::new([0.0, 93.0].into_iter(), false, 0.0, 100.0);
        assert!(linear.ticks().last().copied().unwrap() >= 90.0);
    }
}
