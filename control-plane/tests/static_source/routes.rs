//! The static file's `routes:` section and per-service policy, applied
//! live: a weighted split, a weight change by editing the file, a route
//! naming a missing backend refused (the file itself is fine), and the
//! route back when the backend is added.

use std::path::Path;
use std::time::Duration;

use control_plane::model::LbPolicy;
use control_plane::routes::RouteState;
use control_plane::source::SourceState;
use control_plane::source::static_source::{self, StaticArgs};
use control_plane::store::Catalog;

use crate::support::{TEST_LIMIT, TempDir, store, wait_for};

fn file_args(path: &Path) -> StaticArgs {
    StaticArgs {
        static_file: Some(path.to_owned()),
        file_poll_interval: Duration::from_millis(50),
        no_probe: true,
        ..StaticArgs::default()
    }
}

fn file(v1: u32, v2: u32, v2_backend: &str) -> String {
    format!(
        r#"
services:
  - name: greeter
    endpoints: ["10.0.0.1:8080"]
  - name: greeter-v1
    lb_policy: least_request
    endpoints: ["10.0.1.1:8080"]
  - name: greeter-v2
    traffic_distribution: PreferClose
    endpoints:
      - {{address: "10.0.2.1:8080", zone: zone-a}}
      - {{address: "10.0.2.2:8080", zone: zone-b}}
routes:
  - name: greeter-canary
    parents: ["greeter:80"]
    rules:
      - backends:
          - {{service: greeter-v1, port: 80, weight: {v1}}}
          - {{service: {v2_backend}, port: 80, weight: {v2}}}
"#
    )
}

/// The weights of greeter's route, if it has one.
fn split(snapshot: &Catalog) -> Option<Vec<(String, u32)>> {
    let entry = snapshot.services.get("greeter")?;
    let table = entry.routes_of(entry.service.ports[0].port)?.clone();
    Some(
        table.entries[0]
            .backends
            .iter()
            .map(|b| (b.service.clone(), b.weight))
            .collect(),
    )
}

#[tokio::test]
async fn routes_and_policies_apply_live_and_a_bad_route_is_refused_alone() {
    tests::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("static-routes");
        let path = dir.path().join("services.yaml");
        std::fs::write(&path, file(90, 10, "greeter-v2")).unwrap();
        let store = store();
        let _source = static_source::start(file_args(&path), store.source_handle())
            .await
            .expect("valid file");
        let snapshot = store.catalog();
        assert!(snapshot.routes.support.enabled);
        assert_eq!(
            split(&snapshot),
            Some(vec![("greeter-v1".into(), 90), ("greeter-v2".into(), 10)])
        );
        assert_eq!(
            snapshot.services["greeter-v1"].service.policy.lb,
            LbPolicy::LeastRequest
        );
        assert!(snapshot.services["greeter-v2"].service.is_zone_aware());

        std::fs::write(&path, file(50, 50, "greeter-v2")).unwrap();
        wait_for(&store, "50/50", |s| {
            split(s) == Some(vec![("greeter-v1".into(), 50), ("greeter-v2".into(), 50)])
        })
        .await;

        // A backend that does not exist: the route is refused, the rest of
        // the file applies and the source stays connected.
        std::fs::write(&path, file(50, 50, "greeter-v3")).unwrap();
        let refused = wait_for(&store, "refused", |s| {
            s.routes
                .statuses
                .iter()
                .any(|r| matches!(&r.state, RouteState::Refused(reason) if reason.contains("greeter-v3")))
        })
        .await;
        assert_eq!(split(&refused), None, "the default route");
        assert_eq!(refused.source.state, SourceState::Connected);
    })
    .await;
}
