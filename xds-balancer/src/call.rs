//! One call through the channel: pick, send, retry what may be retried.
//!
//! 1. The request gets the target as `:authority`; its deadline comes from
//!    `grpc-timeout` (otherwise waiting for an endpoint is bounded by
//!    [`Config::default_wait`](crate::Config::default_wait)).
//! 2. Route it: the first matching route names its cluster (one pool of
//!    connections per cluster, [`crate::router`]); the cluster is chosen
//!    once per call, retries stay in it. Pick the next ready connection of
//!    that pool; with none, wait for the picker to change, or fail with
//!    UNAVAILABLE saying why ([`crate::why`]).
//! 3. Send. When h2 hands the request back (it never left this client: the
//!    connection is closing and opens no more streams), send it on another
//!    connection: always safe, no policy needed.
//! 4. Under a [`RetryPolicy`](crate::RetryPolicy) the request body was
//!    kept, so a call that failed on the connection, or got a retryable
//!    status before any body, is sent again to another endpoint.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use tokio::time::Instant;
use tonic::{Code, Status};

use tokio_util::sync::DropGuard;

use crate::body::{self, Buffered, ResponseBody};
use crate::options::{Config, RetryPolicy};
use crate::pool::Core;
use crate::pool::conn::{ConnHandle, RequestBody, SendError, set_origin, unsent_status};
use crate::router::Router;
use crate::xds::client::Subscription;

/// Calls handed back unsent are retried at most this often (each time on
/// another connection); more means every connection is closing under us.
const MAX_UNSENT_RETRIES: u32 = 16;

/// State shared by every clone of a channel: what a call needs, and what
/// keeps the channel's pool and subscription alive.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) router: Arc<Router>,
    pub(crate) config: Config,
    pub(crate) authority: Authority,
    pub(crate) target: Arc<str>,
    /// Stops the pool when the last clone goes.
    pub(crate) _stop: DropGuard,
    /// Keeps the target subscribed on the shared xDS client; dropping it
    /// unsubscribes (and stops the client when it was the last).
    pub(crate) _subscription: Subscription,
}

/// The call's timeout from its `grpc-timeout` header (`<digits><unit>`).
pub(crate) fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// A request kept for retries.
struct Replayable<'a> {
    parts: http::request::Parts,
    body: Bytes,
    policy: &'a RetryPolicy,
}

impl Replayable<'_> {
    fn request(&self) -> http::Request<RequestBody> {
        http::Request::from_parts(self.parts.clone(), body::replay(&self.body))
    }
}

/// Runs one call.
pub(crate) async fn call(
    shared: Arc<Shared>,
    mut request: http::Request<RequestBody>,
) -> Result<http::Response<ResponseBody>, Status> {
    let started = Instant::now();
    set_origin(&mut request, Scheme::HTTP, &shared.authority);
    let deadline = grpc_timeout(request.headers()).map(|timeout| started + timeout);
    let wait_deadline = deadline.unwrap_or(started + shared.config.default_wait);
    let policy = shared
        .config
        .retry
        .as_ref()
        .filter(|policy| policy.applies_to(request.uri().path()));

    let mut core = shared
        .router
        .route(request.uri().path(), request.headers())?;

    let mut kept = None;
    if let Some(policy) = policy {
        let (parts, body) = request.into_parts();
        request = match body::buffer(body, policy.max_buffer_bytes).await? {
            Buffered::Whole(body) => {
                let whole = Replayable {
                    parts,
                    body,
                    policy,
                };
                let first = whole.request();
                kept = Some(whole);
                first
            }
            Buffered::Partial(body) => http::Request::from_parts(parts, body),
        };
    }

    let mut attempts = 0;
    let mut unsent = 0;
    let mut previous: Option<Arc<ConnHandle>> = None;
    loop {
        let conn = wait_for_conn(
            &shared,
            &mut core,
            (request.uri(), request.headers()),
            started,
            wait_deadline,
            previous.as_ref(),
        )
        .await?;
        let in_flight = conn.enter();
        attempts += 1;
        let send = conn.send(request);
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, send).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "deadline exceeded after {:?} waiting for {} to answer",
                        started.elapsed(),
                        conn.label()
                    )));
                }
            },
            None => send.await,
        };
        let retry_left = kept
            .as_ref()
            .is_some_and(|k| attempts < k.policy.max_attempts)
            && deadline.is_none_or(|d| Instant::now() < d);
        match result {
            Ok(response) => {
                if retry_left
                    && let Some(kept) = &kept
                    && let Some(code) = early_status(&response)
                    && kept.policy.retryable_codes.contains(&code)
                {
                    tracing::debug!(endpoint = %conn.label(), ?code, attempts, "retrying");
                    request = kept.request();
                    previous = Some(conn);
                    continue;
                }
                return Ok(response.map(|body| ResponseBody::new(body, in_flight)));
            }
            Err(SendError::Unsent {
                request: unsent_request,
                error,
            }) => {
                // It never left this client: send it elsewhere.
                attempts -= 1;
                unsent += 1;
                tracing::debug!(endpoint = %conn.label(), unsent, "call handed back unsent; sending it elsewhere");
                if unsent > MAX_UNSENT_RETRIES {
                    return Err(unsent_status(error.as_ref(), &conn.label()));
                }
                request = *unsent_request;
                previous = Some(conn);
            }
            Err(error) => {
                let status = error.status(&conn.label());
                if retry_left
                    && let Some(kept) = &kept
                    && kept.policy.retryable_codes.contains(&status.code())
                {
                    tracing::debug!(endpoint = %conn.label(), %status, attempts, "retrying");
                    request = kept.request();
                    previous = Some(conn);
                    continue;
                }
                return Err(status);
            }
        }
    }
}

/// The status of a response that carries it up front: trailers-only, or
/// an HTTP error mapped the way gRPC maps it.
fn early_status<B>(response: &http::Response<B>) -> Option<Code> {
    match response.status().as_u16() {
        200 => response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map(Code::from_i32),
        429 | 502 | 503 | 504 => Some(Code::Unavailable),
        _ => None,
    }
}

/// The next connection of `core`'s pool to use, waiting for one within
/// `wait_deadline`. When the routes stop leading to that pool meanwhile,
/// the call (`uri`, `headers`) is routed again.
async fn wait_for_conn(
    shared: &Shared,
    core: &mut Arc<Core>,
    (uri, headers): (&http::Uri, &http::HeaderMap),
    started: Instant,
    wait_deadline: Instant,
    avoid: Option<&Arc<ConnHandle>>,
) -> Result<Arc<ConnHandle>, Status> {
    let pick = |core: &Core| match avoid {
        Some(avoid) => core.picker.pick_other(avoid),
        None => core.picker.pick(),
    };
    if let Some(conn) = pick(core) {
        return Ok(conn);
    }
    let mut changed = core.changed.subscribe();
    loop {
        if core.retired() {
            *core = shared.router.route(uri.path(), headers)?;
            changed = core.changed.subscribe();
        }
        if let Some(conn) = pick(core) {
            return Ok(conn);
        }
        let snapshot = core.picker.snapshot();
        if let Some(status) = snapshot.why.fail_fast() {
            return Err(status);
        }
        if !shared.config.wait_for_ready && !snapshot.why.pending() {
            return Err(snapshot.why.status(started.elapsed()));
        }
        if Instant::now() >= wait_deadline {
            return Err(snapshot.why.status(started.elapsed()));
        }
        tokio::select! {
            result = changed.changed() => {
                if result.is_err() {
                    return Err(Status::unavailable("the channel is shutting down"));
                }
            }
            () = tokio::time::sleep_until(wait_deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grpc_timeouts() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_timeout(&headers), None);
        for (value, expected) in [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("3S", Duration::from_secs(3)),
            ("250m", Duration::from_millis(250)),
            ("7u", Duration::from_micros(7)),
            ("99999999n", Duration::from_nanos(99_999_999)),
        ] {
            headers.insert("grpc-timeout", value.parse().expect("header"));
            assert_eq!(grpc_timeout(&headers), Some(expected), "{value}");
        }
        for bad in ["S", "10", "10x", "123456789S", "-1S"] {
            headers.insert("grpc-timeout", bad.parse().expect("header"));
            assert_eq!(grpc_timeout(&headers), None, "{bad}");
        }
    }

    #[test]
    fn sets_scheme_and_authority() {
        let mut request = http::Request::new(());
        *request.uri_mut() = "/greet.Greeter/SayHello".parse().expect("uri");
        set_origin(
            &mut request,
            Scheme::HTTP,
            &Authority::from_static("greeter:80"),
        );
        assert_eq!(
            request.uri().to_string(),
            "http://greeter:80/greet.Greeter/SayHello"
        );
    }

    #[test]
    fn sees_statuses_that_come_without_a_body() {
        let mut response = http::Response::new(());
        assert_eq!(early_status(&response), None);
        response
            .headers_mut()
            .insert("grpc-status", "14".parse().expect("header"));
        assert_eq!(early_status(&response), Some(Code::Unavailable));
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(early_status(&response), Some(Code::Unavailable));
    }
}
