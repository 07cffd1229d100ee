//! What a probe's answers and failures mean for the endpoint, and the
//! delays between reconnections.

use std::error::Error as StdError;
use std::time::Duration;

use tonic::Status;
use tonic_health::pb::health_check_response::ServingStatus;

use super::{Health, MIN_BACKOFF};

/// The endpoint's health for a `ServingStatus` value.
pub(crate) fn health_of(status: i32) -> Health {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => Health::Ready,
        Ok(other) => Health::NotReady(format!("health probe: {}", other.as_str_name())),
        Err(_) => Health::NotReady(format!("health probe: unknown status {status}")),
    }
}

/// Why a watch stream failed: the connection broke (the status carries the
/// transport's error), or the server ended the call with a status.
pub(crate) fn watch_ended(status: &Status) -> String {
    match status.source() {
        Some(cause) => format!("unreachable: connection lost ({})", root_cause(cause)),
        None => format!("health probe: watch ended: {}", describe(status)),
    }
}

/// `Code: message`, without tonic's metadata dump.
pub(crate) fn describe(status: &Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    }
}

/// What went wrong at the bottom of a transport error: the I/O error's kind
/// ("connection refused") when there is one, else the innermost message.
pub(crate) fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut current = Some(error);
    let mut text = error.to_string();
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io.kind().to_string();
        }
        text = error.to_string();
        current = error.source();
    }
    text
}

/// Reconnection delays: doubling from [`MIN_BACKOFF`] up to a cap, each
/// shortened by up to a fifth at random so probers do not move in step.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays up to `max`.
    pub(crate) fn new(max: Duration) -> Self {
        let min = MIN_BACKOFF.min(max);
        Self {
            min,
            max,
            next: min,
        }
    }

    /// Back to the shortest delay.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        base.mul_f64(rand::random_range(0.8..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_statuses() {
        assert_eq!(health_of(1), Health::Ready);
        assert_eq!(
            health_of(2),
            Health::NotReady("health probe: NOT_SERVING".into())
        );
        assert_eq!(
            health_of(3),
            Health::NotReady("health probe: SERVICE_UNKNOWN".into())
        );
        assert_eq!(
            health_of(0),
            Health::NotReady("health probe: UNKNOWN".into())
        );
        assert_eq!(
            health_of(42),
            Health::NotReady("health probe: unknown status 42".into())
        );
        assert_eq!(
            describe(&tonic::Status::unavailable("server is shutting down")),
            "Unavailable: server is shutting down"
        );
        assert_eq!(describe(&tonic::Status::cancelled("")), "Cancelled");
    }

    #[test]
    fn broken_watches_are_told_from_ended_ones() {
        let broken = tonic::Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(
            watch_ended(&broken),
            "unreachable: connection lost (connection reset)"
        );
        assert_eq!(
            watch_ended(&tonic::Status::unavailable("server is shutting down")),
            "health probe: watch ended: Unavailable: server is shutting down"
        );
    }

    #[test]
    fn root_cause_names_the_io_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(root_cause(&error), "connection refused");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let bases = [100, 200, 400, 800, 1000, 1000];
        for base in bases {
            let base = Duration::from_millis(base);
            let delay = backoff.next_delay();
            assert!(
                delay <= base && delay >= base.mul_f64(0.8),
                "{delay:?} vs {base:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));

        // A probe interval shorter than the minimum caps everything.
        let mut fast = Backoff::new(Duration::from_millis(20));
        assert!(fast.next_delay() <= Duration::from_millis(20));
        assert!(fast.next_delay() <= Duration::from_millis(20));
    }
}
