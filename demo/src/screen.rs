//! What the person running the demo sees while it runs.
//!
//! Events ("greeter-2 turns NOT_SERVING ...") are printed as lines. Once a
//! second the calls of the last second are shown per backend: on a
//! terminal as a table redrawn in place under the events, otherwise (a pipe,
//! a CI log) as one plain line.
//!
//! With `--json` all of this goes to standard error, so standard output
//! carries only the final JSON summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::stats::Tally;

/// Where the text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Out {
    /// Standard output.
    Stdout,
    /// Standard error (with `--json`).
    Stderr,
}

/// What the live table shows besides the rates.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    /// A state label per backend, e.g. `ready` or `not ready`.
    pub(crate) states: BTreeMap<String, String>,
    /// One line about the client as a whole, e.g. its control plane stream.
    pub(crate) note: String,
}

/// Reads the current [`Live`] state when the table is drawn.
pub(crate) type LiveSource = Box<dyn Fn() -> Live + Send>;

struct Inner {
    out: Out,
    terminal: bool,
    /// Lines of the live table on screen (terminal only).
    drawn: usize,
    started: Instant,
    title: String,
    backends: Vec<String>,
    live: Option<LiveSource>,
    /// The last second's rates: calls/s by backend, failures/s, in flight.
    last: Option<(BTreeMap<String, f64>, f64, u64)>,
}

/// The demo's output. Shared as `Arc<Screen>`.
pub(crate) struct Screen {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen").finish_non_exhaustive()
    }
}

impl Screen {
    /// Output to `out`; the table is redrawn in place when `out` is a
    /// terminal.
    pub(crate) fn new(out: Out) -> Arc<Self> {
        let terminal = match out {
            Out::Stdout => std::io::stdout().is_terminal(),
            Out::Stderr => std::io::stderr().is_terminal(),
        };
        Arc::new(Self {
            inner: Mutex::new(Inner {
                out,
                terminal,
                drawn: 0,
                started: Instant::now(),
                title: String::new(),
                backends: Vec::new(),
                live: None,
                last: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prints `text` (one or more lines) above the live table.
    pub(crate) fn say(&self, text: &str) {
        let mut inner = self.lock();
        let stamp = format!("{:>6.1}s", inner.started.elapsed().as_secs_f64());
        let mut lines = String::new();
        for (i, line) in text.lines().enumerate() {
            let prefix = if i == 0 { stamp.as_str() } else { "       " };
            lines.push_str(&format!("{prefix}  {line}\n"));
        }
        inner.print_over_table(&lines);
    }

    /// Prints `text` as is, with no time stamp (headers, the summary).
    pub(crate) fn print(&self, text: &str) {
        self.lock().print_over_table(text);
    }

    /// Starts a phase: a header, and what to look for.
    pub(crate) fn phase(&self, number: usize, total: usize, title: &str, look_for: &str) {
        let mut inner = self.lock();
        inner.title = format!("Phase {number}/{total}: {title}");
        inner.last = None;
        let text = format!("\n━━ Phase {number}/{total}: {title}\n   Look for: {look_for}\n");
        inner.print_over_table(&text);
    }

    /// The backends shown in the table, in order.
    pub(crate) fn set_backends(&self, names: Vec<String>) {
        self.lock().backends = names;
    }

    /// Where the table's state column and note come from.
    pub(crate) fn set_live(&self, live: Option<LiveSource>) {
        self.lock().live = live;
    }

    /// Shows the calls of the last `elapsed` (`window`) and the calls in
    /// flight.
    pub(crate) fn tick(&self, window: &Tally, elapsed: Duration, in_flight: u64) {
        let mut inner = self.lock();
        let secs = elapsed.as_secs_f64().max(0.001);
        let rates = window
            .by_backend
            .iter()
            .map(|(backend, n)| (backend.clone(), *n as f64 / secs))
            .collect();
        inner.last = Some((rates, window.failed as f64 / secs, in_flight));
        if inner.terminal {
            inner.print_over_table("");
        } else {
            let line = inner.plain_line();
            inner.write(&line);
        }
    }

    /// Removes the live table (before the summary).
    pub(crate) fn clear_table(&self) {
        let mut inner = self.lock();
        inner.erase();
        inner.last = None;
        inner.title.clear();
    }
}

impl Inner {
    fn write(&mut self, text: &str) {
        let _ = match self.out {
            Out::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            Out::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }

    /// Moves the cursor back over the table and clears it.
    fn erase(&mut self) {
        if self.terminal && self.drawn > 0 {
            let up = format!("\x1b[{}F\x1b[J", self.drawn);
            self.write(&up);
            self.drawn = 0;
        }
    }

    /// Prints `text`; on a terminal, the table is redrawn below it.
    fn print_over_table(&mut self, text: &str) {
        if !self.terminal {
            self.write(text);
            return;
        }
        self.erase();
        let table = self.table();
        self.drawn = table.lines().count();
        self.write(&format!("{text}{table}"));
    }

    fn live(&self) -> Live {
        self.live.as_ref().map(|f| f()).unwrap_or_default()
    }

    /// The live table (terminal).
    fn table(&self) -> String {
        let Some((rates, failed, in_flight)) = &self.last else {
            return String::new();
        };
        let Live { states, note } = self.live();
        let mut names: Vec<&String> = self.backends.iter().collect();
        names.extend(rates.keys().filter(|b| !self.backends.contains(b)));
        let mut text = format!(
            "   ┌ {} · last second\n   │ {:<12} {:>8}  {:<24} {}\n",
            self.title, "backend", "calls/s", "", "state"
        );
        let total: f64 = rates.values().sum();
        for name in names {
            let rate = rates.get(name).copied().unwrap_or(0.0);
            let width = if total > 0.0 {
                (rate / total * 24.0).round() as usize
            } else {
                0
            };
            let bar = format!("{:<24}", "█".repeat(width.min(24)));
            let state = states.get(name).map_or("", String::as_str);
            text.push_str(&format!("   │ {name:<12} {rate:>8.0}  {bar} {state}\n"));
        }
        let failed_text = if *failed > 0.0 {
            format!("\x1b[31m{failed:.0} failed/s\x1b[0m")
        } else {
            "0 failed/s".to_owned()
        };
        text.push_str(&format!(
            "   │ {:<12} {total:>8.0}  {failed_text}, {in_flight} in flight\n",
            "all"
        ));
        text.push_str(&format!("   └ {note}\n"));
        text
    }

    /// One line per second (not a terminal).
    fn plain_line(&self) -> String {
        let Some((rates, failed, in_flight)) = &self.last else {
            return String::new();
        };
        let Live { states, note } = self.live();
        let mut names: Vec<&String> = self.backends.iter().collect();
        names.extend(rates.keys().filter(|b| !self.backends.contains(b)));
        let parts: Vec<String> = names
            .into_iter()
            .map(|name| {
                let rate = rates.get(name).copied().unwrap_or(0.0);
                match states.get(name) {
                    Some(state) => format!("{name} {rate:.0}/s ({state})"),
                    None => format!("{name} {rate:.0}/s"),
                }
            })
            .collect();
        format!(
            "{:>6.1}s  │ {} │ failed {failed:.0}/s, in flight {in_flight} │ {note}\n",
            self.started.elapsed().as_secs_f64(),
            parts.join(" · ")
        )
    }
}
