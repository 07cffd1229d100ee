//! Probing TLS services: each handshake failure cause gets its own detail,
//! a TLS service is never probed in plaintext, and a plaintext probe of a
//! TLS port says so.

use std::net::SocketAddr;

use control_plane::model::Readiness::{NotReady, Ready};
use control_plane::source::static_source::{self, StaticArgs};
use tests::Process;
use tests::certs::{Ca, Leaf, TlsDir, Validity};

use crate::support::{TEST_LIMIT, free_port, is, store, wait_for};

const SAN: &str = "greeter.default.svc.cluster.local";

/// How the greeter-server under probe serves.
struct ServerSide {
    leaf: Leaf,
    tls: bool,
    mutual: bool,
}

impl ServerSide {
    fn tls(leaf: Leaf) -> Self {
        Self {
            leaf,
            tls: true,
            mutual: false,
        }
    }
}

/// How the control plane probes.
struct ProbeSide {
    /// `tls:` of the service in the file (`None`: plaintext service).
    service_tls: Option<&'static str>,
    /// Probe with the servers' CA (true), another CA (false), or no
    /// --probe-tls-ca (`None`).
    same_ca: Option<bool>,
    /// Present a client certificate.
    identity: bool,
}

impl ProbeSide {
    fn tls(service_tls: &'static str) -> Self {
        Self {
            service_tls: Some(service_tls),
            same_ca: Some(true),
            identity: false,
        }
    }
}

/// Starts a greeter-server as `server` says, probes it as `probe` says and
/// waits until the endpoint reaches `state` with a detail starting with
/// `detail`.
async fn probe(
    server: ServerSide,
    probe: ProbeSide,
    state: control_plane::model::Readiness,
    detail: Option<&str>,
) {
    let dir = TlsDir::new();
    let ca = Ca::new("servers' CA");
    dir.write("ca.crt", &ca.pem());
    dir.write("other-ca.crt", &Ca::new("another CA").pem());
    dir.write_identity("server", &ca.issue(&server.leaf));
    dir.write_identity(
        "probe",
        &ca.issue(&Leaf::new(
            &["spiffe://cluster.local/ns/default/sa/control-plane"],
            9,
        )),
    );

    let addr: SocketAddr = free_port().await;
    let listen = addr.to_string();
    let (cert, key, client_ca) = (
        dir.arg("server.crt"),
        dir.arg("server.key"),
        dir.arg("ca.crt"),
    );
    let mut args = vec!["--listen", &listen, "--name", "probed"];
    if server.tls {
        args.extend(["--tls-cert", &cert, "--tls-key", &key]);
    }
    if server.mutual {
        args.extend(["--tls-client-ca", &client_ca]);
    }
    let mut greeter = Process::spawn("probed", "greeter-server", &args);
    greeter.wait_listening().await;

    let tls = probe
        .service_tls
        .map(|tls| format!(", tls: {tls}"))
        .unwrap_or_default();
    let file = dir.write(
        "services.yaml",
        &format!("services: [{{name: greeter, endpoints: [\"{addr}\"]{tls}}}]"),
    );
    let store = store();
    let _source = static_source::start(
        StaticArgs {
            static_file: Some(file),
            probe_interval: std::time::Duration::from_millis(200),
            probe_tls_ca: probe
                .same_ca
                .map(|same| dir.path(if same { "ca.crt" } else { "other-ca.crt" })),
            probe_tls_cert: probe.identity.then(|| dir.path("probe.crt")),
            probe_tls_key: probe.identity.then(|| dir.path("probe.key")),
            ..StaticArgs::default()
        },
        store.source_handle(),
    )
    .await
    .expect("static source starts");
    let what = format!("greeter {addr} {state} {detail:?}");
    wait_for(&store, &what, |s| is(s, "greeter", addr, state, detail)).await;
    greeter.kill().await;
}

#[tokio::test]
async fn a_tls_service_with_the_right_ca_and_san_is_ready_over_mutual_tls() {
    tests::bounded(TEST_LIMIT, async {
        let server = ServerSide {
            mutual: true,
            ..ServerSide::tls(Leaf::new(&[SAN], 1))
        };
        let probe_side = ProbeSide {
            identity: true,
            ..ProbeSide::tls("{subject_alt_names: [greeter.default.svc.cluster.local]}")
        };
        probe(server, probe_side, Ready, None).await;
    })
    .await;
}

#[tokio::test]
async fn a_tls_service_without_probe_tls_ca_is_not_probed_in_plaintext() {
    tests::bounded(TEST_LIMIT, async {
        let probe_side = ProbeSide {
            same_ca: None,
            ..ProbeSide::tls("{}")
        };
        probe(
            ServerSide::tls(Leaf::new(&[SAN], 1)),
            probe_side,
            NotReady,
            Some("health probe: the service is TLS but no --probe-tls-ca was given"),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_ca_is_named() {
    tests::bounded(TEST_LIMIT, async {
        let probe_side = ProbeSide {
            same_ca: Some(false),
            ..ProbeSide::tls("{}")
        };
        probe(
            ServerSide::tls(Leaf::new(&[SAN], 1)),
            probe_side,
            NotReady,
            Some("unreachable: TLS handshake failed: unknown CA"),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_san_mismatch_names_what_was_expected_and_what_was_presented() {
    tests::bounded(TEST_LIMIT, async {
        probe(
            ServerSide::tls(Leaf::new(&["intruder.example"], 1)),
            ProbeSide::tls("{subject_alt_names: [greeter.default.svc.cluster.local]}"),
            NotReady,
            Some(
                "unreachable: TLS handshake failed: SAN mismatch: expected one of \
                 [greeter.default.svc.cluster.local], the server's certificate presents \
                 [intruder.example]",
            ),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn an_expired_certificate_is_named() {
    tests::bounded(TEST_LIMIT, async {
        probe(
            ServerSide::tls(Leaf::new(&[SAN], 1).validity(Validity::Expired)),
            ProbeSide::tls("{}"),
            NotReady,
            Some("unreachable: TLS handshake failed: the server's certificate has expired"),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_certificate_not_yet_valid_is_named() {
    tests::bounded(TEST_LIMIT, async {
        probe(
            ServerSide::tls(Leaf::new(&[SAN], 1).validity(Validity::NotYetValid)),
            ProbeSide::tls("{}"),
            NotReady,
            Some("unreachable: TLS handshake failed: the server's certificate is not valid yet"),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_missing_client_certificate_is_named() {
    tests::bounded(TEST_LIMIT, async {
        let server = ServerSide {
            mutual: true,
            ..ServerSide::tls(Leaf::new(&[SAN], 1))
        };
        probe(
            server,
            ProbeSide::tls("{}"),
            NotReady,
            Some(
                "unreachable: TLS handshake failed: the server requires a client certificate \
                 and none is configured",
            ),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_tls_probe_of_a_plaintext_port_is_named() {
    tests::bounded(TEST_LIMIT, async {
        let server = ServerSide {
            tls: false,
            ..ServerSide::tls(Leaf::new(&[SAN], 1))
        };
        probe(
            server,
            ProbeSide::tls("{}"),
            NotReady,
            Some("unreachable: TLS handshake failed: the endpoint does not speak TLS"),
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_plaintext_probe_of_a_tls_port_is_named() {
    tests::bounded(TEST_LIMIT, async {
        let probe_side = ProbeSide {
            service_tls: None,
            ..ProbeSide::tls("{}")
        };
        probe(
            ServerSide::tls(Leaf::new(&[SAN], 1)),
            probe_side,
            NotReady,
            Some("unreachable: the endpoint speaks TLS but this connection is plaintext"),
        )
        .await;
    })
    .await;
}
