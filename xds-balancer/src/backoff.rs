//! Jittered exponential backoff, for reconnecting to the control plane and
//! re-probing endpoints.
//!
//! The delay grows by `multiplier` from `initial` up to `max`, and each delay
//! is spread by ±`jitter` so that many clients that lost the same server do
//! not come back in lock step. The randomness is passed in, so the schedule
//! is testable.

use std::time::Duration;

/// How retries of a failed connection are spaced.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Growth factor from one delay to the next (at least 1).
    pub multiplier: f64,
    /// Relative spread of each delay, from 0 (none) to 1.
    pub jitter: f64,
}

impl Default for Backoff {
    /// gRPC's connection backoff, with a lower ceiling: Kubernetes replaces a
    /// lost pod or control plane within seconds, not minutes.
    fn default() -> Self {
        Self {
            // gRPC's "initial backoff".
            initial: Duration::from_secs(1),
            // gRPC waits up to 120 s; a pod comes back much sooner.
            max: Duration::from_secs(30),
            multiplier: 1.6,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// A short schedule for tests and demos on one machine.
    #[must_use]
    pub fn fast() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

/// Where a retry loop is in its schedule.
#[derive(Debug, Clone)]
pub(crate) struct BackoffState {
    config: Backoff,
    /// The undisturbed delay the next call to `next_delay` starts from.
    current: Duration,
}

impl BackoffState {
    pub(crate) fn new(config: Backoff) -> Self {
        Self {
            config,
            current: config.initial,
        }
    }

    /// Starts over from the initial delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.current = self.config.initial;
    }

    /// The next delay. `unit` is a random number in `[0, 1)`.
    pub(crate) fn next_delay_with(&mut self, unit: f64) -> Duration {
        let base = self.current.min(self.config.max);
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        // Spread uniformly over [base * (1 - jitter), base * (1 + jitter)).
        let factor = 1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0);
        let delay = base.mul_f64(factor).min(self.config.max);
        let grown = self.current.mul_f64(self.config.multiplier.max(1.0));
        self.current = grown.min(self.config.max);
        delay
    }

    /// The next delay, with fresh randomness.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.next_delay_with(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn grows_to_the_ceiling_and_resets() {
        let mut state = BackoffState::new(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2.0,
            jitter: 0.0,
        });
        let delays: Vec<_> = (0..6).map(|_| ms(state.next_delay_with(0.5))).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        state.reset();
        assert_eq!(ms(state.next_delay_with(0.5)), 100);
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let config = Backoff {
            initial: Duration::from_millis(1000),
            max: Duration::from_secs(30),
            multiplier: 1.6,
            jitter: 0.2,
        };
        let low = BackoffState::new(config).next_delay_with(0.0);
        let high = BackoffState::new(config).next_delay_with(0.999_999);
        assert_eq!(ms(low), 800);
        assert!((1199..=1200).contains(&ms(high)), "{high:?}");
        // Never above the ceiling, even with jitter.
        let mut capped = BackoffState::new(Backoff {
            max: Duration::from_millis(1000),
            ..config
        });
        for _ in 0..10 {
            assert!(capped.next_delay_with(0.999) <= Duration::from_millis(1000));
        }
    }
}
