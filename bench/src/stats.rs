//! Percentiles and summaries of samples.

use serde::{Deserialize, Serialize};

/// p50, p99 and max of a set of samples (milliseconds unless said
/// otherwise), with how many there were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// Number of samples.
    pub(crate) count: usize,
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile (nearest rank).
    pub(crate) p99: f64,
    /// Largest sample.
    pub(crate) max: f64,
    /// Arithmetic mean.
    pub(crate) mean: f64,
}

impl Summary {
    /// Summarises `samples` (sorted here; NaNs are dropped).
    pub(crate) fn of(mut samples: Vec<f64>) -> Self {
        samples.retain(|s| !s.is_nan());
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        Self {
            count: samples.len(),
            p50: percentile(&samples, 50.0),
            p99: percentile(&samples, 99.0),
            max: samples[samples.len() - 1],
            mean,
        }
    }
}

/// The nearest-rank `p`th percentile of `sorted` (ascending, not empty).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        let summary = Summary::of(samples);
        assert_eq!(summary.count, 200);
        assert_eq!(summary.p50, 100.0);
        assert_eq!(summary.p99, 198.0);
        assert_eq!(summary.max, 200.0);
        assert!((summary.mean - 100.5).abs() < 1e-9);
    }

    #[test]
    fn small_and_empty_sets() {
        assert_eq!(Summary::of(vec![]), Summary::default());
        let one = Summary::of(vec![3.0]);
        assert_eq!((one.p50, one.p99, one.max), (3.0, 3.0, 3.0));
        let unsorted = Summary::of(vec![5.0, f64::NAN, 1.0, 3.0]);
        assert_eq!(unsorted.count, 3);
        assert_eq!((unsorted.p50, unsorted.max), (3.0, 5.0));
    }
}
