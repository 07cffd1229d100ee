//! The harness itself: every scenario runs at tiny sizes (`bench all
//! --quick`, the data path also over mutual TLS) against the real binaries and writes well-formed results, a
//! report and charts. No timing is asserted; this keeps the harness from
//! rotting.
//!
//! Needs the workspace binaries (greeter-server, control-plane) next to
//! the test executable's profile directory, as `cargo test --workspace`
//! builds them, and the Go toolchain for the go-control-plane peer (the
//! harness builds it on first use; `SKIP_GO_PEER=1` accepts a run without
//! Go, where the harness skips the peer and says so).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// `target/<profile>`, where cargo put the workspace's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps")
        .to_path_buf()
}

async fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .expect("bench runs")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn rows<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value["results"][key]
        .as_array()
        .unwrap_or_else(|| panic!("results.{key} is not a list: {value}"))
}

fn check_svg(path: &Path) {
    let svg = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    assert!(svg.starts_with("<svg "), "{}", path.display());
    assert!(svg.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(
        !svg.contains("NaN") && !svg.contains("inf"),
        "{}: {svg}",
        path.display()
    );
    assert_eq!(
        svg.matches("<svg").count(),
        svg.matches("</svg>").count(),
        "{}",
        path.display()
    );
}

/// Whether this test may accept a run without the go-control-plane peer:
/// only when told so, never because Go happens to be missing.
fn go_peer_optional() -> bool {
    std::env::var("SKIP_GO_PEER").is_ok_and(|v| v == "1")
}

async fn go_installed() -> bool {
    let go = std::env::var("BENCH_GO").unwrap_or_else(|_| "go".to_owned());
    Command::new(go)
        .arg("version")
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn quick_run_writes_results_report_and_charts() {
    assert!(
        go_peer_optional() || go_installed().await,
        "the propagation benchmark measures go-control-plane beside our control plane and builds \
         it with the Go toolchain (1.26 or newer), which is missing: install Go (or point BENCH_GO \
         at it), or set SKIP_GO_PEER=1 to accept a run without that peer"
    );
    // The first run builds the Go peer (modules from the Go module proxy).
    tests::bounded(Duration::from_secs(900), async {
        let dir = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let doc = dir.join("benchmarks.md");
        let (dir_arg, doc_arg, bins_arg) = (
            dir.display().to_string(),
            doc.display().to_string(),
            bin_dir().display().to_string(),
        );
        let paths = [
            "--out-dir",
            &dir_arg,
            "--doc",
            &doc_arg,
            "--bin-dir",
            &bins_arg,
        ];
        let mut args = vec!["all", "--quick"];
        args.extend(paths);
        let output = bench(&args).await;
        assert!(
            output.status.success(),
            "bench all --quick failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let propagation = read_json(&dir.join("propagation.json"));
        assert_eq!(propagation["quick"], true);
        assert!(propagation["machine"]["cores"].as_u64() >= Some(1));
        let prop_rows = rows(&propagation, "rows");
        assert!(
            prop_rows.iter().any(|r| r["client"] == "raw-ads")
                && prop_rows.iter().any(|r| r["client"] == "channel"),
            "both kinds of subscriber measured: {prop_rows:?}"
        );
        // The go-control-plane peer: raw ADS rows at every size ours has
        // them, single changes and bursts, every subscriber served.
        let peer_rows: Vec<_> = prop_rows
            .iter()
            .filter(|r| r["control_plane"] == "go-control-plane")
            .collect();
        if peer_rows.is_empty() {
            assert!(
                go_peer_optional(),
                "no go-control-plane rows: {prop_rows:?}"
            );
            let skipped = propagation["results"]["skipped_peers"].to_string();
            assert!(skipped.contains("go-control-plane"), "{skipped}");
        } else {
            let ours = |change: &str| {
                let mut sizes: Vec<_> = prop_rows
                    .iter()
                    .filter(|r| {
                        r["control_plane"] == "ours"
                            && r["client"] == "raw-ads"
                            && r["change"] == change
                    })
                    .map(|r| (r["subscribers"].as_u64(), r["endpoints"].as_u64()))
                    .collect();
                sizes.sort_unstable();
                sizes
            };
            for change in ["single", "burst"] {
                let mut sizes: Vec<_> = peer_rows
                    .iter()
                    .filter(|r| r["change"] == change)
                    .map(|r| {
                        assert_eq!(r["client"], "raw-ads", "{r}");
                        assert!(r["cp_cpu_ms_per_trial"].as_f64() > Some(0.0), "{r}");
                        (r["subscribers"].as_u64(), r["endpoints"].as_u64())
                    })
                    .collect();
                sizes.sort_unstable();
                assert_eq!(sizes, ours(change), "{change}: {peer_rows:?}");
            }
            let peers = propagation["results"]["peers"].to_string();
            assert!(peers.contains("go-control-plane v0.14.0"), "{peers}");
        }
        for row in prop_rows.iter().chain(rows(&propagation, "e2e")) {
            assert_eq!(row["missed"], 0, "every subscriber saw every change: {row}");
            assert!(
                row["per_subscriber_ms"]["count"].as_u64() > Some(0),
                "{row}"
            );
            assert!(row["to_last_ms"]["p50"].as_f64() >= Some(0.0), "{row}");
        }

        let data_path = read_json(&dir.join("data-path.json"));
        let data_rows = rows(&data_path, "rows");
        for client in ["ours", "direct", "balance-channel", "ginepro"] {
            let mine: Vec<_> = data_rows.iter().filter(|r| r["client"] == client).collect();
            assert!(!mine.is_empty(), "{client} measured");
            for row in mine {
                assert!(row["throughput"].as_f64() > Some(0.0), "{row}");
                assert_eq!(row["failed"], 0, "{row}");
            }
        }
        let two_backends = data_rows
            .iter()
            .find(|r| r["client"] == "ours" && r["backends"] == 2)
            .expect("ours over two backends");
        assert_eq!(
            two_backends["by_backend"].as_object().map(|m| m.len()),
            Some(2),
            "our channel spread calls over both backends: {two_backends}"
        );

        // Over mTLS: every call answered, by the backends that require a
        // client certificate (named tls-b*), through our channel (TLS
        // settings from the control plane) and the direct one; and the
        // handshake rows, the TLS ones having negotiated TLS 1.3.
        let data_tls = read_json(&dir.join("data-path-tls.json"));
        let tls_rows = rows(&data_tls, "rows");
        for client in ["ours", "direct"] {
            for transport in ["plaintext", "mtls"] {
                let mine: Vec<_> = tls_rows
                    .iter()
                    .filter(|r| r["client"] == client && r["transport"] == transport)
                    .collect();
                assert!(!mine.is_empty(), "{client} over {transport} measured");
                for row in mine {
                    assert!(row["throughput"].as_f64() > Some(0.0), "{row}");
                    assert_eq!(row["failed"], 0, "{row}");
                    let backends = row["by_backend"].as_object().expect("by_backend");
                    assert!(
                        backends
                            .keys()
                            .all(|b| b.starts_with("tls-b") == (transport == "mtls")),
                        "{row}"
                    );
                }
            }
        }
        let ours_tls_two = tls_rows
            .iter()
            .find(|r| r["client"] == "ours" && r["transport"] == "mtls" && r["backends"] == 2)
            .expect("ours over mTLS to two backends");
        assert_eq!(
            ours_tls_two["by_backend"].as_object().map(|m| m.len()),
            Some(2),
            "{ours_tls_two}"
        );
        let handshake = &data_tls["results"]["handshake"];
        assert_eq!(
            handshake["negotiated"]["protocol"], "TLSv1_3",
            "{handshake}"
        );
        let handshake_rows = handshake["rows"].as_array().expect("handshake rows");
        assert_eq!(handshake_rows.len(), 2, "{handshake}");
        for row in handshake_rows {
            assert!(row["connections"].as_u64() > Some(0), "{row}");
            assert_eq!(row["failed"], 0, "{row}");
        }

        let rollout = read_json(&dir.join("rollout.json"));
        let roll_rows = rows(&rollout, "rows");
        assert_eq!(roll_rows.len(), 3, "{roll_rows:?}");
        for row in roll_rows {
            assert!(row["ok"].as_u64() > Some(0), "{row}");
            let new_backends = row["by_backend"]
                .as_object()
                .map_or(0, |m| m.keys().filter(|b| b.starts_with("v2-")).count());
            assert!(new_backends > 0, "calls reached the new backends: {row}");
        }

        let report = std::fs::read_to_string(&doc).expect("report written");
        for block in [
            "runs",
            "goals",
            "propagation",
            "data-path",
            "data-path-tls",
            "rollout",
        ] {
            assert!(
                report.contains(&format!("<!-- BEGIN generated: {block} -->")),
                "{block}"
            );
            assert!(
                report.contains(&format!("<!-- END generated: {block} -->")),
                "{block}"
            );
        }
        assert!(!report.contains("Not measured yet"), "{report}");
        if !peer_rows.is_empty() {
            assert!(
                report.contains("| go-control-plane | raw ADS |"),
                "peer rows in the propagation tables: {report}"
            );
            let chart = std::fs::read_to_string(dir.join("propagation.svg")).expect("chart");
            assert!(chart.contains("go-control-plane, 10 ep"), "{chart}");
        }
        assert!(report.contains("| goal | measured | verdict |"), "{report}");
        for chart in [
            "propagation.svg",
            "propagation-cpu.svg",
            "data-path-throughput.svg",
            "data-path-latency.svg",
            "rollout.svg",
        ] {
            assert!(report.contains(&format!("]({chart})")), "{chart} linked");
            check_svg(&dir.join(chart));
        }

        // The report regenerates from the results alone, unchanged.
        let mut args = vec!["report"];
        args.extend(paths);
        let output = bench(&args).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(std::fs::read_to_string(&doc).expect("report"), report);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
