//! A control plane's `--static-file`, in a temporary directory of its own
//! that is removed on drop: for the tests, the demo and the benchmarks.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Writing the file, or creating its directory, failed.
#[derive(Debug, thiserror::Error)]
#[error("failed to write {}: {source}", path.display())]
pub struct Error {
    /// What was being written.
    pub path: PathBuf,
    /// Why it failed.
    #[source]
    pub source: std::io::Error,
}

/// A `--static-file` that is rewritten whole: each write goes to a file
/// beside it that is then renamed over it, as editors and ConfigMap
/// updates do, so the control plane never reads half of one.
#[derive(Debug)]
pub struct StaticFile {
    dir: PathBuf,
    path: PathBuf,
}

impl StaticFile {
    /// A new directory under the system's temporary directory, named
    /// `<label>-<pid>-<unique>`, holding `services.json` with `content`.
    ///
    /// # Panics
    ///
    /// When the directory or the file cannot be written.
    pub fn new(label: &str, content: &Value) -> Self {
        Self::create(label, content).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Like [`StaticFile::new`], returning what failed.
    ///
    /// # Errors
    ///
    /// When the directory or the file cannot be written.
    pub fn create(label: &str, content: &Value) -> Result<Self, Error> {
        let dir =
            std::env::temp_dir().join(format!("{label}-{}-{:016x}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|source| Error {
            path: dir.clone(),
            source,
        })?;
        let file = Self {
            path: dir.join("services.json"),
            dir,
        };
        file.try_write(content)?;
        Ok(file)
    }

    /// The file's path, for `--static-file`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write(&self, content: &Value) {
        self.try_write(content)
            .unwrap_or_else(|error| panic!("{error}"));
    }

    /// Replaces the file's content (indented JSON, for people who look at
    /// it).
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn try_write(&self, content: &Value) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(content).unwrap_or_default();
        let partial = self.dir.join("services.json.partial");
        std::fs::write(&partial, text).map_err(|source| Error {
            path: partial.clone(),
            source,
        })?;
        std::fs::rename(&partial, &self.path).map_err(|source| Error {
            path: self.path.clone(),
            source,
        })
    }

    /// Removes the directories of `label` that processes which are gone
    /// left behind (SIGKILL leaves no chance to clean up).
    pub fn remove_stale(label: &str) {
        remove_stale_in(&std::env::temp_dir(), label);
    }
}

impl Drop for StaticFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the directories `<label>-<pid>-...` in `parent` whose process
/// `<pid>` is gone.
fn remove_stale_in(parent: &Path, label: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!("{label}-");
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A number that differs between calls and between processes.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (u64::from(nanos) << 16) | (NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_directories_of_dead_processes_are_removed() {
        let parent = std::env::temp_dir().join(format!(
            "static-file-test-{}-{:016x}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir(&parent).expect("parent");
        let label = "grpc-lb-demo";
        // Pid 0x7fff_fff0 is above any real pid limit: that process is gone.
        let dead = parent.join(format!("{label}-{}-0000abcd", 0x7fff_fff0));
        let alive = parent.join(format!("{label}-{}-0000abcd", std::process::id()));
        let other = parent.join("something-else");
        for dir in [&dead, &alive, &other] {
            std::fs::create_dir(dir).expect("dir");
        }
        remove_stale_in(&parent, label);
        assert!(!dead.exists());
        assert!(alive.exists());
        assert!(other.exists());
        std::fs::remove_dir_all(&parent).expect("clean up");
    }

    #[test]
    fn writes_replace_the_file_and_drop_removes_the_directory() {
        let file = StaticFile::new("static-file-test", &serde_json::json!({"services": []}));
        let read = || -> Value {
            serde_json::from_str(&std::fs::read_to_string(file.path()).expect("read"))
                .expect("JSON")
        };
        assert_eq!(read(), serde_json::json!({"services": []}));
        file.write(&serde_json::json!({"services": [{"name": "a"}]}));
        assert_eq!(read()["services"][0]["name"], "a");
        let dir = file.path().parent().expect("dir").to_owned();
        drop(file);
        assert!(!dir.exists());
    }
}
