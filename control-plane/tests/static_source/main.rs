//! The static source running against a real store: the watched file
//! (`file.rs`), its routes (`routes.rs`) and grpc.health.v1 probing of
//! real servers (`probe.rs`, and over TLS, `tls_probe.rs`): greeter-server
//! processes and in-process tonic servers on 127.0.0.1.
//!
//! The probe tests need the `greeter-server` binary: `cargo test --workspace`
//! builds it, or `cargo build -p greeter-server` before `cargo test -p
//! control-plane`.

mod file;
mod probe;
mod routes;
mod support;
mod tls_probe;
