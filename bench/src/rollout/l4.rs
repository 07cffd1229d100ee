//! A per-connection L4 balancer: what a ClusterIP Service does.
//!
//! kube-proxy picks a backend for each new TCP connection and then only
//! copies bytes, so a gRPC client's one long-lived HTTP/2 connection sends
//! every call to the backend it happened to get. This plays that part on
//! loopback: it accepts on its own port, chooses the next backend of its
//! current list (round robin per connection), and splices the two sockets.
//! With no backend, or one that refuses, the client's connection is closed
//! (kube-proxy rejects too). The list is updated at once by the harness;
//! kube-proxy applies changes within its sync period (`minSyncPeriod`, 1 s
//! by default), so this is, if anything, kinder to the L4 approach.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

/// A running balancer; stops (and cuts its connections) when dropped.
#[derive(Debug)]
pub(crate) struct L4Balancer {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    accepted: Arc<AtomicUsize>,
    _stop: DropGuard,
}

impl L4Balancer {
    /// Starts balancing over `backends` on a loopback port.
    pub(crate) async fn start(backends: Vec<SocketAddr>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backends = Arc::new(Mutex::new(backends));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            backends.clone(),
            accepted.clone(),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            backends,
            accepted,
            _stop: stop.drop_guard(),
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the backend list (existing connections stay where they are).
    pub(crate) fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap_or_else(|p| p.into_inner()) = backends;
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    accepted: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        let n = accepted.fetch_add(1, Ordering::Relaxed);
        let backend = {
            let list = backends.lock().unwrap_or_else(|p| p.into_inner());
            (!list.is_empty()).then(|| list[n % list.len()])
        };
        let Some(backend) = backend else {
            continue;
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = splice(client, backend) => {}
            }
        });
    }
}

async fn splice(mut client: TcpStream, backend: SocketAddr) {
    let Ok(mut upstream) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A backend that answers every connection with its own name.
    async fn named_backend(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = conn.write_all(name.as_bytes()).await;
                });
            }
        });
        addr
    }

    async fn who(addr: SocketAddr) -> String {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let mut reply = String::new();
        let _ = conn.read_to_string(&mut reply).await;
        reply
    }

    #[tokio::test]
    async fn picks_a_backend_per_connection_round_robin() {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let a = named_backend("a").await;
            let b = named_backend("b").await;
            let balancer = L4Balancer::start(vec![a, b]).await.unwrap();
            let mut seen = Vec::new();
            for _ in 0..4 {
                seen.push(who(balancer.addr()).await);
            }
            assert_eq!(seen, ["a", "b", "a", "b"]);
            balancer.set_backends(vec![b]);
            assert_eq!(who(balancer.addr()).await, "b");
            balancer.set_backends(vec![]);
            assert_eq!(who(balancer.addr()).await, "", "no backend: closed at once");
            assert_eq!(balancer.accepted(), 6);
        })
        .await
        .expect("test finished in time");
    }
}
