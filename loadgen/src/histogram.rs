//! Latency histograms: HdrHistogram in microseconds, 3 significant digits,
//! up to 60 s, carried as base64 of the V2 deflate encoding (DESIGN.md's
//! `latency_hdr`) so that they merge exactly across shards and runs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize, Serializer};

/// Largest recordable value in µs (60 s); larger values are clamped to it and
/// counted by the caller.
pub const MAX_US: u64 = 60_000_000;

/// Why a `latency_hdr` text could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    /// Not base64.
    #[error("latency histogram: bad base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// Base64, but not an HdrHistogram V2 (or V2 deflate) encoding.
    #[error("latency histogram: bad HdrHistogram encoding: {0}")]
    Encoding(#[from] hdrhistogram::serialization::DeserializeError),
    /// A valid histogram whose values do not fit 1 µs .. [`MAX_US`].
    #[error("latency histogram: values out of range: {0}")]
    Range(#[from] hdrhistogram::errors::AdditionError),
}

/// A mergeable latency histogram in microseconds.
#[derive(Clone, PartialEq)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LatencyHistogram(n={}, p50={}ms, p99={}ms, max={}ms)",
            self.count(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.max_ms()
        )
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram (1 µs .. 60 s, 3 significant digits).
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid"),
        }
    }

    /// Records one value in µs; returns `true` if it was over [`MAX_US`] and
    /// was clamped to it.
    #[inline]
    pub fn record_us(&mut self, us: u64) -> bool {
        let clamped = us > MAX_US;
        self.hist.saturating_record(us.min(MAX_US));
        clamped
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.hist
            .add(&other.hist)
            .expect("histograms of the same bounds always merge");
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at percentile `p` (0..=100) in ms; 0 when empty.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_percentile(p) as f64 / 1000.0
    }

    /// The smallest sample in ms; 0 when empty.
    pub fn min_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.min() as f64 / 1000.0
    }

    /// The largest sample in ms; 0 when empty.
    pub fn max_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.max() as f64 / 1000.0
    }

    /// The mean in ms; 0 when empty.
    pub fn mean_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.mean() / 1000.0
    }

    /// Empties the histogram, keeping its allocation.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// The underlying HdrHistogram (values in µs).
    pub fn inner(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Base64 of the HdrHistogram V2 deflate encoding.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.hist, &mut bytes)
            .expect("encoding into a Vec cannot fail");
        STANDARD.encode(bytes)
    }

    /// Decodes [`LatencyHistogram::to_base64`] output (or any V2 / V2 deflate
    /// HdrHistogram in base64). The empty string is an empty histogram.
    pub fn from_base64(text: &str) -> Result<Self, HistogramError> {
        let mut out = Self::new();
        if text.is_empty() {
            return Ok(out);
        }
        let bytes = STANDARD.decode(text.trim())?;
        let decoded: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
        out.hist.add(&decoded)?;
        Ok(out)
    }
}

impl Serialize for LatencyHistogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_base64_and_merges_exactly() {
        let mut a = LatencyHistogram::new();
        for us in 1..=1000 {
            a.record_us(us * 1000);
        }
        assert!(a.record_us(MAX_US + 5));
        let mut b = LatencyHistogram::from_base64(&a.to_base64()).unwrap();
        assert_eq!(a, b);
        b.merge(&a);
        assert_eq!(b.count(), 2 * a.count());
        assert!((a.percentile_ms(50.0) - 501.0).abs() <= 0.5, "{a:?}");
        assert!((a.max_ms() - 60_000.0).abs() <= 60.0);
        let json = serde_json::to_string(&a).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(LatencyHistogram::from_base64("").unwrap().count(), 0);
    }
}
