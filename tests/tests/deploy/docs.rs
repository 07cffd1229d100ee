//! Documentation tests: the documents exist and are linked, their links
//! resolve, the image they build is the one the manifests run, and every
//! command line of ours they show uses only subcommands and flags the
//! binary's `--help` lists.

use std::fs;

use crate::assert_no_problems;
use crate::commands::{self, CommandLine};
use crate::real::{image_ref, the_dockerfile};
use crate::repo::{read, root};

/// The documents the README links.
const DOCS: [&str; 9] = [
    "architecture.md",
    "protocol.md",
    "deploy.md",
    "troubleshooting.md",
    "ports.md",
    "other-languages.md",
    "security.md",
    "fuzzing.md",
    "metrics.md",
];

/// Every Markdown file checked: README.md and docs/*.md, with its text.
fn documents() -> Vec<(String, String)> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|file| {
            let text = read(&file);
            (file, text)
        })
        .collect()
}

pub(crate) fn command_lines() -> Vec<CommandLine> {
    documents()
        .iter()
        .flat_map(|(file, text)| commands::extract(file, text))
        .collect()
}

#[test]
fn readme_links_every_document() {
    let readme = read("README.md");
    let problems: Vec<String> = DOCS
        .iter()
        .filter_map(|doc| {
            let path = format!("docs/{doc}");
            if !root().join(&path).is_file() {
                Some(format!("{path} does not exist"))
            } else if !readme.contains(&format!("]({path})")) {
                Some(format!("README.md does not link {path}"))
            } else {
                None
            }
        })
        .collect();
    assert_no_problems("documents", &problems);
}

#[test]
fn relative_links_resolve() {
    let mut problems = Vec::new();
    for (file, text) in documents() {
        let dir = file.rsplit_once('/').map_or("", |(dir, _)| dir);
        for link in text.split("](").skip(1) {
            let Some(target) = link.split(')').next() else {
                continue;
            };
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let path = crate::repo::join(dir, target);
            if !root().join(&path).exists() {
                problems.push(format!(
                    "{file}: link to {target} ({path}) does not resolve"
                ));
            }
        }
    }
    assert_no_problems("links", &problems);
}

#[test]
fn documents_name_the_image_the_manifests_run() {
    let file = the_dockerfile();
    let title = file.title().expect("image title").to_owned();
    let expected = image_ref(&file);
    let mut problems = Vec::new();
    let mut seen = 0;
    for (doc, text) in documents()
        .into_iter()
        .chain([("Dockerfile".to_owned(), read("Dockerfile"))])
    {
        for (at, _) in text.match_indices(&format!("{title}:")) {
            let tag: String = text[at + title.len() + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            seen += 1;
            if format!("{title}:{tag}") != expected {
                problems.push(format!(
                    "{doc}: mentions {title}:{tag}; the manifests run {expected}"
                ));
            }
        }
    }
    assert!(
        seen >= 2,
        "the documents never show how to build {expected}"
    );
    assert_no_problems("image names", &problems);
}

/// Checks every command line of `binary` in the documents.
fn commands_of(binary: &str) {
    let lines: Vec<CommandLine> = command_lines()
        .into_iter()
        .filter(|c| c.binary == binary)
        .collect();
    assert!(!lines.is_empty(), "the documents show no {binary} command");
    let problems: Vec<String> = lines.iter().flat_map(commands::check).collect();
    assert_no_problems(&format!("{binary} commands in the documents"), &problems);
}

#[test]
fn documented_control_plane_commands_exist() {
    commands_of("control-plane");
}

#[test]
fn documented_greeter_server_commands_exist() {
    commands_of("greeter-server");
}

#[test]
fn documented_greeter_client_commands_exist() {
    commands_of("greeter-client");
}

#[test]
fn documented_demo_commands_exist() {
    commands_of("demo");
}

#[test]
fn documented_bench_commands_exist() {
    commands_of("bench");
}
