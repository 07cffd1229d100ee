//! `/metrics` as scrapers read it: Prometheus text unless OpenMetrics is
//! asked for, each parsed by `prometheus_client` (a pinned virtualenv under
//! `target/metrics-venv`), with every metric of docs/metrics.md present from
//! the start with its documented type; the source gauges during an outage
//! of the (fake) Kubernetes API; and the dashboard's queries.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tests::bounded;
use tests::fake_kube::{EndpointSliceFixture, EndpointState, FakeKube, Outage, ServiceFixture};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{ControlPlane, PROMETHEUS_CLIENT, SYNCED, WAIT, eventually, root};

/// What Prometheus sends by default (OpenMetrics preferred).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// One metric family as `prometheus_client` parsed it.
#[derive(Debug, Clone)]
struct Family {
    kind: String,
    /// Sample name and labels → value.
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// Parses `text` with `prometheus_client`'s parser for `format`
/// (`prometheus` or `openmetrics`); families by name. Panics with the
/// parser's message when it rejects the text.
async fn parse(format: &str, text: &str) -> BTreeMap<String, Family> {
    let python = tests::python::venv("metrics-venv", &[PROMETHEUS_CLIENT]).await;
    let script = root().join("tests/metrics/parse_metrics.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(format)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the parser");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the parser finished")
        .expect("parser output");
    assert!(
        output.status.success(),
        "{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    parsed
        .into_iter()
        .map(|family| {
            let samples = family["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .map(|s| {
                    let labels = s["labels"]
                        .as_object()
                        .expect("labels")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    let value = s["value"].as_str().expect("value").parse().expect("float");
                    (s["name"].as_str().expect("name").to_owned(), labels, value)
                })
                .collect();
            let name = family["name"].as_str().expect("name").to_owned();
            let kind = family["type"].as_str().expect("type").to_owned();
            (name, Family { kind, samples })
        })
        .collect()
}

/// The metrics table of docs/metrics.md: name → type.
fn documented() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    let table: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `control_plane_")?.split('|');
            let name = format!(
                "control_plane_{}",
                cells.next()?.trim().trim_end_matches('`')
            );
            Some((name, cells.next()?.trim().to_owned()))
        })
        .collect();
    assert!(table.len() >= 12, "the table of docs/metrics.md: {table:?}");
    table
}

/// The family name a parser gives a documented metric (counters lose
/// `_total`).
fn family_name(documented: &str, kind: &str) -> String {
    match kind {
        "counter" => documented.trim_end_matches("_total").to_owned(),
        _ => documented.to_owned(),
    }
}

/// The value of `name{labels}` in `families` (labels a subset).
fn value(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .values()
        .flat_map(|f| &f.samples)
        .find(|(sample, have, _)| {
            sample == name
                && labels
                    .iter()
                    .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| *value)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// Every documented metric is in `families` with its documented type, and
/// nothing else is.
fn check_documented(families: &BTreeMap<String, Family>, format: &str) {
    let documented = documented();
    for (name, kind) in &documented {
        let family = family_name(name, kind);
        let found = families
            .get(&family)
            .unwrap_or_else(|| panic!("{format}: {name} is documented but not exported"));
        assert_eq!(&found.kind, kind, "{format}: type of {name}");
        assert!(!found.samples.is_empty(), "{format}: {name} has no sample");
    }
    let expected: BTreeSet<String> = documented
        .iter()
        .map(|(name, kind)| family_name(name, kind))
        .collect();
    let exported: BTreeSet<String> = families.keys().cloned().collect();
    assert_eq!(
        exported, expected,
        "{format}: exported families = documented ones"
    );
}

#[tokio::test]
async fn metrics_parse_with_every_documented_metric_and_the_source_gauge_follows_an_api_outage() {
    bounded(crate::LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .name("greeter-a")
                .port("grpc", 8080)
                .endpoint("10.0.0.1", EndpointState::Ready)
                .endpoint("10.0.0.2", EndpointState::Ready)
                .endpoint("10.0.0.3", EndpointState::NotReady),
        );
        let kubeconfig = kube.kubeconfig_path().to_str().expect("UTF-8 path");
        let mut control_plane = ControlPlane::start(
            "control-plane",
            &[
                "--source",
                "kubernetes",
                "--namespace",
                "default",
                "--kube-backoff-max",
                "500ms",
            ],
            &[("KUBECONFIG", kubeconfig), ("POD_NAMESPACE", "")],
        )
        .await;
        control_plane.process.wait_for_log(SYNCED, WAIT).await;

        // Prometheus text when the scraper asks for nothing in particular.
        let plain = control_plane.scrape(None).await;
        assert_eq!(
            plain.content_type,
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(!plain.body.contains("# EOF"), "{}", plain.body);
        let families = parse("prometheus", &plain.body).await;
        check_documented(&families, "prometheus text");
        // Counters are there at zero before anything happened.
        for kind in ["LDS", "RDS", "CDS", "EDS"] {
            let nacks = value(
                &families,
                "control_plane_xds_nacks_total",
                &[("type", kind)],
            );
            assert_eq!(nacks, 0.0, "NACKs of {kind}");
        }
        for reason in [
            "client_san_not_allowed",
            "max_streams",
            "max_streams_per_peer",
        ] {
            let refused = value(
                &families,
                "control_plane_refused_total",
                &[("reason", reason)],
            );
            assert_eq!(refused, 0.0, "refusals for {reason}");
        }
        assert_eq!(value(&families, "control_plane_services", &[]), 1.0);
        let endpoints = |state| value(&families, "control_plane_endpoints", &[("state", state)]);
        assert_eq!(
            (
                endpoints("ready"),
                endpoints("draining"),
                endpoints("not_ready")
            ),
            (2.0, 0.0, 1.0)
        );
        let connected = &[("source", "kubernetes")];
        assert_eq!(
            value(&families, "control_plane_source_connected", connected),
            1.0
        );

        // OpenMetrics when the scraper prefers it, as Prometheus does.
        let open = control_plane.scrape(Some(PROMETHEUS_ACCEPT)).await;
        assert_eq!(
            open.content_type,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
        check_documented(&parse("openmetrics", &open.body).await, "OpenMetrics");
        // And Prometheus text again when the scraper asks for it first.
        let asked = control_plane
            .scrape(Some("text/plain;version=0.0.4;q=1.0,*/*;q=0.1"))
            .await;
        assert!(asked.content_type.starts_with("text/plain; version=0.0.4"));

        // The API server goes away: the source gauge flips, and the last
        // sync time stops at about that moment.
        let went_down = unix_seconds();
        kube.go_down(Outage::Refuse).await;
        let state = |state| [("source", "kubernetes"), ("state", state)];
        eventually("the source gauge turns 0", || async {
            let scrape = control_plane.scrape(None).await;
            (scrape.sample("control_plane_source_connected", connected) == Some(0.0)).then_some(())
        })
        .await;
        let families = parse("prometheus", &control_plane.scrape(None).await.body).await;
        assert_eq!(
            value(
                &families,
                "control_plane_source_state",
                &state("disconnected")
            ),
            1.0
        );
        assert_eq!(
            value(&families, "control_plane_source_state", &state("connected")),
            0.0
        );
        let last_sync = value(
            &families,
            "control_plane_source_last_sync_timestamp_seconds",
            connected,
        );
        assert!(
            last_sync >= went_down - 1.0 && last_sync <= unix_seconds(),
            "last sync {last_sync}, outage from {went_down}"
        );
        // Still served meanwhile.
        assert_eq!(value(&families, "control_plane_services", &[]), 1.0);

        kube.come_up().await;
        eventually("the source gauge turns 1 again", || async {
            let scrape = control_plane.scrape(None).await;
            (scrape.sample("control_plane_source_connected", connected) == Some(1.0)).then_some(())
        })
        .await;
        let scrape = control_plane.scrape(None).await;
        let last_sync = scrape
            .sample(
                "control_plane_source_last_sync_timestamp_seconds",
                connected,
            )
            .expect("last sync");
        assert!(last_sync >= unix_seconds() - 5.0, "{last_sync}");
    })
    .await;
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Every `control_plane_*` name in the PromQL of the dashboard's panels.
fn dashboard_metric_names() -> BTreeSet<String> {
    let path = root().join("deploy/grafana/control-plane-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    collect_exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 8, "queries: {queries:?}");
    let mut names = BTreeSet::new();
    for query in &queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("control_plane_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_exprs(item, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_queries_only_exported_metrics() {
    bounded(crate::LIMIT, async {
        let names = dashboard_metric_names();
        // The panels the dashboard promises.
        for needed in [
            "control_plane_connected_clients",
            "control_plane_update_latency_seconds_bucket",
            "control_plane_xds_nacks_total",
            "control_plane_endpoints",
            "control_plane_source_connected",
        ] {
            assert!(names.contains(needed), "the dashboard shows {needed}");
        }
        let control_plane = ControlPlane::fixed("metrics", "127.0.0.1:1", &[]).await;
        let scrape = control_plane.scrape(None).await;
        let families = parse("prometheus", &scrape.body).await;
        let exported: BTreeSet<String> = families
            .values()
            .flat_map(|f| f.samples.iter().map(|(name, _, _)| name.clone()))
            .collect();
        let missing: Vec<&String> = names.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "the dashboard queries {missing:?}, which are not exported; exported: {exported:?}"
        );
    })
    .await;
}
