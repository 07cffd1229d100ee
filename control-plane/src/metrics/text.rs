//! The two text formats `/metrics` speaks, and choosing between them from
//! the scraper's `Accept` header.
//!
//! - Prometheus text 0.0.4 (`text/plain; version=0.0.4`): what every
//!   Prometheus-compatible scraper and parser reads. A counter's `# TYPE`
//!   line names it with its `_total` suffix, as its samples are named.
//! - OpenMetrics 1.0.0 (`application/openmetrics-text`): a counter family
//!   is named without `_total` (its samples keep it), `# UNIT` lines name
//!   the unit, and the text ends with `# EOF`.
//!
//! Served in OpenMetrics only when the scraper's `Accept` prefers it (as
//! Prometheus itself does by default); in Prometheus text otherwise,
//! including when there is no `Accept` at all.

use std::fmt::Write;

/// A text format of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

/// OpenMetrics' media type.
const OPENMETRICS: &str = "application/openmetrics-text";

impl Format {
    /// The format to answer a request with `accept` (its `Accept` header)
    /// in: OpenMetrics when an `application/openmetrics-text` range has a
    /// positive quality at least as high as every range that accepts plain
    /// text; Prometheus text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Prometheus;
        };
        let mut openmetrics = 0.0_f64;
        let mut plain = 0.0_f64;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, value)| value.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                OPENMETRICS => openmetrics = openmetrics.max(quality),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What kind of metric a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (samples end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Counts of observations by bucket, with their sum and count.
    Histogram,
}

impl Kind {
    /// The word in `# TYPE` lines.
    pub fn word(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric family as documented: name (a counter's without `_total`),
/// kind, help text and label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The family name; a counter's samples add `_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// One line saying what it measures.
    pub help: &'static str,
    /// Its label names.
    pub labels: &'static [&'static str],
}

impl Family {
    /// The name its samples carry: with `_total` for a counter.
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Gauge | Kind::Histogram => self.name.to_owned(),
        }
    }

    /// The unit, as OpenMetrics' `# UNIT` line names it, when the name ends
    /// in one.
    fn unit(&self) -> Option<&'static str> {
        self.name.ends_with("_seconds").then_some("seconds")
    }
}

/// Writes families and their samples in one format.
#[derive(Debug)]
pub struct Writer {
    format: Format,
    out: String,
}

impl Writer {
    /// An empty text in `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            out: String::with_capacity(8 * 1024),
        }
    }

    /// Starts `family`: its `# HELP`, `# TYPE` (and `# UNIT`) lines.
    pub fn family(&mut self, family: &Family) {
        let name = match (self.format, family.kind) {
            (Format::Prometheus, Kind::Counter) => family.sample_name(),
            _ => family.name.to_owned(),
        };
        let help = escape_help(family.help, self.format);
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", family.kind.word());
        if let (Format::OpenMetrics, Some(unit)) = (self.format, family.unit()) {
            let _ = writeln!(self.out, "# UNIT {name} {unit}");
        }
    }

    /// One sample `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The finished text (OpenMetrics ends with `# EOF`).
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A signed gauge.
    Signed(i64),
    /// A measurement.
    Float(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(value) => write!(f, "{value}"),
            Self::Signed(value) => write!(f, "{value}"),
            Self::Float(value) => f.write_str(&float(*value)),
        }
    }
}

/// A float as both formats write it: `+Inf`, `-Inf`, `NaN`, and a decimal
/// point on whole numbers (OpenMetrics' canonical `le` values, such as
/// `1.0`, need it).
pub fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

fn escape_help(help: &str, format: Format) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NACKS: Family = Family {
        name: "x_nacks",
        kind: Kind::Counter,
        help: "NACKs \"by\" type\\kind",
        labels: &["type"],
    };

    #[test]
    fn prometheus_text_names_counters_with_total_and_has_no_eof() {
        let mut writer = Writer::new(Format::Prometheus);
        writer.family(&NACKS);
        writer.sample("x_nacks_total", &[("type", "a\"b")], Value::Int(0));
        let text = writer.finish();
        assert_eq!(
            text,
            "# HELP x_nacks_total NACKs \"by\" type\\\\kind\n\
             # TYPE x_nacks_total counter\n\
             x_nacks_total{type=\"a\\\"b\"} 0\n"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let mut writer = Writer::new(Format::OpenMetrics);
        writer.family(&NACKS);
        writer.sample("x_nacks_total", &[], Value::Int(3));
        writer.family(&Family {
            name: "x_age_seconds",
            kind: Kind::Gauge,
            help: "age",
            labels: &[],
        });
        writer.sample("x_age_seconds", &[], Value::Float(2.0));
        let text = writer.finish();
        assert_eq!(
            text,
            "# HELP x_nacks NACKs \\\"by\\\" type\\\\kind\n\
             # TYPE x_nacks counter\n\
             x_nacks_total 3\n\
             # HELP x_age_seconds age\n\
             # TYPE x_age_seconds gauge\n\
             # UNIT x_age_seconds seconds\n\
             x_age_seconds 2.0\n\
             # EOF\n"
        );
    }

    #[test]
    fn floats_are_canonical() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.0005), "0.0005");
        assert_eq!(float(16.384), "16.384");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(1_733_233_445.25), "1733233445.25");
    }

    #[test]
    fn accept_chooses_the_format() {
        use Format::{OpenMetrics, Prometheus};
        // Prometheus' own default (OpenMetrics first).
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
                          application/openmetrics-text;version=0.0.1;q=0.4,\
                          text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), OpenMetrics);
        // Prometheus with scrape_protocols: [PrometheusText0.0.4].
        let text_first = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(text_first)), Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.5")),
            Prometheus
        );
        assert_eq!(Format::negotiate(Some("*/*")), Prometheus);
        assert_eq!(Format::negotiate(None), Prometheus);
    }
}
