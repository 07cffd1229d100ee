//! Parts of the demo that other tools reuse. The demo itself is the `demo`
//! binary (`src/main.rs`).
//!
//! # Layout
//!
//! - [`balancer`]: a per-connection TCP balancer, what kube-proxy does for a
//!   ClusterIP Service (the demo's first phase; the benchmarks' "ClusterIP"
//!   rollout).

pub mod balancer;
