//! The library as a package: what it pulls into a service that links it,
//! and its example program, run against real greeter-servers.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::healthy_greeters;
use tests::bounded;

/// Crates a service must not get by linking the library: the CLI's and the
/// servers' tools, and the example service's stubs.
const NOT_LINKED: [&str; 7] = [
    "clap",
    "anyhow",
    "hdrhistogram",
    "tracing-subscriber",
    "nix",
    "proto",
    "common",
];

#[test]
fn links_nothing_the_library_does_not_use() {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "xds-balancer",
            // Proc-macros run in the compiler, not in the service: prost's
            // derive pulls in anyhow that way, and links nothing.
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && tree.contains("xds-balancer"),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for crate_name in NOT_LINKED {
        assert!(
            !names.contains(&crate_name),
            "xds-balancer pulls in {crate_name}:\n{tree}"
        );
    }
}

#[tokio::test]
async fn the_health_check_example_balances_over_every_endpoint() {
    // Building may take minutes on a fresh clone (the example's features
    // differ from the test build's): outside the time limit of the run.
    let example = tokio::task::spawn_blocking(|| build_example("health_check"))
        .await
        .expect("build the example");
    bounded(Duration::from_secs(60), async {
        let (_servers, fake) = healthy_greeters(&["a", "b", "c"]).await;
        let output = tokio::process::Command::new(example)
            .args([fake.uri().as_str(), "greeter", "30"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run the example");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the example failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let ready = stdout
            .lines()
            .find_map(|line| line.strip_prefix("ready endpoints: "))
            .unwrap_or_else(|| panic!("no endpoint line: {stdout}"));
        for name in ["a (", "b (", "c ("] {
            assert!(ready.contains(name), "{name} not ready: {stdout}");
        }
        assert!(
            stdout.contains("30 of 30 calls answered SERVING"),
            "{stdout}"
        );
    })
    .await;
}

/// Builds an example of this package (a no-op when `cargo test` already
/// did) and returns its path.
fn build_example(name: &str) -> std::path::PathBuf {
    let mut command = std::process::Command::new(env!("CARGO"));
    command.args([
        "build",
        "--offline",
        "-p",
        "xds-balancer",
        "--example",
        name,
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    let output = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "building the example failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    tests::bin_path(&format!("examples/{name}"))
}
