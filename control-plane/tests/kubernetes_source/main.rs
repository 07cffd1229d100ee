//! The Kubernetes source against the fake API server, through the real
//! `kube::Client` built from the kubeconfig it writes. Assertions are on the
//! snapshots the store publishes: what every xDS subscriber would be sent.
//!
//! # Layout
//!
//! - `harness.rs`: the source on a fake API server, every snapshot it
//!   publishes recorded; a namespace of Services and slices to sync.
//! - `sync.rs`: listing, at start and after a forced 410 Gone, publishes
//!   only complete sets.
//! - `changes.rs`: watch events (pod readiness, a deleted Service) reach
//!   the published endpoints.
//! - `failures.rs`: an API server outage and malformed objects.

mod changes;
mod failures;
mod harness;
mod sync;
