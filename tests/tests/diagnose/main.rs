//! `greeter-client diagnose` against real processes on loopback: the control
//! plane with a static file, greeter-servers, and small stand-ins for
//! foreign software written here (an HTTP/1.1-only server, a Kestrel-like
//! server refusing cleartext HTTP/2). One test per cause it names, and one
//! for a healthy service.
//!
//! - `support`: the shared set-up: control planes, stand-in servers,
//!   running `diagnose`.
//! - `control_plane`: the address is not a control plane.
//! - `service`: unknown service, other namespace, wrong port.
//! - `endpoints`: no ready endpoints, HTTP/1.1 only, HTTP_1_1_REQUIRED, TLS
//!   only, NOT_SERVING.
//! - `method`: UNIMPLEMENTED method, a healthy service, the table and the
//!   set-up errors.

mod control_plane;
mod endpoints;
mod method;
mod service;
mod support;
