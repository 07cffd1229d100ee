//! `tracing` set-up shared by the binaries.

use std::io::IsTerminal;
use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` selects what is logged; without
/// it, `info` and above.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// Like [`init`], with `default` (e.g. `error`) as the filter when
/// `RUST_LOG` is not set: for commands whose output says it all.
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second call (tests starting several servers in one process) keeps
    // the first subscriber.
    let _ = result;
}

/// Reports the error that ends the program (a set-up error, or a server
/// that cannot go on) in the way its log format asks: in the text format
/// one `error: <error>: <cause>: ...` line on standard error, for people;
/// in the JSON format one record (`message`, with the error and its causes
/// in the `error` field), for log collectors.
pub fn fatal(format: LogFormat, message: &str, error: &(dyn std::error::Error + 'static)) {
    let text = crate::error::chain(error);
    match format {
        LogFormat::Text => eprintln!("error: {text}"),
        LogFormat::Json => tracing::error!(error = text, "{message}"),
    }
}

/// The `addr` of a JSON `listening` log line: what the project's servers
/// write once they accept connections, and what a process that started one
/// with `--log-format json` (the demo, the benchmarks, the tests) reads to
/// learn the port it got.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    value.get("addr")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_a_listening_line() {
        let line = r#"{"timestamp":"t","level":"INFO","message":"listening","addr":"127.0.0.1:4242","name":"a"}"#;
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(listening_addr(r#"{"message":"listening"}"#), None);
        assert_eq!(
            listening_addr(r#"{"message":"metrics listening","addr":"127.0.0.1:1"}"#),
            None
        );
        assert_eq!(listening_addr("not json"), None);
    }
}
