//! Checks that the deployment artefacts agree with each other and with the
//! real binaries: the kustomize tree under `deploy/`, the `Dockerfile`, and
//! every command line shown in `docs/` and `README.md`.
//!
//! # Design
//!
//! Every manifest is read into `k8s-openapi` types (Kubernetes 1.33), so a
//! misspelled field or a wrong `apiVersion` fails before any check runs.
//! Each check is a pure function from parsed objects to a list of problems
//! in words; the tests of the real files expect an empty list, and
//! `mutations.rs` breaks a parsed copy (a selector, a port name, a probe,
//! the Role, ...) and expects the matching complaint, which proves each
//! check can fail.
//!
//! Nothing about the binaries is written down twice: environment variable
//! names, flags, subcommands and defaults are read from each binary's
//! `--help` at test time (`help.rs`), so the checks follow the command
//! lines as they evolve and fail when a manifest or a document uses a name
//! no binary reads. Those tests need the binaries built: run them through
//! `cargo test --workspace` (which builds every binary first), or run
//! `cargo build --bins` before `cargo test -p tests --test deploy`.
//!
//! Docker is not needed: the Dockerfile is read as text. Kustomizations
//! are followed by hand (`folders`: resources, patches, namespace, images,
//! replicas), so the pure checks run without Go. The API server tests
//! (`apiserver`) then render every folder with the real kustomize, built
//! from the Go module proxy at the versions of kubectl 1.33 and of the
//! oldest kubectl the documents promise, expect exactly the objects the
//! hand-following gave, and have a real kube-apiserver validate each
//! object strictly (server-side dry run, fieldValidation=Strict), with the
//! cert-manager and Prometheus Operator CRDs installed from their pinned
//! Go modules.
//!
//! # Layout
//!
//! - `repo`: reading the repository: files, manifests into Kubernetes types.
//! - `folders`: kustomization folders, followed by hand.
//! - `dockerfile`: what the Dockerfile builds, installs, runs as, exposes.
//! - `workspace`: the workspace's binaries, from the Cargo manifests.
//! - `help`: running a binary's `--help` and reading its options.
//! - `commands`: command lines in Markdown, checked against `--help`.
//! - `checks`: selectors, Service ports, probes, hardening (pure).
//! - `rbac`: the Role and its binding (pure).
//! - `netpol`: NetworkPolicy peers and ports (pure).
//! - `tree`: kustomization listings and overrides, exposed ports (pure).
//! - `wiring`: the numbers, the client's addresses (pure).
//! - `labels`: recommended labels, selectors that stay in this
//!   installation (pure).
//! - `availability`: PodDisruptionBudgets, topology spreads (pure).
//! - `metrics`: the metrics port end to end, memory by formula (pure).
//! - `containers`: each container against its binary's `--help` (pure).
//! - `real`: the tests of the real files.
//! - `kustomize`: the real kustomize and the CRDs, from pinned Go modules.
//! - `schema`: strict validation against Kubernetes 1.33's OpenAPI
//!   schemas and the CRDs'.
//! - `apiserver`: every folder rendered by kustomize, compared with the
//!   hand-following, and validated strictly against Kubernetes 1.33's
//!   schemas and by a real kube-apiserver.
//! - `mutations`, `mutations_cli`, `mutations_ops`: every check, shown to
//!   fail on a broken copy.
//! - `docs`: the documentation tests.
//! - `cli`: the binaries' help (wrapped) and the documents' `diagnose`
//!   commands.

mod apiserver;
mod availability;
mod checks;
mod cli;
mod commands;
mod containers;
mod dockerfile;
mod docs;
mod folders;
mod help;
mod kustomize;
mod labels;
mod metrics;
mod mutations;
mod mutations_cli;
mod mutations_ops;
mod netpol;
mod rbac;
mod real;
mod repo;
mod schema;
mod tree;
mod wiring;
mod workspace;

/// The project's binaries, as the Dockerfile installs them and the
/// documents call them.
const BINARIES: [&str; 5] = [
    "control-plane",
    "greeter-server",
    "greeter-client",
    "demo",
    "bench",
];

/// Fails with every problem found, one per line.
#[track_caller]
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n- {}",
        problems.len(),
        problems.join("\n- ")
    );
}

/// Fails unless some problem contains every one of `words`.
#[track_caller]
fn assert_complains(problems: &[String], words: &[&str]) {
    assert!(
        problems
            .iter()
            .any(|problem| words.iter().all(|word| problem.contains(word))),
        "expected a problem mentioning {words:?}, got {problems:#?}"
    );
}
