//! Percentiles over recorded samples. Samples are kept in full and sorted; with at most a few
//! hundred thousand of them that is exact and cheap.

use std::time::Duration;

/// Nearest-rank percentile of an ascending slice: the smallest sample such that at least
/// `q` of all samples are less than or equal to it. `None` for an empty slice.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let q = q.clamp(0.0, 1.0);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency summary in microseconds; signed so that deliveries observed before the writer's
/// acknowledgement (possible for watches) are kept rather than clamped away.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub p50: i64,
    pub p99: i64,
    pub min: i64,
    pub max: i64,
}

impl Summary {
    pub fn of(mut samples: Vec<i64>) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        Summary {
            p50: percentile(&samples, 0.50).unwrap_or_default(),
            p99: percentile(&samples, 0.99).unwrap_or_default(),
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    pub fn of_durations(samples: &[Duration]) -> Summary {
        Summary::of(samples.iter().map(|d| micros(*d)).collect())
    }
}

pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Signed difference `later - earlier` in microseconds.
pub fn signed_micros(later: std::time::Instant, earlier: std::time::Instant) -> i64 {
    if later >= earlier {
        micros(later - earlier)
    } else {
        -micros(earlier - later)
    }
}

/// Median of durations (upper median for an even count, as nearest-rank gives).
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    percentile(&sorted, 0.5)
}

/// Milliseconds with a precision that suits the magnitude.
pub fn ms(us: i64) -> String {
    let v = us as f64 / 1000.0;
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile::<i64>(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.99), Some(7));
        let v = [1, 2, 3, 4];
        assert_eq!(percentile(&v, 0.5), Some(2));
    }

    #[test]
    fn summary_keeps_negative_samples() {
        let s = Summary::of(vec![5, -3, 10, 0]);
        assert_eq!(s.min, -3);
        assert_eq!(s.max, 10);
        assert_eq!(s.p50, 0);
    }

    #[test]
    fn signed_difference() {
        let a = std::time::Instant::now();
        let b = a + Duration::from_micros(250);
        assert_eq!(signed_micros(b, a), 250);
        assert_eq!(signed_micros(a, b), -250);
    }

    #[test]
    fn formatting() {
        assert_eq!(ms(1234), "1.23");
        assert_eq!(ms(12_345), "12.3");
        assert_eq!(ms(123_456), "123");
        assert_eq!(ms(-500), "-0.50");
    }
}
