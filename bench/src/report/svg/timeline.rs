//! Timelines: events over time, one row per track.

use std::fmt::Write as _;

use super::{BOTTOM, HEIGHT, Scale, TOP, WIDTH, escape, open, tick_label};

/// One row of a [`Timeline`].
#[derive(Debug, Clone)]
pub(crate) struct Track {
    /// Row label.
    pub(crate) label: String,
    /// Times of marks (e.g. failed calls), in seconds.
    pub(crate) marks: Vec<f64>,
    /// Times of events (e.g. SIGTERMs), drawn as dashed lines.
    pub(crate) events: Vec<f64>,
}

/// Events over time, one row per track.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// Title.
    pub(crate) title: String,
    /// Length of the x axis, in seconds.
    pub(crate) duration_s: f64,
    /// The rows.
    pub(crate) tracks: Vec<Track>,
}

impl Timeline {
    /// The chart as an SVG document.
    pub(crate) fn render(&self) -> String {
        let mut svg = String::new();
        open(&mut svg, &self.title);
        let left = 250.0;
        let right = 30.0;
        let x = Scale::new(
            [0.0, self.duration_s.max(1.0)].into_iter(),
            false,
            left,
            WIDTH - right,
        );
        let row_height = (HEIGHT - TOP - BOTTOM) / self.tracks.len().max(1) as f64;
        for tick in x.ticks() {
            let px = x.map(tick);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#eee"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                HEIGHT - BOTTOM,
                HEIGHT - BOTTOM + 16.0,
                tick_label(tick)
            );
        }
        for (i, track) in self.tracks.iter().enumerate() {
            let top = TOP + i as f64 * row_height;
            let mid = top + row_height / 2.0;
            let _ = write!(
                svg,
                r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><line x1="{left}" y1="{mid:.1}" x2="{}" y2="{mid:.1}" stroke="#999"/>"##,
                left - 8.0,
                mid + 4.0,
                escape(&track.label),
                WIDTH - right
            );
            for &event in &track.events {
                let px = x.map(event);
                let _ = write!(
                    svg,
                    r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="4 3"/>"##,
                    top + 4.0,
                    top + row_height - 4.0
                );
            }
            for &mark in &track.marks {
                let px = x.map(mark);
                let _ = write!(
                    svg,
                    r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#D55E00" stroke-width="1.5"/>"##,
                    mid - row_height * 0.3,
                    mid + row_height * 0.3
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">seconds since the load started (dashed: SIGTERM to an old backend; red: a failed call)</text>"#,
            (left + WIDTH - right) / 2.0,
            HEIGHT - 15.0
        );
        svg.push_str("</svg>\n");
        svg
    }
}
