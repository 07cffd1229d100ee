//! Line charts: series of points over numeric axes, either of which may
//! be logarithmic.

use std::fmt::Write as _;

use super::{
    BOTTOM, HEIGHT, LEFT, PALETTE, RIGHT, Scale, TOP, WIDTH, axis_labels, legend, open, tick_label,
};

/// One line of a [`LineChart`].
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Legend text.
    pub(crate) name: String,
    /// (x, y) points, in x order.
    pub(crate) points: Vec<(f64, f64)>,
}

/// Lines over numeric axes, either of which may be logarithmic.
#[derive(Debug, Clone)]
pub(crate) struct LineChart {
    /// Title.
    pub(crate) title: String,
    /// X axis label.
    pub(crate) x_label: String,
    /// Y axis label.
    pub(crate) y_label: String,
    /// Logarithmic x axis.
    pub(crate) log_x: bool,
    /// Logarithmic y axis.
    pub(crate) log_y: bool,
    /// The lines.
    pub(crate) series: Vec<Series>,
}

impl LineChart {
    /// The chart as an SVG document.
    pub(crate) fn render(&self) -> String {
        let mut svg = String::new();
        open(&mut svg, &self.title);
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let x = Scale::new(points().map(|p| p.0), self.log_x, LEFT, WIDTH - RIGHT);
        let y = Scale::new(points().map(|p| p.1), self.log_y, HEIGHT - BOTTOM, TOP);
        for tick in x.ticks() {
            let px = x.map(tick);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#ddd"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                HEIGHT - BOTTOM,
                HEIGHT - BOTTOM + 16.0,
                tick_label(tick)
            );
        }
        for tick in y.ticks() {
            let py = y.map(tick);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                py + 4.0,
                tick_label(tick)
            );
        }
        for (i, series) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .filter(|(px, py)| px.is_finite() && py.is_finite())
                .map(|&(px, py)| format!("{:.1},{:.1}", x.map(px), y.map(py)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for point in &path {
                if let Some((px, py)) = point.split_once(',') {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#
                    );
                }
            }
        }
        let names: Vec<String> = self.series.iter().map(|s| s.name.clone()).collect();
        legend(&mut svg, &names);
        axis_labels(&mut svg, &self.x_label, &self.y_label);
        svg.push_str("</svg>\n");
        svg
    }
}
