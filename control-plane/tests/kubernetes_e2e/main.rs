//! Issue 5's acceptance, end to end: a real `control-plane serve --source
//! kubernetes` process, configured as a user would (`KUBECONFIG` pointing
//! at the fake Kubernetes API server's kubeconfig), watched by raw ADS
//! clients, `control-plane status` and the greeter-client library.
//!
//! # Layout
//!
//! - `harness.rs`: starting the control plane against a fake API server,
//!   ADS subscribers that record every assignment they get, the status API.
//! - `endpoints.rs`: pod readiness, 150 endpoints over two slices, a
//!   deleted Service, other namespaces.
//! - `resilience.rs`: a forced 410 Gone re-list and a 10 s API server outage.
//! - `startup.rs`: an unreachable API server at start, a missing
//!   kubeconfig, no namespace.
//! - `greeters.rs`: real greeter-servers registered as pods, called through
//!   the control plane by the greeter-client library.

mod endpoints;
mod greeters;
mod harness;
mod resilience;
mod startup;
