//! Serving accepted connections: HTTP/2 per connection, with a maximum
//! connection age, and the drain on shutdown.
//!
//! # Design notes
//!
//! ADS streams live as long as their connection, so without an end to
//! connections a client stays on whichever replica it reached first: after
//! a rollout every client sits on the replica that came up first. With a
//! maximum age (`--max-connection-age`, gRPC's `MAX_CONNECTION_AGE`), each
//! connection, once it is that old (spread by ±[`AGE_JITTER`] so that
//! connections opened together do not all end together), is told to go:
//! HTTP/2 GOAWAY (no new calls on it), its ADS streams end at once with
//! UNAVAILABLE (they never finish on their own; clients reconnect, through
//! the Service, to any replica, and keep their endpoints meanwhile), and
//! other calls in flight get the age grace to finish before the connection
//! is closed.
//!
//! tonic's own server has a maximum age, but without jitter, and it never
//! ends a stream that does not finish by itself; so connections are served
//! here, with hyper, the way tonic would serve them (same HTTP/2 settings,
//! [`ConnInfo`] in every request's extensions).
//!
//! The request body of every call goes through [`ClientBody`], which turns
//! a client that went away into a status that says so (CANCELLED when the
//! client cancelled, UNAVAILABLE when its connection closed), so that the
//! ADS stream can tell a normal disconnect from a broken client.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::incoming::{Conn, ConnInfo};
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Status;
use tonic::service::Routes;
use tonic::transport::server::Connected;

use crate::xds::server::ConnectionAge;

/// Spread of each connection's maximum age: ±10 %.
pub const AGE_JITTER: f64 = 0.1;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// HTTP/2 PING interval on idle connections.
    pub(crate) keepalive_interval: Duration,
    /// How long a PING may go unanswered.
    pub(crate) keepalive_timeout: Duration,
    /// Connections older than this (±[`AGE_JITTER`]) are closed; `None`:
    /// never.
    pub(crate) max_age: Option<Duration>,
    /// After the maximum age, how long calls in flight get.
    pub(crate) max_age_grace: Duration,
}

/// Serves every connection of `incoming` until `stopped` is cancelled, in
/// tasks of `tracker`; then stops accepting (closing the listening
/// socket). Each connection, once `stopped` is cancelled, gets GOAWAY and
/// finishes its calls; `forced` cuts it at once.
pub(crate) async fn serve(
    mut incoming: BoxStream<'static, io::Result<Conn>>,
    routes: Routes,
    settings: Settings,
    stopped: CancellationToken,
    forced: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let conn = tokio::select! {
            () = stopped.cancelled() => break,
            conn = incoming.next() => match conn {
                Some(Ok(conn)) => conn,
                // The accept loop logged it and paused.
                Some(Err(_)) => continue,
                None => break,
            },
        };
        tracker.spawn(serve_one(
            conn,
            routes.clone(),
            settings,
            stopped.clone(),
            forced.clone(),
        ));
    }
}

/// Serves one connection until it closes, reaches its age, or the server
/// stops.
async fn serve_one(
    conn: Conn,
    routes: Routes,
    settings: Settings,
    stopped: CancellationToken,
    forced: CancellationToken,
) {
    let info: ConnInfo = conn.connect_info();
    // A child of `stopped`: the connection's ADS streams wait on this one
    // token for both ends (see `ConnectionAge`).
    let aged = stopped.child_token();
    let service = {
        let (info, aged) = (info.clone(), aged.clone());
        tower::ServiceBuilder::new()
            .map_request(move |request: http::Request<Incoming>| {
                let mut request = request.map(ClientBody);
                request.extensions_mut().insert(info.clone());
                request.extensions_mut().insert(ConnectionAge(aged.clone()));
                request
            })
            .service(routes)
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        // As tonic: no per-connection stream limit (the ADS stream limits
        // are enforced per client by admission).
        .max_concurrent_streams(None);
    let connection =
        builder.serve_connection(TokioIo::new(conn), TowerToHyperService::new(service));
    let mut connection = std::pin::pin!(connection);
    let age = settings.max_age.map(jittered);
    let old = async {
        match age {
            Some(age) => tokio::time::sleep(age).await,
            None => std::future::pending().await,
        }
    };
    let grace = tokio::select! {
        result = &mut connection => {
            log_end(&info, result);
            return;
        }
        () = forced.cancelled() => return,
        () = stopped.cancelled() => None,
        () = old => {
            tracing::debug!(
                conn = info.id,
                peer = ?info.remote_addr,
                age = ?age.unwrap_or_default(),
                "connection reached its maximum age: GOAWAY, ending its ADS streams"
            );
            aged.cancel();
            Some(settings.max_age_grace)
        }
    };
    connection.as_mut().graceful_shutdown();
    let grace_over = async {
        match grace {
            Some(grace) => tokio::time::sleep(grace).await,
            // Stopping: the server's own grace bounds it (`forced`).
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut connection => log_end(&info, result),
        () = forced.cancelled() => {}
        () = grace_over => {
            tracing::debug!(conn = info.id, "maximum age grace over: closing the connection");
        }
    }
}

fn log_end(info: &ConnInfo, result: Result<(), hyper::Error>) {
    match result {
        Ok(()) => tracing::debug!(conn = info.id, "connection closed"),
        Err(error) => {
            let error = common::error::chain(&error);
            tracing::debug!(conn = info.id, error, "connection ended with an error");
        }
    }
}

/// `age` spread uniformly by ±[`AGE_JITTER`].
pub(crate) fn jittered(age: Duration) -> Duration {
    age.mul_f64(rand::random_range(1.0 - AGE_JITTER..=1.0 + AGE_JITTER))
}

/// A request body whose errors say whether the client simply went away.
#[derive(Debug)]
pub(crate) struct ClientBody(Incoming);

impl Body for ClientBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.0)
            .poll_frame(cx)
            .map_err(|error| client_error(&error))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// The status a failed request body stands for: CANCELLED when the client
/// cancelled the call (RST_STREAM CANCEL or NO_ERROR), UNAVAILABLE when
/// its connection went away (closed, reset, GOAWAY), INTERNAL for an
/// HTTP/2 protocol error.
pub(crate) fn client_error(error: &hyper::Error) -> Status {
    let h2 = source_chain(error).find_map(|e| e.downcast_ref::<h2::Error>());
    let chain = common::error::chain(error);
    match h2 {
        Some(h2) if h2.is_reset() && is_benign(h2.reason()) => {
            Status::cancelled(format!("the client cancelled the call ({chain})"))
        }
        Some(h2) if h2.is_io() || (h2.is_go_away() && is_benign(h2.reason())) => {
            Status::unavailable(format!("the client's connection closed ({chain})"))
        }
        None if error.is_incomplete_message() || error.is_closed() || error.is_canceled() => {
            Status::unavailable(format!("the client's connection closed ({chain})"))
        }
        _ => Status::internal(format!("HTTP/2 error on the client's side: {chain}")),
    }
}

/// Whether an HTTP/2 error code is what a client sends when it just stops.
fn is_benign(reason: Option<h2::Reason>) -> bool {
    matches!(reason, Some(h2::Reason::CANCEL | h2::Reason::NO_ERROR))
}

fn source_chain<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_spread_by_ten_percent() {
        let age = Duration::from_secs(100);
        let ages: Vec<Duration> = (0..200).map(|_| jittered(age)).collect();
        assert!(ages.iter().all(|a| *a >= Duration::from_secs(90)));
        assert!(ages.iter().all(|a| *a <= Duration::from_secs(110)));
        let min = ages.iter().min().unwrap();
        let max = ages.iter().max().unwrap();
        assert!(*max - *min > Duration::from_secs(5), "{min:?}..{max:?}");
    }
}
