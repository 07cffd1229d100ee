//! The demo's phases one at a time, with the assertions the demo's summary
//! cannot make: real greeter-server and control-plane processes on
//! loopback, the greeter-client library in the test.
//!
//! - `rotation.rs`: strict round robin, and a NOT_SERVING backend leaving
//!   and rejoining it.
//! - `drain.rs`: a draining backend finishes every call it has in flight.
//! - `kill.rs`: SIGKILL fails only the calls in flight on the dead backend
//!   (none under a retry policy), and nothing afterwards.
//! - `restart.rs`: a control plane restart never takes an endpoint away
//!   from a client.

mod drain;
mod kill;
mod restart;
mod rotation;
mod support;
