//! A log-bucket histogram of non-negative integers (latencies in nanoseconds), in the
//! manner of HdrHistogram: values below 128 are counted exactly, and every power-of-two
//! range above is split into 128 equal sub-buckets, so a percentile read back is within
//! 1/128 (< 0.8 %) of the true value. Fixed size (about 60 KiB), no allocation per record.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Buckets: the exact range `0..128`, then one row of 128 per exponent 7..=63.
const BUCKETS: usize = SUB_COUNT + (64 - SUB_BITS as usize) * SUB_COUNT;

/// Counts of values in logarithmic buckets.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0u64; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// The bucket a value falls in.
    fn index(value: u64) -> usize {
        if value < SUB_COUNT as u64 {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros(); // >= SUB_BITS
        let shift = exponent - SUB_BITS;
        let mantissa = (value >> shift) as usize - SUB_COUNT; // 0..128
        SUB_COUNT + shift as usize * SUB_COUNT + mantissa
    }

    /// The smallest value of a bucket and its width.
    fn bucket_range(index: usize) -> (u64, u64) {
        if index < SUB_COUNT {
            return (index as u64, 1);
        }
        let shift = ((index - SUB_COUNT) / SUB_COUNT) as u32;
        let mantissa = ((index - SUB_COUNT) % SUB_COUNT) as u64;
        let low = (SUB_COUNT as u64 + mantissa) << shift;
        (low, 1u64 << shift)
    }

    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    pub fn record_n(&mut self, value: u64, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(slot) = self.counts.get_mut(Histogram::index(value)) {
            *slot += count;
        }
        self.total += count;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += u128::from(value) * u128::from(count);
    }

    /// Adds every value recorded in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += *theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest recorded value (exact), if any.
    pub fn min(&self) -> Option<u64> {
        (self.total > 0).then_some(self.min)
    }

    /// The largest recorded value (exact), if any.
    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// The mean (exact), if any value was recorded.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of the bucket holding the
    /// `ceil(q × count)`-th smallest value, clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return Some(self.max);
        }
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = Histogram::bucket_range(index);
                let middle = low + (width - 1) / 2;
                return Some(middle.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut histogram = Histogram::new();
        for value in 0..100u64 {
            histogram.record(value);
        }
        assert_eq!(histogram.count(), 100);
        assert_eq!(histogram.quantile(0.5), Some(49));
        assert_eq!(histogram.quantile(0.99), Some(98));
        assert_eq!(histogram.quantile(1.0), Some(99));
        assert_eq!(histogram.quantile(0.0), Some(0));
        assert_eq!(histogram.min(), Some(0));
        assert_eq!(histogram.max(), Some(99));
        assert_eq!(histogram.mean(), Some(49.5));
    }

    #[test]
    fn empty_has_no_quantiles() {
        let histogram = Histogram::new();
        assert_eq!(histogram.quantile(0.5), None);
        assert_eq!(histogram.min(), None);
        assert_eq!(histogram.max(), None);
        assert_eq!(histogram.mean(), None);
    }

    #[test]
    fn buckets_tile_the_whole_range() {
        // Every bucket starts where the previous one ended, up to u64::MAX.
        let mut next = 0u64;
        for index in 0..BUCKETS {
            let (low, width) = Histogram::bucket_range(index);
            assert_eq!(low, next, "bucket {index}");
            assert_eq!(Histogram::index(low), index);
            assert_eq!(Histogram::index(low + (width - 1)), index);
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        // 1 µs .. 10 ms in nanoseconds, uniformly; the true p-quantile is known.
        let mut histogram = Histogram::new();
        let n = 100_000u64;
        for i in 1..=n {
            histogram.record(i * 100);
        }
        for q in [0.5, 0.9, 0.99, 0.999] {
            let truth = (q * n as f64).ceil() * 100.0;
            let got = histogram.quantile(q).unwrap() as f64;
            let error = (got - truth).abs() / truth;
            assert!(error < 0.01, "q {q}: got {got}, truth {truth}");
        }
        assert_eq!(histogram.max(), Some(n * 100));
        assert_eq!(histogram.quantile(1.0), Some(n * 100));
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record_n(1_000, 99);
        b.record(5_000_000);
        b.record_n(7, 0);
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.min(), Some(1_000));
        assert_eq!(a.max(), Some(5_000_000));
        let p50 = a.quantile(0.5).unwrap();
        assert!((1_000..1_008).contains(&p50), "{p50}");
        assert_eq!(a.quantile(1.0), Some(5_000_000));
        assert_eq!(a.quantile(0.999), Some(5_000_000));
        a.merge(&Histogram::new());
        assert_eq!(a.count(), 100);
        assert_eq!(a.min(), Some(1_000));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut histogram = Histogram::new();
        histogram.record(u64::MAX);
        histogram.record(u64::MAX - 1);
        assert_eq!(histogram.quantile(1.0), Some(u64::MAX));
        assert_eq!(histogram.count(), 2);
    }
}
