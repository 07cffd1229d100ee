//! What the Dockerfile builds, installs, runs as and exposes, read as text
//! (Docker is not needed), and its checks.

use std::collections::{BTreeMap, BTreeSet};

use crate::commands::tokenize;

/// One `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stage {
    pub(crate) image: String,
    pub(crate) name: Option<String>,
}

/// The parts of a Dockerfile the checks look at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dockerfile {
    pub(crate) stages: Vec<Stage>,
    /// The flags of every `cargo build` in a `RUN`.
    pub(crate) cargo_build_flags: Vec<String>,
    /// `--bin` names of those `cargo build`s.
    pub(crate) built: Vec<String>,
    /// `COPY --from=<stage> <source> <destination>` of the last stage:
    /// (stage, source, destination).
    pub(crate) copied: Vec<(String, String, String)>,
    /// The last stage's `USER`.
    pub(crate) user: Option<String>,
    /// The last stage's `EXPOSE`d ports.
    pub(crate) exposed: BTreeSet<u16>,
    /// The last stage's labels.
    pub(crate) labels: BTreeMap<String, String>,
}

/// The label naming the image; the manifests' images are `<title>:<version>`.
pub(crate) const TITLE_LABEL: &str = "org.opencontainers.image.title";

/// Where the binaries are installed in the image.
pub(crate) const BIN_DIR: &str = "/usr/local/bin";

impl Dockerfile {
    /// Parses the instructions (continuation lines joined, comments dropped).
    pub(crate) fn parse(text: &str) -> Self {
        let mut file = Self::default();
        let mut logical = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            if let Some(head) = trimmed.strip_suffix('\\') {
                logical.push_str(head);
                logical.push(' ');
                continue;
            }
            logical.push_str(trimmed);
            file.instruction(&std::mem::take(&mut logical));
        }
        file.instruction(&logical);
        file
    }

    fn instruction(&mut self, line: &str) {
        let tokens = tokenize(line);
        let Some((keyword, rest)) = tokens.split_first() else {
            return;
        };
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => {
                let args: Vec<&String> = rest.iter().filter(|t| !t.starts_with("--")).collect();
                let name = match args.as_slice() {
                    [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Some((*name).clone()),
                    _ => None,
                };
                self.stages.push(Stage {
                    image: args.first().map(|s| (*s).clone()).unwrap_or_default(),
                    name,
                });
                // Only the last stage's settings describe the image.
                self.copied.clear();
                self.user = None;
                self.exposed.clear();
                self.labels.clear();
            }
            "RUN" => {
                for (i, window) in rest.windows(2).enumerate() {
                    if window[0] != "cargo" || window[1] != "build" {
                        continue;
                    }
                    let flags = rest[i + 2..]
                        .iter()
                        .take_while(|t| !matches!(t.as_str(), "&&" | ";" | "||"))
                        .cloned()
                        .collect::<Vec<_>>();
                    for pair in flags.windows(2) {
                        if pair[0] == "--bin" {
                            self.built.push(pair[1].clone());
                        }
                    }
                    self.cargo_build_flags.extend(flags);
                }
            }
            "COPY" => {
                let from = rest
                    .iter()
                    .find_map(|t| t.strip_prefix("--from="))
                    .map(str::to_owned);
                let paths: Vec<&String> = rest.iter().filter(|t| !t.starts_with("--")).collect();
                if let (Some(from), [source, destination]) = (from, paths.as_slice()) {
                    self.copied
                        .push((from, (*source).clone(), (*destination).clone()));
                }
            }
            "USER" => self.user = rest.first().cloned(),
            "EXPOSE" => self.exposed.extend(
                rest.iter()
                    .filter_map(|p| p.split('/').next().and_then(|p| p.parse::<u16>().ok())),
            ),
            "LABEL" => {
                for pair in rest {
                    if let Some((key, value)) = pair.split_once('=') {
                        self.labels.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
            _ => {}
        }
    }

    /// The image name (`org.opencontainers.image.title`).
    pub(crate) fn title(&self) -> Option<&str> {
        self.labels.get(TITLE_LABEL).map(String::as_str)
    }

    /// The numeric user and group the image runs as.
    pub(crate) fn numeric_user(&self) -> Option<(i64, Option<i64>)> {
        let user = self.user.as_deref()?;
        let (uid, gid) = match user.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid.parse().ok()?)),
            None => (user, None),
        };
        Some((uid.parse().ok()?, gid))
    }

    /// Installed path of each binary built and copied into the image.
    pub(crate) fn installed(&self) -> BTreeMap<String, String> {
        self.copied
            .iter()
            .filter_map(|(_, _, destination)| {
                let name = destination.rsplit('/').next()?;
                Some((name.to_owned(), destination.clone()))
            })
            .collect()
    }
}

/// Problems with the Dockerfile, given the workspace's binaries.
pub(crate) fn problems(file: &Dockerfile, workspace_bins: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let [.., build, runtime] = file.stages.as_slice() else {
        out.push("needs a build stage and a separate runtime stage".into());
        return out;
    };
    if build.image.contains("rust") == runtime.image.contains("rust") {
        out.push(format!(
            "the runtime stage ({}) must not be a Rust toolchain image like the build stage ({})",
            runtime.image, build.image
        ));
    }
    for flag in ["--release", "--locked"] {
        if !file.cargo_build_flags.iter().any(|f| f == flag) {
            out.push(format!("`cargo build` lacks {flag}"));
        }
    }
    let built: BTreeSet<String> = file.built.iter().cloned().collect();
    for missing in workspace_bins.difference(&built) {
        out.push(format!(
            "the workspace binary {missing} is not built (--bin {missing})"
        ));
    }
    for extra in built.difference(workspace_bins) {
        out.push(format!(
            "builds --bin {extra}, which is not a binary of the workspace (yet?)"
        ));
    }
    let stage = build.name.clone().unwrap_or_default();
    let installed = file.installed();
    for bin in &built {
        let expected = format!("{BIN_DIR}/{bin}");
        match installed.get(bin) {
            Some(path) if *path == expected => {}
            Some(path) => out.push(format!("{bin} is installed at {path}, not {expected}")),
            None => out.push(format!(
                "{bin} is built but not copied into the runtime stage"
            )),
        }
    }
    for (from, _, destination) in &file.copied {
        if *from != stage {
            out.push(format!(
                "{destination} is copied from {from:?}, not the build stage {stage:?}"
            ));
        }
    }
    match file.numeric_user() {
        Some((0, _)) => out.push("USER is root (0)".into()),
        Some((_, Some(0))) => out.push("USER's group is root (0)".into()),
        Some(_) => {}
        None => out.push(format!(
            "USER must be a numeric uid (and gid), so that runAsNonRoot can verify it; found {:?}",
            file.user
        )),
    }
    if file.title().is_none_or(str::is_empty) {
        out.push(format!("no LABEL {TITLE_LABEL} naming the image"));
    }
    out
}
