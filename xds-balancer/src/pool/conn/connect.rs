//! Setting a connection up: TCP, TLS when the Cluster asks for it, the
//! HTTP/2 handshake and the server's SETTINGS within the connect timeout;
//! then the task that drives the connection and its keep-alive PINGs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use tls_reload::client::{Note, establish};

use super::socket::{READ_CLOSED, SETTINGS_SEEN};
use super::{ConnHandle, ConnSettings, ConnSignals, ConnectError, Driver, DriverError, SniffIo};
use crate::frames::FrameReader;
use crate::model::label;
use crate::pool::tls::EndpointTls;

/// Connects to `addr` and waits for the server's SETTINGS.
pub(crate) async fn connect(
    addr: SocketAddr,
    hostname: Arc<str>,
    settings: &ConnSettings,
    tls: Option<&EndpointTls>,
) -> Result<(Arc<ConnHandle>, Driver), ConnectError> {
    let endpoint = || label(&hostname, addr);
    let deadline = tokio::time::Instant::now() + settings.connect_timeout;
    let timed_out = || ConnectError::Timeout {
        endpoint: endpoint(),
        after: settings.connect_timeout,
    };
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ConnectError::Tcp {
            endpoint: endpoint(),
            source,
        })?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, %addr, "could not set TCP_NODELAY");
    }
    let note = Note::default();
    let stream = tokio::time::timeout_at(deadline, establish(stream, tls, note.clone()))
        .await
        .map_err(|_| timed_out())?
        .map_err(|failure| ConnectError::Tls {
            endpoint: endpoint(),
            failure,
        })?;
    let tls_failure = || {
        note.get().map(|failure| ConnectError::Tls {
            endpoint: endpoint(),
            failure,
        })
    };
    let signals = Arc::new(ConnSignals::default());
    let io = SniffIo {
        stream,
        reader: FrameReader::default(),
        signals: signals.clone(),
    };
    let (sender, connection) = tokio::time::timeout_at(
        deadline,
        h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .handshake::<_, Bytes>(io),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|source| {
        tls_failure().unwrap_or_else(|| ConnectError::Handshake {
            endpoint: endpoint(),
            source,
        })
    })?;
    let keepalive = settings
        .keepalive_interval
        .map(|interval| (interval, settings.keepalive_timeout));
    let mut driver = tokio::spawn(drive(connection, keepalive));
    // The connection's task reads the socket; the SETTINGS frame shows up in
    // the signals.
    let settled = tokio::time::timeout_at(
        deadline,
        signals.wait_for(|f| f & (SETTINGS_SEEN | READ_CLOSED) != 0),
    )
    .await;
    if settled.is_err() || signals.flags.load(Ordering::Acquire) & SETTINGS_SEEN == 0 {
        driver.abort();
        let ended = (&mut driver).await;
        if settled.is_err() {
            return Err(timed_out());
        }
        return Err(tls_failure().unwrap_or_else(|| match ended {
            Ok(Err(DriverError::H2(source))) => ConnectError::Handshake {
                endpoint: endpoint(),
                source,
            },
            _ => ConnectError::ClosedEarly {
                endpoint: endpoint(),
            },
        }));
    }
    let handle = Arc::new(ConnHandle {
        addr,
        hostname,
        sender,
        signals,
        in_flight: AtomicUsize::new(0),
        open: AtomicUsize::new(0),
        slot_freed: Notify::new(),
    });
    Ok((handle, driver))
}

/// HTTP/2 flow-control windows and send buffer: hyper's client defaults,
/// which every tonic channel has.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;

/// Runs the connection: h2's connection future, and a PING every
/// `keepalive.0` that must be answered within `keepalive.1`.
async fn drive(
    mut connection: h2::client::Connection<SniffIo, Bytes>,
    keepalive: Option<(Duration, Duration)>,
) -> Result<(), DriverError> {
    let pings = keepalive.and_then(|k| Some((k, connection.ping_pong()?)));
    let Some(((interval, timeout), mut ping_pong)) = pings else {
        return Ok(connection.await?);
    };
    let pinging = async move {
        loop {
            tokio::time::sleep(interval).await;
            if ping_pong.send_ping(h2::Ping::opaque()).is_err() {
                // Closing: the connection's own end says why.
                return std::future::pending().await;
            }
            let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
            match tokio::time::timeout(timeout, pong).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return std::future::pending().await,
                Err(_) => return DriverError::KeepaliveTimeout(timeout),
            }
        }
    };
    tokio::select! {
        biased;
        ended = &mut connection => Ok(ended?),
        error = pinging => Err(error),
    }
}
