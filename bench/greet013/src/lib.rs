//! The `greet.Greeter` client, generated for tonic 0.13 and prost 0.13.
//!
//! The rest of the workspace is on tonic 0.14. `ginepro` 0.9.3 (the newest)
//! is built on tonic 0.13, and its channel only takes requests from a tonic
//! 0.13 client, so the benchmarks drive it with these stubs. The wire
//! format is the same; only the Rust types differ.
//!
//! # Layout
//!
//! - [`greet`]: the generated messages and `xds_balancer::GreeterClient`.
//!
//! The generated code names its crates `::prost` and `tonic`; the two
//! `extern crate` aliases below put the 0.13 versions under those names for
//! this crate only (an alias at the crate root joins the extern prelude).

extern crate prost013 as prost;
extern crate tonic013 as tonic;

/// The `greet.Greeter` example service: messages and client.
pub mod greet {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("greet");
}
