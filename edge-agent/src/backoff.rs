//! Capped exponential backoff with jitter, without a random number generator: the jitter
//! comes from a small xorshift generator seeded by the clock and the process id, which is
//! all that spreading retries of many devices (or simulated agents) needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static SEED: AtomicU64 = AtomicU64::new(0);

/// A number in [0, 1), different on every call and in every process.
pub fn unit() -> f64 {
    let mut x = SEED.load(Ordering::Relaxed);
    if x == 0 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    }
    // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    SEED.store(x, Ordering::Relaxed);
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
}

/// A duration picked uniformly from [0, max).
pub fn spread(max: Duration) -> Duration {
    max.mul_f64(unit())
}

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, attempt: 0 }
    }

    /// The next delay: min·2ⁿ capped at max, then scaled by a random factor in [0.5, 1).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.min.saturating_mul(2u32.saturating_pow(self.attempt.min(20)));
        self.attempt = self.attempt.saturating_add(1);
        exp.min(self.max).mul_f64(0.5 + unit() / 2.0)
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_jittered() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] < Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400) && delays[3] < Duration::from_millis(800));
        for d in &delays[6..] {
            assert!(*d >= Duration::from_secs(1) && *d < Duration::from_secs(2), "{d:?}");
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(100));
        let samples: Vec<f64> = (0..100).map(|_| unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }
}
