//! The workspace's binaries, read from the Cargo manifests the way Cargo
//! finds them: `[[bin]]` targets, plus (unless `autobins = false`)
//! `src/main.rs` named after the package, `src/bin/<name>.rs` and
//! `src/bin/<name>/main.rs`.
//!
//! A package that is not shipped (the benchmark harness) says so with
//! `image = false` under `[package.metadata.deploy]`; its binaries are left
//! out.
//!
//! A line-based reader is enough for this workspace's plain manifests; the
//! Dockerfile check compares the result with what the image builds, so a
//! binary this reader missed shows up as a difference, not as silence.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::repo::{read, root};

/// The quoted string values in `text` (as in `members = ["a", "b"]`).
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The value of `key = "..."` on `line`, if the line sets `key`.
fn string_value(line: &str, key: &str) -> Option<String> {
    let (k, v) = line.split_once('=')?;
    (k.trim() == key).then(|| quoted(v).into_iter().next())?
}

/// The workspace's member folders.
fn members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let start = manifest
        .find("members")
        .expect("root Cargo.toml lists workspace members");
    let list = &manifest[start..];
    let end = list.find(']').expect("members list is closed");
    quoted(&list[..end])
}

/// Binaries of the package in `member`.
fn package_bins(member: &str) -> BTreeSet<String> {
    let dir = root().join(member);
    let manifest = read(&format!("{member}/Cargo.toml"));
    let mut bins = BTreeSet::new();
    let mut package = None;
    let mut autobins = true;
    let mut shipped = true;
    let mut section = String::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        match section.as_str() {
            "[package]" => {
                if let Some(name) = string_value(line, "name") {
                    package = Some(name);
                }
                if line.replace(' ', "") == "autobins=false" {
                    autobins = false;
                }
            }
            "[[bin]]" => {
                if let Some(name) = string_value(line, "name") {
                    bins.insert(name);
                }
            }
            "[package.metadata.deploy]" if line.replace(' ', "") == "image=false" => {
                shipped = false;
            }
            _ => {}
        }
    }
    if !shipped {
        return BTreeSet::new();
    }
    if autobins {
        if dir.join("src/main.rs").is_file() {
            bins.insert(package.expect("[package] name"));
        }
        bins.extend(bin_dir_targets(&dir.join("src/bin")));
    }
    bins
}

fn bin_dir_targets(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            if path.is_dir() && path.join("main.rs").is_file() {
                Some(entry.file_name().to_string_lossy().into_owned())
            } else if path.extension().is_some_and(|e| e == "rs") {
                Some(path.file_stem()?.to_string_lossy().into_owned())
            } else {
                None
            }
        })
        .collect()
}

/// Binaries for a developer's machine, not for the image: `demo` runs the
/// whole system as child processes of itself on one machine.
const NOT_FOR_THE_IMAGE: [&str; 1] = ["demo"];

/// Every binary of the workspace that belongs in the image.
pub(crate) fn image_binaries() -> BTreeSet<String> {
    members()
        .iter()
        .flat_map(|m| package_bins(m))
        .filter(|bin| !NOT_FOR_THE_IMAGE.contains(&bin.as_str()))
        .collect()
}
