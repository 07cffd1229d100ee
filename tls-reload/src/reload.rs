//! A value built from files and rebuilt whenever their contents change.
//!
//! The files are re-read every [`DEFAULT_INTERVAL`] by a background task
//! that ends when the last [`Reloading`] handle is dropped. Contents are
//! compared, not modification times: a Kubernetes Secret swap replaces a
//! symlink, and reading through the path always sees its current target.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::{Error, Result};

/// How often the files are re-read.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// One watched file: what it holds (for messages) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedFile {
    /// What the file holds, as in "certificate" or "CA".
    pub what: &'static str,
    /// Its path.
    pub path: PathBuf,
}

impl WatchedFile {
    /// A file holding `what` at `path`.
    pub fn new(what: &'static str, path: impl Into<PathBuf>) -> Self {
        Self {
            what,
            path: path.into(),
        }
    }
}

/// A value of type `T` built from the contents of some files, kept current.
#[derive(Debug)]
pub struct Reloading<T> {
    current: Arc<ArcSwap<T>>,
    generation: watch::Receiver<u64>,
}

impl<T> Clone for Reloading<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            generation: self.generation.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Reads `files` and builds the first value with `build` (which gets the
    /// contents in the order of `files`); a failure here is returned. Then
    /// re-reads them every `interval` and rebuilds when they change; a
    /// failure then is logged and the last good value kept. Must be called
    /// within a Tokio runtime.
    pub fn start<F>(files: Vec<WatchedFile>, interval: Duration, build: F) -> Result<Self>
    where
        F: Fn(&[Vec<u8>]) -> Result<T> + Send + Sync + 'static,
    {
        let contents = read_all(&files)?;
        let first = build(&contents)?;
        let current = Arc::new(ArcSwap::from_pointee(first));
        let (generation_tx, generation) = watch::channel(0);
        let weak = Arc::downgrade(&current);
        tokio::spawn(watch_files(
            files,
            interval,
            contents,
            weak,
            generation_tx,
            build,
        ));
        Ok(Self {
            current,
            generation,
        })
    }
}

impl<T> Reloading<T> {
    /// The current value.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// How many times the value has been rebuilt since the start; a
    /// receiver to wait on (tests, logs).
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }
}

fn read_all(files: &[WatchedFile]) -> Result<Vec<Vec<u8>>> {
    files
        .iter()
        .map(|file| {
            std::fs::read(&file.path).map_err(|source| Error::Read {
                what: file.what,
                path: file.path.clone(),
                source,
            })
        })
        .collect()
}

async fn watch_files<T, F>(
    files: Vec<WatchedFile>,
    interval: Duration,
    mut seen: Vec<Vec<u8>>,
    current: Weak<ArcSwap<T>>,
    generation: watch::Sender<u64>,
    build: F,
) where
    F: Fn(&[Vec<u8>]) -> Result<T>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    let mut last_error: Option<String> = None;
    loop {
        ticks.tick().await;
        let Some(current) = current.upgrade() else {
            return;
        };
        let contents = match read_all(&files) {
            Ok(contents) => contents,
            Err(error) => {
                let text = crate::error_chain(&error);
                if last_error.as_ref() != Some(&text) {
                    tracing::error!(
                        error = text,
                        "TLS files unreadable; keeping the last good ones"
                    );
                    last_error = Some(text);
                }
                continue;
            }
        };
        if contents == seen {
            continue;
        }
        seen = contents;
        match build(&seen) {
            Ok(value) => {
                current.store(Arc::new(value));
                generation.send_modify(|g| *g += 1);
                last_error = None;
                tracing::info!(files = ?paths, "TLS files changed: new connections use them");
            }
            Err(error) => {
                let text = crate::error_chain(&error);
                tracing::error!(
                    error = text,
                    "TLS files changed but cannot be used; keeping the last good ones"
                );
                last_error = Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("folder");
        path
    }

    fn parse(contents: &[Vec<u8>]) -> Result<u32> {
        String::from_utf8_lossy(&contents[0])
            .trim()
            .parse()
            .map_err(|_| Error::Empty {
                what: "number",
                path: PathBuf::from("n"),
                expected: "number",
            })
    }

    #[tokio::test(start_paused = true)]
    async fn rebuilds_on_change_and_keeps_the_last_good_value() {
        let dir = folder("change");
        let file = dir.join("n");
        std::fs::write(&file, "1").expect("write");
        let reloading = Reloading::start(
            vec![WatchedFile::new("number", &file)],
            DEFAULT_INTERVAL,
            parse,
        )
        .expect("first load");
        let mut generation = reloading.generation();
        assert_eq!(*reloading.current(), 1);

        std::fs::write(&file, "2").expect("write");
        generation.changed().await.expect("reloaded");
        assert_eq!(*reloading.current(), 2);

        std::fs::write(&file, "broken").expect("write");
        tokio::time::sleep(DEFAULT_INTERVAL * 3).await;
        assert_eq!(
            *reloading.current(),
            2,
            "a broken file keeps the last good value"
        );

        std::fs::write(&file, "3").expect("write");
        generation.changed().await.expect("reloaded");
        assert_eq!(*reloading.current(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_missing_file_fails_the_start_with_its_path() {
        let error = Reloading::start(
            vec![WatchedFile::new("certificate", "/nonexistent/tls.crt")],
            DEFAULT_INTERVAL,
            parse,
        )
        .expect_err("no file");
        let text = error.to_string();
        assert!(
            text.contains("certificate file /nonexistent/tls.crt"),
            "{text}"
        );
    }
}
