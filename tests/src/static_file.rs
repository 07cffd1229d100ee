//! A static-source file for a control-plane process under test, in a
//! temporary directory of its own that is removed on drop.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A `--static-file` the test rewrites. Each write replaces the file whole
/// (written beside it, then renamed), as editors and ConfigMap updates do,
/// so the control plane never reads half of one.
#[derive(Debug)]
pub struct StaticFile {
    dir: PathBuf,
    path: PathBuf,
}

impl StaticFile {
    /// A new directory under the system's temporary directory, named after
    /// `label`, holding `services.json` with `content`.
    ///
    /// # Panics
    ///
    /// When the directory or the file cannot be written.
    pub fn new(label: &str, content: &Value) -> Self {
        let dir =
            std::env::temp_dir().join(format!("{label}-{}-{:016x}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("create {}: {error}", dir.display()));
        let file = Self {
            path: dir.join("services.json"),
            dir,
        };
        file.write(content);
        file
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
        let partial = self.dir.join("services.json.partial");
        std::fs::write(&partial, content.to_string())
            .unwrap_or_else(|error| panic!("write {}: {error}", partial.display()));
        std::fs::rename(&partial, &self.path)
            .unwrap_or_else(|error| panic!("replace {}: {error}", self.path.display()));
    }
}

impl Drop for StaticFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
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
