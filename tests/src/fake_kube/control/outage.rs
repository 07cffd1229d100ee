//! Outages of the fake API server: closing every connection and then
//! refusing or resetting new ones, and coming back on the same port with
//! the same objects.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use super::{AcceptState, FakeKube, bind};
use crate::fake_kube::server::accept_loop;

/// How the server behaves while it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The port is closed: connections are refused.
    Refuse,
    /// The port stays open, but every connection is reset at once.
    Reset,
}

impl FakeKube {
    /// Takes the server down: open connections are closed and new ones are
    /// refused or reset, per `outage`, until [`FakeKube::come_up`].
    pub async fn go_down(&self, outage: Outage) {
        let mut state = self.accept.lock().await;
        let listener = stop_loop(&mut state).await;
        self.shared.cut_connections();
        state.down = Some(outage);
        if let (Outage::Reset, Some(listener)) = (outage, listener) {
            state.stop = self.shutdown.child_token();
            let stop = state.stop.clone();
            state.task = Some(tokio::spawn(accept_loop(
                listener,
                self.shared.clone(),
                stop,
                true,
            )));
        }
    }

    /// Brings the server back on the same port, with the same objects.
    ///
    /// # Panics
    ///
    /// When the port cannot be bound again within 5 s.
    pub async fn come_up(&self) {
        let mut state = self.accept.lock().await;
        let listener = match stop_loop(&mut state).await {
            Some(listener) => listener,
            None => rebind(self.addr).await,
        };
        state.down = None;
        state.stop = self.shutdown.child_token();
        let stop = state.stop.clone();
        state.task = Some(tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            stop,
            false,
        )));
    }

    /// Whether the server is down, and how.
    pub async fn outage(&self) -> Option<Outage> {
        self.accept.lock().await.down
    }
}

/// Stops the current accept loop and returns its listener, if any.
async fn stop_loop(state: &mut AcceptState) -> Option<TcpListener> {
    state.stop.cancel();
    let task = state.task.take()?;
    task.await.ok()
}

async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match bind(addr) {
            Ok(listener) => return listener,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%addr, %error, "fake API server: port still busy, retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("fake API server: cannot bind {addr} again: {error}"),
        }
    }
}
