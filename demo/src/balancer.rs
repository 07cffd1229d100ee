//! A per-connection TCP balancer: what kube-proxy does for a ClusterIP
//! Service, and why that does not balance gRPC.
//!
//! Each accepted TCP connection is forwarded to the next backend in
//! round-robin order and its bytes are copied both ways until either side
//! closes. It balances connections, not calls: a gRPC client opens one
//! HTTP/2 connection and multiplexes every call over it, so every call lands
//! on the one backend that connection was given.
//!
//! The backend list can be replaced while it runs ([`TcpBalancer::set_backends`],
//! as kube-proxy follows a Service's endpoints); connections already
//! forwarded stay where they are. With no backend, a new connection is
//! closed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Errors starting the balancer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be opened.
    #[error("failed to open the TCP balancer's port: {0}")]
    Bind(#[source] std::io::Error),
}

/// A backend the balancer forwards to.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Its name (shown in the demo's output).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// One forwarded connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The client's side of the connection.
    pub client: SocketAddr,
    /// The backend it was given.
    pub backend: String,
}

/// A running balancer. Stops (closing every forwarded connection) on drop.
#[derive(Debug)]
pub struct TcpBalancer {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<Backend>>>,
    forwarded: Arc<Mutex<Vec<Forwarded>>>,
    /// How many connections were forwarded so far.
    count: watch::Receiver<usize>,
    stop: CancellationToken,
}

impl TcpBalancer {
    /// Listens on a free loopback port and forwards to `backends`.
    pub async fn start(backends: Vec<Backend>) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let backends = Arc::new(Mutex::new(backends));
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0);
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            backends.clone(),
            (forwarded.clone(), count_tx),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            backends,
            forwarded,
            count,
            stop,
        })
    }

    /// The address clients dial (the "ClusterIP").
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the backends new connections go to.
    pub fn set_backends(&self, backends: Vec<Backend>) {
        *self.backends.lock().unwrap_or_else(|p| p.into_inner()) = backends;
    }

    /// Waits (at most `timeout`) until `n` connections were forwarded;
    /// returns whether they were.
    pub async fn wait_forwarded(&self, n: usize, timeout: Duration) -> bool {
        let mut count = self.count.clone();
        tokio::time::timeout(timeout, count.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// Every connection forwarded so far.
    pub fn forwarded(&self) -> Vec<Forwarded> {
        self.forwarded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for TcpBalancer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    backends: Arc<Mutex<Vec<Backend>>>,
    (forwarded, count): (Arc<Mutex<Vec<Forwarded>>>, watch::Sender<usize>),
    stop: CancellationToken,
) {
    let next = AtomicUsize::new(0);
    loop {
        let (inbound, client) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "balancer: accept failed");
                    continue;
                }
            },
        };
        let backend = {
            let backends = backends.lock().unwrap_or_else(|p| p.into_inner());
            if backends.is_empty() {
                // Nothing to forward to: the client's connection closes.
                continue;
            }
            backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()].clone()
        };
        let n = {
            let mut forwarded = forwarded.lock().unwrap_or_else(|p| p.into_inner());
            forwarded.push(Forwarded {
                client,
                backend: backend.name.clone(),
            });
            forwarded.len()
        };
        count.send_replace(n);
        tokio::spawn(splice(inbound, backend, stop.clone()));
    }
}

/// Copies bytes both ways between the client and the backend until either
/// side closes or the balancer stops.
async fn splice(mut inbound: TcpStream, backend: Backend, stop: CancellationToken) {
    let mut outbound = match TcpStream::connect(backend.addr).await {
        Ok(stream) => stream,
        Err(error) => {
            // kube-proxy would leave the client with a reset connection too.
            tracing::warn!(backend = backend.name, %error, "balancer: backend unreachable");
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        () = stop.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A TCP server that answers every connection with its name, then closes.
    async fn named_server(name: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(name.as_bytes()).await;
            }
        });
        addr
    }

    async fn read_name(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut name = String::new();
        stream.read_to_string(&mut name).await.expect("read");
        name
    }

    #[tokio::test]
    async fn forwards_connections_round_robin() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let backends = vec![
                Backend {
                    name: "a".into(),
                    addr: named_server("a").await,
                },
                Backend {
                    name: "b".into(),
                    addr: named_server("b").await,
                },
            ];
            let balancer = TcpBalancer::start(backends).await.expect("start");
            let mut seen = Vec::new();
            for _ in 0..4 {
                seen.push(read_name(balancer.addr()).await);
            }
            assert_eq!(seen, ["a", "b", "a", "b"]);
            let forwarded: Vec<_> = balancer
                .forwarded()
                .into_iter()
                .map(|f| f.backend)
                .collect();
            assert_eq!(forwarded, ["a", "b", "a", "b"]);
            assert!(balancer.wait_forwarded(4, Duration::from_secs(1)).await);
            assert!(!balancer.wait_forwarded(5, Duration::from_millis(50)).await);
        })
        .await
        .expect("bounded");
    }

    #[tokio::test]
    async fn new_connections_follow_a_replaced_backend_list() {
        tokio::time::timeout(Duration::from_secs(10), async {
            let a = Backend {
                name: "a".into(),
                addr: named_server("a").await,
            };
            let b = Backend {
                name: "b".into(),
                addr: named_server("b").await,
            };
            let balancer = TcpBalancer::start(vec![a]).await.expect("start");
            assert_eq!(read_name(balancer.addr()).await, "a");
            balancer.set_backends(vec![b]);
            assert_eq!(read_name(balancer.addr()).await, "b");
            balancer.set_backends(Vec::new());
            assert_eq!(read_name(balancer.addr()).await, "", "closed at once");
            assert_eq!(
                balancer.forwarded().len(),
                2,
                "the closed one was not forwarded"
            );
        })
        .await
        .expect("bounded");
    }
}
