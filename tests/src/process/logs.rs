//! A child's standard error, kept line by line as it arrives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// The lines read so far (the last `cap` of them when capped), addressed
/// by their position since the start, and whether the stream has ended.
#[derive(Debug)]
pub(super) struct Logs {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    lines: VecDeque<String>,
    /// Lines dropped from the front to stay within `cap`: the position of
    /// the first line kept.
    dropped: usize,
    cap: Option<usize>,
    /// The stream reached its end (or there is none to read).
    closed: bool,
}

impl Logs {
    /// Reads `stream` line by line in a task of its own, keeping the last
    /// `cap` lines (all with `None`).
    pub(super) fn read(
        stream: impl AsyncRead + Unpin + Send + 'static,
        cap: Option<usize>,
    ) -> Arc<Self> {
        let logs = Self::new(cap, false);
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.push(line);
            }
            sink.state().closed = true;
            sink.changed.notify_waiters();
        });
        logs
    }

    /// No stream: nothing is ever kept.
    pub(super) fn none() -> Arc<Self> {
        Self::new(Some(0), true)
    }

    fn new(cap: Option<usize>, closed: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                lines: VecDeque::new(),
                dropped: 0,
                cap,
                closed,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        let mut state = self.state();
        if state.cap == Some(0) {
            return;
        }
        if state.cap.is_some_and(|cap| state.lines.len() == cap) {
            state.lines.pop_front();
            state.dropped += 1;
        }
        state.lines.push_back(line);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Resolves at the next line or at the end of the stream. Taken before
    /// looking at the lines, so nothing that arrives meanwhile is missed.
    pub(super) fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// Whether the stream has ended.
    pub(super) fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Looks at the lines from position `*cursor` on, returns what `find`
    /// makes of the first it accepts and moves `*cursor` past it (past
    /// every line when none is accepted). Lines dropped already are skipped.
    pub(super) fn find_from<T>(
        &self,
        cursor: &mut usize,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let state = self.state();
        *cursor = (*cursor).max(state.dropped);
        while *cursor < state.dropped + state.lines.len() {
            let line = &state.lines[*cursor - state.dropped];
            *cursor += 1;
            if let Some(found) = find(line) {
                return Some(found);
            }
        }
        None
    }

    /// The last `n` lines kept, oldest first.
    pub(super) fn tail(&self, n: usize) -> Vec<String> {
        let state = self.state();
        let skip = state.lines.len().saturating_sub(n);
        state.lines.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_and_finds_past_a_cursor() {
        let logs = Logs::read(&b"one\ntwo\nthree\nfour\n"[..], Some(2));
        loop {
            let changed = logs.changed();
            if logs.is_closed() {
                break;
            }
            changed.await;
        }
        assert_eq!(logs.tail(5), ["three", "four"]);
        let mut cursor = 0;
        let found = logs.find_from(&mut cursor, |l| l.starts_with('t').then(|| l.to_owned()));
        assert_eq!(found.as_deref(), Some("three"), "dropped lines are skipped");
        assert_eq!(cursor, 3);
        assert_eq!(
            logs.find_from(&mut cursor, |l| l.starts_with('t').then_some(())),
            None
        );
        assert_eq!(cursor, 4);
    }
}
