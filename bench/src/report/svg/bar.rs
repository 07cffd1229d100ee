//! Bar charts: one bar per series in every group.

use std::fmt::Write as _;

use super::{
    BOTTOM, HEIGHT, LEFT, PALETTE, RIGHT, Scale, TOP, WIDTH, axis_labels, escape, legend, open,
    tick_label,
};

/// Bars in groups: one bar per series in every group.
#[derive(Debug, Clone)]
pub(crate) struct BarChart {
    /// Title.
    pub(crate) title: String,
    /// Y axis label.
    pub(crate) y_label: String,
    /// Group labels along the x axis.
    pub(crate) groups: Vec<String>,
    /// (legend text, one value per group; NaN leaves a gap).
    pub(crate) series: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    /// The chart as an SVG document.
    pub(crate) fn render(&self) -> String {
        let mut svg = String::new();
        open(&mut svg, &self.title);
        let values = self.series.iter().flat_map(|(_, v)| v.iter().copied());
        let y = Scale::new(values, false, HEIGHT - BOTTOM, TOP);
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
        let group_width = (WIDTH - RIGHT - LEFT) / self.groups.len().max(1) as f64;
        let bar_width = group_width * 0.8 / self.series.len().max(1) as f64;
        for (g, group) in self.groups.iter().enumerate() {
            let gx = LEFT + g as f64 * group_width;
            for (s, (_, values)) in self.series.iter().enumerate() {
                let Some(&value) = values.get(g) else {
                    continue;
                };
                if !value.is_finite() {
                    continue;
                }
                let top = y.map(value);
                let _ = write!(
                    svg,
                    r#"<rect x="{:.1}" y="{top:.1}" width="{bar_width:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                    gx + group_width * 0.1 + s as f64 * bar_width,
                    (y.map(0.0) - top).max(0.0),
                    PALETTE[s % PALETTE.len()],
                    tick_label(value)
                );
            }
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                gx + group_width / 2.0,
                HEIGHT - BOTTOM + 16.0,
                escape(group)
            );
        }
        let names: Vec<String> = self.series.iter().map(|(n, _)| n.clone()).collect();
        legend(&mut svg, &names);
        axis_labels(&mut svg, "", &self.y_label);
        svg.push_str("</svg>\n");
        svg
    }
}
