//! A fake Kubernetes API server that speaks the real protocol over HTTP/1.1,
//! for driving the real `kube::Client` and `kube::runtime::watcher` in tests.
//!
//! It serves Services, EndpointSlices and (once "installed") GRPCRoutes: LIST with label/field selectors,
//! `limit` + `continue` pagination and a list resourceVersion; WATCH as a
//! chunked stream of newline-delimited JSON events resuming from a
//! resourceVersion, with BOOKMARKs when asked and an ERROR 410 Expired event
//! for a resourceVersion older than the (compactable) history. Tests change
//! objects through [`FakeKube`], and can also compact the history, expire
//! or cut open watches, take the server down and bring it back on the same
//! port, and count the requests it got.
//!
//! ```no_run
//! # async fn demo() {
//! use tests::fake_kube::{EndpointSliceFixture, EndpointState, FakeKube, ServiceFixture};
//!
//! let kube = FakeKube::start().await;
//! kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
//! kube.apply(
//!     EndpointSliceFixture::for_service("greeter")
//!         .name("greeter-a")
//!         .port("grpc", 8080)
//!         .endpoint("10.0.0.1", EndpointState::Ready),
//! );
//! // A separate process can use `KUBECONFIG=<kube.kubeconfig_path()>`.
//! let client = kube.client().await;
//! kube.set_endpoint_state("default", "greeter-a", "10.0.0.1", EndpointState::NotReady);
//! # let _ = client;
//! # }
//! ```
//!
//! # Layout
//!
//! - `control`: [`FakeKube`], the handle tests hold (its objects in
//!   `control/objects.rs`, outages in `control/outage.rs`);
//! - `server`: accept loop, routing, GET and request accounting;
//! - `list` / `watch`: the LIST and WATCH handlers;
//! - `store`: objects, resourceVersions, history and compaction;
//! - `selector`: label and field selectors;
//! - [`fixtures`]: fluent builders for Services and EndpointSlices;
//! - `resource`: the served resource types and their URLs.

mod control;
pub mod fixtures;
mod list;
mod resource;
mod selector;
mod server;
mod store;
mod watch;

pub use control::{FakeKube, Outage};
pub use fixtures::{
    DEFAULT_NAMESPACE, EndpointFixture, EndpointSliceFixture, EndpointState, SERVICE_NAME_LABEL,
    ServiceFixture, TargetPort,
};
pub use resource::{IntoStored, Resource, Stored};

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// LIST of a collection.
    List,
    /// WATCH of a collection (`watch=true`).
    Watch,
    /// GET of one object.
    Get,
    /// Anything else (unknown path, another method).
    Other,
}

/// One request the fake API server received.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// What it asked for.
    pub verb: Verb,
    /// The resource type, when the path named one.
    pub resource: Option<Resource>,
    /// The namespace, for namespaced paths.
    pub namespace: Option<String>,
    /// The URL path.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
}

impl RequestRecord {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}
