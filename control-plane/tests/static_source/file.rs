//! `--static-file`: loading, live edits, broken edits, replaced files, and
//! how it combines with `--static`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use control_plane::model::Readiness;
use control_plane::source::SourceState;
use control_plane::source::static_source::{self, Error, LoadError, StaticArgs};
use control_plane::store::Catalog;

use crate::support::{TEST_LIMIT, TempDir, store, wait_for};

const POLL: Duration = Duration::from_millis(50);

/// Options for a file-only source. Probing is off here: these tests are
/// about the configuration, and their addresses lead nowhere.
fn file_args(path: &Path) -> StaticArgs {
    StaticArgs {
        static_file: Some(path.to_owned()),
        file_poll_interval: POLL,
        no_probe: true,
        ..StaticArgs::default()
    }
}

/// Service name -> sorted endpoint addresses.
fn services(snapshot: &Catalog) -> Vec<(String, Vec<String>)> {
    snapshot
        .services
        .iter()
        .map(|(name, entry)| {
            let mut addrs: Vec<String> = entry
                .service
                .ports
                .iter()
                .flat_map(|p| &p.endpoints)
                .map(|e| e.socket_addr().to_string())
                .collect();
            addrs.sort();
            (name.clone(), addrs)
        })
        .collect()
}

fn expect(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    list.iter()
        .map(|(name, addrs)| {
            (
                (*name).to_owned(),
                addrs.iter().map(|a| (*a).to_owned()).collect(),
            )
        })
        .collect()
}

fn error_of(snapshot: &Catalog) -> String {
    snapshot
        .source
        .last_error
        .as_ref()
        .map(|e| e.text.clone())
        .unwrap_or_default()
}

/// Waits until the source is degraded with an error containing `text`.
async fn wait_degraded(store: &control_plane::store::Store, text: &str) -> Arc<Catalog> {
    wait_for(store, &format!("degraded with {text:?}"), |s| {
        s.source.state == SourceState::Degraded && error_of(s).contains(text)
    })
    .await
}

const V1: &str = "services:\n  - name: greeter\n    endpoints: [\"10.0.0.1:8080\"]\n";

const V2: &str = r#"
services:
  - name: greeter
    ports:
      - name: grpc
        port: 80
        endpoints:
          - 10.0.0.1:8080
          - {address: "10.0.0.2:8080", zone: zone-a, instance: pod-b}
  - name: billing
    port: 9000
    endpoints: ["localhost:9001"]
"#;

#[tokio::test]
async fn valid_edits_apply_live_and_broken_edits_keep_the_last_good_config() {
    tests::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("static-edits");
        let path = dir.path().join("services.yaml");
        std::fs::write(&path, V1).unwrap();
        let store = store();
        let _source = static_source::start(file_args(&path), store.source_handle())
            .await
            .expect("valid file at startup");

        let snapshot = store.catalog();
        assert_eq!(snapshot.source.state, SourceState::Connected);
        assert_eq!(
            services(&snapshot),
            expect(&[("greeter", &["10.0.0.1:8080"])])
        );
        let endpoint = &snapshot.services["greeter"].service.ports[0].endpoints[0];
        assert_eq!(endpoint.state, Readiness::Ready, "--no-probe");

        // A valid edit (in place) applies live.
        std::fs::write(&path, V2).unwrap();
        let good = wait_for(&store, "the second version", |s| {
            services(s)
                == expect(&[
                    ("billing", &["127.0.0.1:9001"]),
                    ("greeter", &["10.0.0.1:8080", "10.0.0.2:8080"]),
                ])
        })
        .await;
        let greeter = &good.services["greeter"].service;
        assert_eq!(greeter.ports[0].name.as_deref(), Some("grpc"));
        let b = &greeter.ports[0].endpoints[1];
        assert_eq!(b.zone.as_deref(), Some("zone-a"));
        assert_eq!(b.instance.as_deref(), Some("pod-b"));
        assert_eq!(good.source.state, SourceState::Connected);

        // Broken edits: the error is shown, the last good config stays.
        let path_text = path.display().to_string();
        for (broken, error) in [
            ("services: [\n", "line 2"),
            (
                "services:\n  - name: greeter\n    ports:\n      - prot: 80\n",
                "unknown field `prot`",
            ),
            (
                "services:\n  - name: Greeter_2\n    endpoints: [\"10.0.0.1:80\"]\n",
                "\"Greeter_2\" is not a DNS label",
            ),
            (
                "services:\n  - name: greeter\n    endpoints: [\"no-such-host.invalid:80\"]\n",
                "cannot resolve host \"no-such-host.invalid\"",
            ),
            ("", "the file is empty"),
        ] {
            std::fs::write(&path, broken).unwrap();
            let degraded = wait_degraded(&store, error).await;
            assert!(error_of(&degraded).contains(&path_text));
            for name in ["greeter", "billing"] {
                assert!(
                    Arc::ptr_eq(&good.services[name], &degraded.services[name]),
                    "{name} changed after a broken edit {broken:?}"
                );
            }
        }

        // The next valid edit applies and clears the degradation.
        std::fs::write(&path, V1).unwrap();
        let fixed = wait_for(&store, "the fixed file", |s| {
            s.source.state == SourceState::Connected
                && services(s) == expect(&[("greeter", &["10.0.0.1:8080"])])
        })
        .await;
        assert!(!fixed.services.contains_key("billing"));
    })
    .await;
}

/// Writes `text` to a new file next to `path` and renames it over `path`,
/// as many editors do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn replaced_deleted_and_recreated_files_are_followed() {
    tests::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("static-replace");
        let path = dir.path().join("services.json");
        std::fs::write(&path, r#"{"services": []}"#).unwrap();
        let store = store();
        let _source = static_source::start(file_args(&path), store.source_handle())
            .await
            .unwrap();
        assert!(store.catalog().services.is_empty());

        replace(&path, V1);
        let good = wait_for(&store, "the renamed-in file", |s| {
            services(s) == expect(&[("greeter", &["10.0.0.1:8080"])])
        })
        .await;

        std::fs::remove_file(&path).unwrap();
        let degraded = wait_degraded(&store, "failed to read").await;
        assert!(Arc::ptr_eq(
            &good.services["greeter"],
            &degraded.services["greeter"]
        ));

        std::fs::write(&path, V1.replace("10.0.0.1", "10.0.0.3")).unwrap();
        wait_for(&store, "the recreated file", |s| {
            s.source.state == SourceState::Connected
                && services(s) == expect(&[("greeter", &["10.0.0.3:8080"])])
        })
        .await;
    })
    .await;
}

/// A Kubernetes ConfigMap volume: `<dir>/services.yaml` is a symlink to
/// `..data/services.yaml`, and `..data` is a symlink to a timestamped
/// directory that an update replaces by renaming a new symlink over it.
struct ConfigMapVolume {
    dir: PathBuf,
    generation: u32,
}

impl ConfigMapVolume {
    fn new(dir: &Path, text: &str) -> Self {
        let mut volume = Self {
            dir: dir.to_owned(),
            generation: 0,
        };
        volume.update(text);
        std::os::unix::fs::symlink("..data/services.yaml", dir.join("services.yaml")).unwrap();
        volume
    }

    fn update(&mut self, text: &str) {
        let old = format!("..gen_{}", self.generation);
        self.generation += 1;
        let new = format!("..gen_{}", self.generation);
        std::fs::create_dir(self.dir.join(&new)).unwrap();
        std::fs::write(self.dir.join(&new).join("services.yaml"), text).unwrap();
        std::os::unix::fs::symlink(&new, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        let _ = std::fs::remove_dir_all(self.dir.join(old));
    }
}

#[tokio::test]
async fn configmap_symlink_swaps_are_followed() {
    tests::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("static-configmap");
        let mut volume = ConfigMapVolume::new(dir.path(), V1);
        let store = store();
        let path = dir.path().join("services.yaml");
        let _source = static_source::start(file_args(&path), store.source_handle())
            .await
            .unwrap();
        assert_eq!(
            services(&store.catalog()),
            expect(&[("greeter", &["10.0.0.1:8080"])])
        );

        volume.update(&V1.replace("10.0.0.1", "10.0.0.9"));
        wait_for(&store, "the swapped ConfigMap", |s| {
            services(s) == expect(&[("greeter", &["10.0.0.9:8080"])])
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn startup_errors_are_returned_and_publish_nothing() {
    tests::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("static-startup");
        let missing = dir.path().join("missing.yaml");
        let invalid = dir.path().join("invalid.yaml");
        std::fs::write(&invalid, "services:\n  - name: a\n    prot: 80\n").unwrap();
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, V1).unwrap();

        let cases: Vec<(StaticArgs, &str)> = vec![
            (file_args(&missing), "failed to read"),
            (file_args(&invalid), "unknown field `prot`"),
            (
                StaticArgs {
                    services: vec!["greeter=10.0.0.5:8080".into()],
                    ..file_args(&good)
                },
                "service greeter is defined both by --static and in",
            ),
            (
                StaticArgs {
                    services: vec!["greeter=10.0.0.5".into()],
                    ..StaticArgs::default()
                },
                "invalid --static \"greeter=10.0.0.5\"",
            ),
            (
                StaticArgs {
                    services: vec!["greeter=no-such-host.invalid:80".into()],
                    ..StaticArgs::default()
                },
                "cannot resolve host \"no-such-host.invalid\"",
            ),
        ];
        for (args, expected) in cases {
            let store = store();
            let error = static_source::start(args, store.source_handle())
                .await
                .expect_err(expected);
            assert!(error.to_string().contains(expected), "{error}");
            let snapshot = store.catalog();
            assert!(snapshot.services.is_empty());
            assert_eq!(snapshot.source.state, SourceState::Starting);
        }

        let error = static_source::run(file_args(&missing), store().source_handle())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::File(load) if matches!(**load, LoadError::Read { .. })),
            "{error}"
        );
    })
    .await;
}

#[tokio::test]
async fn flags_and_file_combine_and_an_edit_redefining_a_flag_service_is_rejected() {
    tests::bounded(TEST_LIMIT, async {
        let dir = TempDir::new("static-combine");
        let path = dir.path().join("services.yaml");
        std::fs::write(&path, V1).unwrap();
        let store = store();
        let args = StaticArgs {
            services: vec!["billing:9000=10.0.0.7:9000,10.0.0.8:9000".into()],
            ..file_args(&path)
        };
        let _source = static_source::start(args, store.source_handle())
            .await
            .unwrap();
        let both = store.catalog();
        assert_eq!(
            services(&both),
            expect(&[
                ("billing", &["10.0.0.7:9000", "10.0.0.8:9000"]),
                ("greeter", &["10.0.0.1:8080"]),
            ])
        );
        assert_eq!(both.services["billing"].service.ports[0].port, 9000);

        let clash = format!("{V1}  - name: billing\n    endpoints: [\"10.0.0.1:1\"]\n");
        std::fs::write(&path, clash).unwrap();
        let degraded =
            wait_degraded(&store, "service billing is already defined by --static").await;
        assert_eq!(services(&degraded), services(&both));

        std::fs::write(&path, V1.replace("greeter", "greeter-2")).unwrap();
        wait_for(&store, "the file's rename of greeter", |s| {
            s.source.state == SourceState::Connected
                && services(s)
                    == expect(&[
                        ("billing", &["10.0.0.7:9000", "10.0.0.8:9000"]),
                        ("greeter-2", &["10.0.0.1:8080"]),
                    ])
        })
        .await;
    })
    .await;
}
