//! A channel's options: [`Config`] and the [`RetryPolicy`].

use std::time::Duration;

use tonic::Code;

use crate::backoff::Backoff;

/// Options of a channel. `Config::default()` suits a service in
/// Kubernetes; the builder methods of [`crate::Builder`] set single fields.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Config {
    /// Limit for opening a connection (TCP connect plus the server's HTTP/2
    /// SETTINGS), to endpoints and to the control plane.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval on idle and busy connections, to notice dead
    /// peers; `None` turns keepalive off. Servers that enforce gRPC's
    /// keepalive policy (grpc-go by default allows one ping per 5 minutes
    /// without calls in flight) answer frequent idle pings with GOAWAY
    /// ENHANCE_YOUR_CALM: against those, use a longer interval or `None`.
    pub keepalive_interval: Option<Duration>,
    /// How long a keepalive PING may go unanswered before the connection is
    /// dropped (and the endpoint ejected).
    pub keepalive_timeout: Duration,
    /// When no endpoint can take a call: `true` waits for one within the
    /// call's deadline; `false` fails at once unless a connection attempt
    /// or the first discovery answer is under way (gRPC's fail-fast).
    /// Calls to a service that does not exist always fail at once.
    pub wait_for_ready: bool,
    /// How long a call without a deadline (`grpc-timeout`) waits for an
    /// endpoint.
    pub default_wait: Duration,
    /// Retries for methods marked idempotent; `None`: only calls that never
    /// reached a server are retried (always, transparently).
    pub retry: Option<RetryPolicy>,
    /// Client-side health checking: the `grpc.health.v1` service name to
    /// watch on every endpoint (`""` for the server as a whole); `None`
    /// turns it off.
    pub health_check: Option<String>,
    /// Reconnection schedule for the control plane.
    pub control_plane_backoff: Backoff,
    /// Re-probe schedule for an ejected endpoint.
    pub endpoint_backoff: Backoff,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // Connecting inside a cluster takes milliseconds; 5 s covers a
            // busy node without holding calls for long.
            connect_timeout: Duration::from_secs(5),
            // Notices a silently dead pod (node lost, no RST) within ~30 s.
            keepalive_interval: Some(Duration::from_secs(20)),
            keepalive_timeout: Duration::from_secs(10),
            wait_for_ready: true,
            // Long enough to ride out a rollout or a pod restart.
            default_wait: Duration::from_secs(10),
            retry: None,
            health_check: None,
            control_plane_backoff: Backoff::default(),
            endpoint_backoff: Backoff::default(),
        }
    }
}

/// Retries for methods the application marks idempotent.
///
/// A listed method's request body is buffered (up to `max_buffer_bytes`;
/// a larger one is sent without retries) so it can be sent again. A call is
/// retried, on another endpoint when there is one, when the connection
/// failed before response headers arrived, or when the response carries a
/// status in `retryable_codes` without a body (trailers-only), up to
/// `max_attempts` attempts in all, within the call's deadline.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Method paths (`/greet.Greeter/SayHello`), or whole services
    /// (`/greet.Greeter/`).
    pub methods: Vec<String>,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Statuses worth another attempt.
    pub retryable_codes: Vec<Code>,
    /// Largest request body kept for retries.
    pub max_buffer_bytes: usize,
}

impl RetryPolicy {
    /// Retries for `methods`, with defaults for the rest: 3 attempts,
    /// UNAVAILABLE only, 64 KiB of body.
    pub fn for_methods<I, S>(methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            methods: methods.into_iter().map(Into::into).collect(),
            max_attempts: 3,
            retryable_codes: vec![Code::Unavailable],
            max_buffer_bytes: 64 * 1024,
        }
    }

    /// Sets the number of attempts.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Whether calls to `path` may be retried.
    pub fn applies_to(&self, path: &str) -> bool {
        self.methods.iter().any(|method| {
            if method.ends_with('/') {
                path.starts_with(method.as_str())
            } else {
                path == method
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy_matches_methods_and_services() {
        let policy = RetryPolicy::for_methods(["/greet.Greeter/SayHello", "/other.Svc/"]);
        assert!(policy.applies_to("/greet.Greeter/SayHello"));
        assert!(!policy.applies_to("/greet.Greeter/SayGoodbye"));
        assert!(policy.applies_to("/other.Svc/Anything"));
        assert!(!policy.applies_to("/other.SvcX/Anything"));
    }
}
