#![deny(missing_docs)]
//! Client-side round-robin load balancing for tonic, fed by an xDS control
//! plane.
//!
//! A [`Channel`] subscribes to the control plane over ADS (the standard
//! Envoy xDS v3 protocol gRPC's proxyless clients speak), keeps one HTTP/2
//! connection to every ready endpoint of the target service, and sends each
//! call to the next one in strict round-robin order. It is a
//! `tower::Service`, so any tonic-generated client uses it as is.
//!
//! Every channel of a process built for the same control plane and node id
//! shares one xDS client (one ADS stream, one cache), as gRPC's own
//! XdsClient is shared; dropping a channel unsubscribes its target. The
//! control plane comes from [`Builder::control_plane`], else a gRPC xDS
//! bootstrap ([`Builder::bootstrap`], [`Builder::bootstrap_file`],
//! `GRPC_XDS_BOOTSTRAP`, `GRPC_XDS_BOOTSTRAP_CONFIG`), else the
//! `CONTROL_PLANE` environment variable.
//!
//! What it guarantees:
//!
//! - **Strict round robin** over endpoints the control plane reports
//!   HEALTHY and that are connected: N sequential calls over k endpoints
//!   give each exactly N/k. Least request (gRPC A48: the fewest calls in
//!   flight of `choice_count` random draws) where the Cluster asks for it.
//! - **Traffic policy as gRPC's xDS clients read it**: the route table
//!   (A28) sends each call to the first route whose path, header and
//!   fraction matchers hold, then to one of its clusters by weight; every
//!   cluster has its own connections, shared by the routes naming it. A call
//!   no route matches fails with UNAVAILABLE naming its path. Endpoint
//!   priorities (zone failover): calls go to the lowest priority with a
//!   ready connection, and move at once when it has none. The client's zone
//!   ([`Builder::zone`], or the bootstrap's) goes to the control plane. What
//!   the client cannot honour is refused (NACK) with the reason.
//! - **One connection per endpoint**, kept across updates that keep the
//!   endpoint. DRAINING or removed endpoints take no new calls; their
//!   in-flight calls finish, then the connection closes.
//! - **Ejection without waiting for the control plane**: a failed connect,
//!   a reset, or a GOAWAY takes the endpoint out at once; it is re-probed
//!   with backoff. A call that certainly never reached a server (it never
//!   left the client, the connection died before writing it, or the server
//!   refused its stream) is sent to another endpoint; one that may have
//!   reached a server is retried only under a [`RetryPolicy`].
//! - **Static stability**: when the control plane goes away, balancing goes
//!   on over the last endpoints; the client reconnects with jittered
//!   backoff and resubscribes.
//! - **Errors that say why**: with nothing to call, a call waits within its
//!   deadline, then fails with UNAVAILABLE naming the cause (the service
//!   does not exist, no ready endpoints with counts, the control plane
//!   unreachable since when, the last update, the last connect error). A
//!   service that does not exist fails at once, with the control plane's
//!   word on why (a container port instead of the Service port, a
//!   multi-port Service without a port, another namespace); an address
//!   that is not a control plane fails [`Builder::connect`] at once, naming
//!   what answers there.
//!
//! Plaintext HTTP/2 (h2c) by default. TLS to endpoints follows the
//! Cluster's `transport_socket` (gRPC A29) with certificates from
//! certificate provider instances ([`Builder::certificate_provider`], or
//! the bootstrap's `certificate_providers`); TLS to the control plane takes
//! `https://` and [`Builder::control_plane_tls`] (or the bootstrap's
//! `channel_creds` `tls`, gRPC A65). Nothing falls back to plaintext: a TLS
//! Cluster this channel cannot honour is refused (NACK) with the reason, and
//! a failed handshake names its cause.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use xds_balancer::{Builder, RetryPolicy};
//! use proto::greet::HelloRequest;
//! use proto::greet::greeter_client::GreeterClient;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let channel = Builder::new("xds:///greeter")
//!         .control_plane("http://control-plane:18000")
//!         // SayHello has no side effects: it may be sent twice.
//!         .retry_policy(RetryPolicy::for_methods(["/greet.Greeter/SayHello"]))
//!         .health_check("greet.Greeter")
//!         .connect()
//!         .await?;
//!
//!     // Log the endpoint set whenever it changes.
//!     let mut endpoints = channel.endpoints();
//!     tokio::spawn(async move {
//!         while endpoints.changed().await.is_ok() {
//!             let set = endpoints.borrow_and_update().clone();
//!             let ready: Vec<_> = set.ready().map(|e| e.hostname.clone()).collect();
//!             println!("{}: ready {ready:?}", set.target);
//!         }
//!     });
//!
//!     let mut client = GreeterClient::new(channel);
//!     let mut request = tonic::Request::new(HelloRequest {
//!         name: "world".into(),
//!         delay_ms: 0,
//!     });
//!     request.set_timeout(Duration::from_secs(2));
//!     let reply = client.say_hello(request).await?.into_inner();
//!     println!("{} (from {})", reply.message, reply.served_by);
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//!
//! - `builder`: [`Builder`] (`builder::prepare` checks its settings and
//!   resolves them against the bootstrap and the environment); `options`:
//!   [`Config`], [`RetryPolicy`]; `bootstrap`: gRPC's `GRPC_XDS_BOOTSTRAP`
//!   ([`Bootstrap`]; `bootstrap::document` is the JSON as written,
//!   `bootstrap::tls` its TLS settings); `target`: parsing
//!   `xds:///svc[:port]` ([`Target`]).
//! - `channel`: the [`Channel`] (the tower service); `call`: one call's
//!   life (pick, wait, send, retry); `body`: response bodies that hold their
//!   connection open, request bodies kept for retries.
//! - `xds`: the ADS client: `decode` (Envoy types → own model, gRPC's
//!   validation; `routes` for route tables), `state` (the pure protocol
//!   state machine), `task` (the stream, reconnects; `task::connect` opens
//!   a stream, `task::publish` hands each subscription its resolution).
//! - `routing`: the route table (gRPC A28) as the client's own type, and
//!   matching a call to a cluster; `router`: a channel's pools, one per
//!   cluster its routes name, and the per-call route lookup.
//! - `pool`: one cluster's endpoints: one subchannel task per endpoint
//!   (`subchannel`: connect, re-probe, health checks, graceful close), its
//!   connection (`conn`, on h2's HTTP/2 client: `conn::connect` sets it up,
//!   `conn::socket` watches the server's frames for GOAWAY through `frames`;
//!   `stream` for each call's stream), and the manager reconciling discovery
//!   updates (`reconcile`: priorities, the first batch;
//!   `reconcile::endpoints`: applying an endpoint list, touching only what
//!   differs; `reconcile::publish`: what the picker and the view get).
//! - `picker`: the lock-free pick (round robin, least request); `unavailable`:
//!   messages for calls with nothing to call.
//! - `sniff`: naming what answers at an address that is not the gRPC
//!   server expected ([`sniff`], [`PrefaceAnswer`]): an HTTP/1.1 server,
//!   Kestrel's HTTP_1_1_REQUIRED, a TLS port.
//! - `model` and `view`: the client's own types: endpoints ([`Endpoint`]),
//!   and what [`Channel::endpoints`] publishes ([`EndpointSet`]). `backoff`:
//!   jittered exponential backoff ([`Backoff`]).
//!
//! Every public item is exported at the crate root. The `greeter-client`
//! CLI (its own package) is a load generator and smoke test built on this
//! library.

mod backoff;
mod body;
mod bootstrap;
mod builder;
mod call;
mod channel;
mod error;
mod frames;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod model;
mod options;
mod pool;
mod router;
mod routing;
mod sniff;
mod target;
mod unavailable;
mod view;
mod xds;

pub use backoff::Backoff;
pub use body::ResponseBody;
pub use bootstrap::{
    BOOTSTRAP_CONFIG_ENV, BOOTSTRAP_FILE_ENV, Bootstrap, BootstrapError, CertificateProvider,
    ControlPlaneTls,
};
pub use builder::{Builder, CONTROL_PLANE_ENV};
pub use channel::{Channel, ResponseFuture};
pub use error::{Error, Result};
pub use model::{Endpoint, EndpointHealth};
pub use options::{Config, RetryPolicy};
pub use sniff::{PrefaceAnswer, sniff};
pub use target::{Target, TargetError};
pub use view::{ConnectionState, ControlPlaneStatus, EndpointSet, EndpointState, ServiceStatus};

/// The README's Rust examples, compiled (and their `no_run` kept) as
/// doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

/// The user agent this library announces to the control plane (the xDS
/// `Node.user_agent_name`), with its version in `user_agent_version`.
pub const USER_AGENT_NAME: &str = env!("CARGO_PKG_NAME");
/// This library's version, as sent in `Node.user_agent_version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
