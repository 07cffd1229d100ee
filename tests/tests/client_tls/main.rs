//! Our client over TLS to its endpoints, with the settings coming from the
//! control plane's Cluster (gRPC A29) and the certificates from certificate
//! providers: greeter-servers that require client certificates, the real
//! control plane serving them as a TLS service, and handshake failures
//! that name their cause. This file starts the greeters and control planes
//! and builds the channels every test uses.
//!
//! - `endpoints.rs`: mTLS to the greeters, and each refused handshake
//!   (SAN mismatch, unknown CA, no identity, no provider, expired or
//!   plaintext endpoints) naming its cause.
//! - `admission.rs`: mTLS to the control plane, which admits only allowed
//!   client identities.
//! - `rotation.rs`: every certificate rotated under load, no call failed.

mod admission;
mod endpoints;
mod rotation;

use std::net::SocketAddr;
use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::json;
use tests::Process;
use tests::certs::{Ca, Leaf, TlsDir, Validity};
use tests::control_plane::static_source;
use tests::static_file::StaticFile;
use xds_balancer::{Builder, CertificateProvider, Channel};

const LIMIT: Duration = Duration::from_secs(90);
const BACKENDS: [&str; 3] = ["tls-a", "tls-b", "tls-c"];
/// The servers' SAN, as a cert-manager Certificate for the Service has it.
const SERVER_SAN: &str = "greeter.default.svc.cluster.local";

/// Three greeter-servers requiring client certificates from `ca`, with
/// certificates for `SERVER_SAN`; their addresses.
async fn mtls_greeters(dir: &TlsDir, ca: &Ca) -> Vec<(Process, SocketAddr)> {
    greeters_with(dir, ca, Validity::Valid).await
}

/// [`mtls_greeters`] whose certificates have `validity`.
async fn greeters_with(dir: &TlsDir, ca: &Ca, validity: Validity) -> Vec<(Process, SocketAddr)> {
    dir.write("ca.crt", &ca.pem());
    dir.write_identity(
        "server",
        &ca.issue(&Leaf::new(&[SERVER_SAN], 10).validity(validity)),
    );
    tests::greeters::mutual_tls(&BACKENDS, dir).await
}

/// A control plane (static source, no probing: the endpoints are ready and
/// only the client decides) serving `greeter` on `endpoints` as a TLS
/// service with these SAN matchers; `extra` flags on top. Its address has
/// `scheme`.
async fn serve_greeter(
    endpoints: &[SocketAddr],
    sans: &[&str],
    scheme: &str,
    extra: &[&str],
) -> (Process, StaticFile, String) {
    let endpoints: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    let file = StaticFile::new(
        "client-tls",
        &json!({"services": [{
            "name": "greeter",
            "endpoints": endpoints,
            "tls": {"subject_alt_names": sans},
        }]}),
    );
    let path = file.path().display().to_string();
    let mut args = vec!["--static-file", &path, "--no-probe"];
    args.extend_from_slice(extra);
    let (process, addr) = static_source(&args).await;
    let uri = format!("{scheme}://{addr}");
    (process, file, uri)
}

/// [`serve_greeter`] in plaintext for `greeters`.
async fn control_plane(
    greeters: &[(Process, SocketAddr)],
    sans: &[&str],
) -> (Process, StaticFile, String) {
    let endpoints: Vec<SocketAddr> = greeters.iter().map(|(_, a)| *a).collect();
    serve_greeter(&endpoints, sans, "http", &[]).await
}

/// A channel whose provider instance `default` has `files` of `dir`.
async fn channel(uri: &str, dir: &TlsDir, identity: Option<&str>) -> Channel {
    let mut provider = CertificateProvider::roots(dir.path("ca.crt"));
    if let Some(stem) = identity {
        provider = provider.with_identity(
            dir.path(&format!("{stem}.crt")),
            dir.path(&format!("{stem}.key")),
        );
    }
    Builder::new("greeter")
        .control_plane(uri)
        .certificate_provider("default", provider)
        .default_wait(Duration::from_secs(3))
        .connect()
        .await
        .expect("channel")
}

async fn hello(client: &mut GreeterClient<Channel>) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest::default());
    request.set_timeout(Duration::from_secs(3));
    client
        .say_hello(request)
        .await
        .map(|reply| reply.into_inner().served_by)
}

/// A control plane on TLS requiring client certificates from `ca`, of which
/// only SANs under `spiffe://cluster.local/ns/default/` may subscribe.
async fn mtls_control_plane(
    dir: &TlsDir,
    ca: &Ca,
    greeters: &[(Process, SocketAddr)],
) -> (Process, StaticFile, String) {
    dir.write_identity("cp", &ca.issue(&Leaf::new(&["127.0.0.1"], 30)));
    let endpoints: Vec<SocketAddr> = greeters.iter().map(|(_, a)| *a).collect();
    let (cert, key, client_ca) = (dir.arg("cp.crt"), dir.arg("cp.key"), dir.arg("ca.crt"));
    serve_greeter(
        &endpoints,
        &[SERVER_SAN],
        "https",
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca,
            "--allow-client-san",
            "spiffe://cluster.local/ns/default/*",
        ],
    )
    .await
}

fn control_plane_tls(dir: &TlsDir, identity: Option<&str>) -> xds_balancer::ControlPlaneTls {
    let tls = xds_balancer::ControlPlaneTls::new(dir.path("ca.crt"));
    match identity {
        Some(stem) => tls.with_identity(
            dir.path(&format!("{stem}.crt")),
            dir.path(&format!("{stem}.key")),
        ),
        None => tls,
    }
}
