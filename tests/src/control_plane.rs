//! Control-plane processes for end-to-end tests.

use std::net::SocketAddr;

use crate::Process;

/// Starts `control-plane serve` on a free loopback port with the static
/// source, `args` after (its `--static` or `--static-file`, and any other
/// flag), and waits until it listens.
///
/// # Panics
///
/// When it does not start listening.
pub async fn static_source(args: &[&str]) -> (Process, SocketAddr) {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--source", "static"];
    all.extend_from_slice(args);
    let mut process = Process::spawn("control-plane", "control-plane", &all);
    let addr = process.wait_listening().await;
    (process, addr)
}
