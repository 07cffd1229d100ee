//! Bad input on the ADS port of a real control-plane process: garbage
//! bytes, malformed gRPC frames and protobuf, 10 000 resource names, very
//! long names, a client that NACKs everything in a loop, thousands of
//! connect/disconnect cycles. After each, the control plane is healthy
//! (grpc.health.v1 SERVING on a new connection) and a well-behaved
//! subscriber that was there all along still gets every update promptly.
//!
//! - `harness.rs`: the control plane and its well-behaved subscriber.
//! - `bytes.rs`: garbage on the socket, malformed frames and messages.
//! - `limits.rs`: many names, long names, huge messages.
//! - `churn.rs`: a NACK loop; connect/disconnect cycles.

mod bytes;
mod churn;
mod harness;
mod limits;
