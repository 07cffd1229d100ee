//! The demo end to end: `demo --quick --json` runs every phase against real
//! processes and its summary shows each phase's promise kept; interrupted or
//! killed, it leaves no process and no temporary file behind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use tests::{bin_path, bounded};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The bound for `--quick`, plus room for a busy machine to start.
const QUICK_LIMIT: Duration = Duration::from_secs(60);

fn demo(args: &[&str]) -> Child {
    Command::new(bin_path("demo"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start demo")
}

/// Processes started by the demo `pid` (they carry its pid in their
/// environment), whether or not they are its children still.
fn started_by(pid: u32) -> Vec<i32> {
    let marker = format!("DEMO_PARENT_PID={pid}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            std::fs::read(format!("/proc/{child}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        })
        .filter(|child| running(*child))
        .collect()
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Temporary directories of the demo `pid`.
fn temp_dirs_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("grpc-lb-demo-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn phase(summary: &Value, number: usize) -> &Value {
    &summary["phases"][number - 1]
}

fn by_backend(value: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(value["by_backend"].clone()).expect("by_backend map")
}

fn segment<'a>(phase: &'a Value, label: &str) -> &'a Value {
    phase["segments"]
        .as_array()
        .and_then(|segments| {
            segments
                .iter()
                .find(|s| s["label"].as_str().is_some_and(|l| l.contains(label)))
        })
        .unwrap_or_else(|| panic!("no segment {label:?} in {phase}"))
}

#[tokio::test]
async fn quick_demo_with_tls_keeps_every_graceful_phase_at_zero_failed() {
    bounded(QUICK_LIMIT + Duration::from_secs(30), async {
        let child = demo(&["--quick", "--tls", "--json"]);
        let output = child.wait_with_output().await.expect("demo ran");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "demo --tls failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        let summary: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}):\n{stdout}"));
        let context = format!("{summary:#}\n--- demo's output ---\n{stderr}");
        assert_eq!(summary["passed"], true, "{context}");
        assert_eq!(summary["completed_phases"], 6, "{context}");
        for number in [2, 3, 4, 6] {
            assert_eq!(
                phase(&summary, number)["failed"],
                0,
                "phase {number}: {context}"
            );
        }
        // The rotation happened mid-phase 2, and the calls went on over
        // all three backends.
        segment(phase(&summary, 2), "every certificate rotated");
        assert_eq!(by_backend(phase(&summary, 2)).len(), 3, "{context}");
    })
    .await;
}

#[tokio::test]
async fn quick_demo_runs_every_phase_and_keeps_each_promise() {
    bounded(QUICK_LIMIT + Duration::from_secs(30), async {
        let child = demo(&["--quick", "--json"]);
        let pid = child.id().expect("pid");
        let output = child.wait_with_output().await.expect("demo ran");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "demo failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        let summary: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}):\n{stdout}"));
        let context = format!("{summary:#}\n--- demo's output ---\n{stderr}");
        assert_eq!(summary["passed"], true, "{context}");
        assert_eq!(summary["completed_phases"], 6, "{context}");
        let seconds = summary["seconds"].as_f64().expect("seconds");
        assert!(
            seconds < QUICK_LIMIT.as_secs_f64(),
            "--quick took {seconds} s"
        );

        // 1. Per-connection balancing: one connection, one backend.
        let clusterip = phase(&summary, 1);
        assert_eq!(by_backend(clusterip).len(), 1, "{context}");
        let connections: BTreeMap<String, u64> =
            serde_json::from_value(clusterip["facts"]["tcp_connections"].clone()).expect("map");
        assert_eq!(connections.values().sum::<u64>(), 1, "{context}");
        assert!(clusterip["calls"].as_u64() > Some(100), "{context}");

        // 2. Through the control plane: an even split, one connection each.
        let balanced = phase(&summary, 2);
        let split = by_backend(balanced);
        assert_eq!(split.len(), 3, "{context}");
        let calls = balanced["calls"].as_u64().expect("calls") as f64;
        for (backend, n) in &split {
            let share = *n as f64 / calls;
            assert!(
                (0.30..=0.37).contains(&share),
                "{backend} got {share:.3} of the calls: {context}"
            );
        }
        for (backend, n) in balanced["server_connections"].as_object().expect("map") {
            assert_eq!(n, 1, "{backend}: one connection: {context}");
        }

        // 3. NOT_SERVING: no call while out; calls again once back.
        let not_serving = phase(&summary, 3);
        let victim = not_serving["facts"]["backend"]
            .as_str()
            .expect("backend")
            .to_owned();
        assert_eq!(
            not_serving["facts"]["calls_to_backend_while_out"], 0,
            "{context}"
        );
        assert_eq!(
            by_backend(segment(not_serving, "out of rotation")).get(&victim),
            None,
            "{context}"
        );
        assert!(
            by_backend(segment(not_serving, "back in rotation")).get(&victim) > Some(&0),
            "{context}"
        );

        // 4. Rolling restart: every old backend drained cleanly and only
        // new ones take calls afterwards.
        let rollout = phase(&summary, 4);
        let replaced = rollout["facts"]["replaced"].as_array().expect("replaced");
        assert_eq!(replaced.len(), 3, "{context}");
        let mut new = Vec::new();
        for step in replaced {
            assert_eq!(step["old_exit_code"], 0, "a clean drain: {context}");
            new.push(step["new"].as_str().expect("new").to_owned());
        }
        let after: Vec<String> = by_backend(segment(rollout, "after the rollout"))
            .into_keys()
            .collect();
        new.sort();
        assert_eq!(after, new, "{context}");

        // 5. SIGKILL: failures bounded; the replacement takes calls.
        let killed = phase(&summary, 5);
        let failed = killed["failed"].as_u64().expect("failed");
        assert!(
            failed <= 10,
            "{failed} calls failed after a SIGKILL: {context}"
        );
        let replacement = killed["facts"]["replacement"].as_str().expect("name");
        assert!(
            by_backend(segment(killed, "in rotation")).get(replacement) > Some(&0),
            "{context}"
        );

        // 6. Control plane restart: calls kept flowing while it was down.
        let restart = phase(&summary, 6);
        let down = segment(restart, "control plane down");
        assert!(down["calls"].as_u64() > Some(0), "{context}");
        assert_eq!(down["failed"], 0, "{context}");
        assert!(
            restart["facts"]["reconnected_after_ms"].is_u64(),
            "{context}"
        );

        // The graceful phases failed nothing.
        for number in [2, 3, 4, 6] {
            assert_eq!(
                phase(&summary, number)["failed"],
                0,
                "phase {number}: {context}"
            );
        }
        assert!(started_by(pid).is_empty(), "processes left behind");
        assert!(temp_dirs_of(pid).is_empty(), "temporary files left behind");
    })
    .await;
}

/// Starts the demo and waits until it runs phase 2 with its servers up;
/// returns it and the processes it started.
async fn demo_in_phase_2() -> (Child, Vec<i32>) {
    let mut child = demo(&["--quick", "--json"]);
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        if line.contains("Phase 2/6") {
            break;
        }
    }
    // Keep draining standard error so the demo never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let pid = child.id().expect("pid");
    let started = started_by(pid);
    assert_eq!(started.len(), 4, "a control plane and three backends");
    (child, started)
}

#[tokio::test]
async fn interrupted_it_stops_every_process_and_removes_its_files() {
    bounded(Duration::from_secs(60), async {
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            let (mut child, started) = demo_in_phase_2().await;
            let pid = child.id().expect("pid");
            nix::sys::signal::kill(Pid::from_raw(pid as i32), signal).expect("signal");
            let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .expect("the demo exits")
                .expect("wait");
            assert_eq!(status.code(), Some(130), "{signal}");
            for server in started {
                assert!(!running(server), "{signal}: process {server} still runs");
            }
            assert!(
                temp_dirs_of(pid).is_empty(),
                "{signal}: temporary files left"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn killed_with_sigkill_it_leaves_no_server_running() {
    bounded(Duration::from_secs(60), async {
        let (mut child, started) = demo_in_phase_2().await;
        let pid = child.id().expect("pid");
        child.kill().await.expect("SIGKILL the demo");
        // The kernel kills each server when the demo dies
        // (PR_SET_PDEATHSIG); wait for that with a deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while started.iter().any(|pid| running(*pid)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "servers outlived the killed demo: {started:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What only a demo that could clean up removes (the next demo run
        // would remove it too).
        for dir in temp_dirs_of(pid) {
            let _ = std::fs::remove_dir_all(dir);
        }
    })
    .await;
}
