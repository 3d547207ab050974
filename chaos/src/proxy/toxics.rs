//! Toxics: what the fault proxy does to the bytes, after Toxiproxy.
//!
//! A [`ToxicSpec`] has Toxiproxy's JSON shape, so the control API speaks the
//! same language and scenario files write the same keys:
//! `{"name": "lag", "type": "latency", "stream": "downstream", "toxicity": 1.0,
//!   "attributes": {"latency": 100, "jitter": 10}}`.
//! Units are Toxiproxy's: milliseconds for `latency`, `jitter` and
//! `timeout`, KB/s for `rate`, bytes for sizes, microseconds for the
//! slicer's `delay`.
//!
//! On the command line a toxic is `TYPE[:KEY=VALUE[,KEY=VALUE]...]` where
//! `name`, `stream` and `toxicity` are keys too:
//! `latency:latency=100,jitter=10,stream=downstream`.

use crate::error::SpecError;
use serde::{Deserialize, Serialize};

/// Which way the bytes flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client (Toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    /// The name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's type and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "attributes",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Toxic {
    /// Delays every chunk by `latency` ± `jitter` ms (order is kept).
    Latency {
        /// Milliseconds added to every chunk.
        #[serde(default)]
        latency: u64,
        /// Up to this many ms more or less, uniformly at random.
        #[serde(default)]
        jitter: u64,
    },
    /// Caps the throughput at `rate` KB/s.
    Bandwidth {
        /// Kilobytes (1000 bytes) per second.
        rate: u64,
    },
    /// Cuts chunks into slices of `average_size` ± `size_variation` bytes with
    /// `delay` µs between slices.
    Slicer {
        /// Mean slice size in bytes.
        average_size: u64,
        /// Slices vary by up to this many bytes.
        #[serde(default)]
        size_variation: u64,
        /// Microseconds between two slices.
        #[serde(default)]
        delay: u64,
    },
    /// A black hole: data is dropped; after `timeout` ms the connection is
    /// closed (0: never closed, data dropped while the toxic stays).
    Timeout {
        /// Milliseconds before closing; 0 for never.
        #[serde(default)]
        timeout: u64,
    },
    /// Resets the connection (TCP RST both ways) `timeout` ms after the toxic
    /// applies to it.
    ResetPeer {
        /// Milliseconds before the reset.
        #[serde(default)]
        timeout: u64,
    },
    /// Closes the connection once `bytes` bytes have gone through this way.
    LimitData {
        /// Bytes allowed through.
        bytes: u64,
    },
}

impl Toxic {
    /// The type name as written in specs.
    pub fn type_name(&self) -> &'static str {
        match self {
            Toxic::Latency { .. } => "latency",
            Toxic::Bandwidth { .. } => "bandwidth",
            Toxic::Slicer { .. } => "slicer",
            Toxic::Timeout { .. } => "timeout",
            Toxic::ResetPeer { .. } => "reset_peer",
            Toxic::LimitData { .. } => "limit_data",
        }
    }
}

/// A named toxic on one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawToxic", into = "RawToxic")]
pub struct ToxicSpec {
    /// Unique within a proxy; defaults to `TYPE_STREAM` as in Toxiproxy.
    pub name: String,
    /// The direction it acts on.
    pub stream: Stream,
    /// The share of connections it applies to, 0.0..=1.0.
    pub toxicity: f64,
    /// What it does.
    pub toxic: Toxic,
}

/// The serialized form of a [`ToxicSpec`] (Toxiproxy's JSON shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToxic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    stream: Stream,
    #[serde(default = "full_toxicity")]
    toxicity: f64,
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

fn full_toxicity() -> f64 {
    1.0
}

impl TryFrom<RawToxic> for ToxicSpec {
    type Error = SpecError;

    fn try_from(raw: RawToxic) -> Result<Self, SpecError> {
        let tagged = serde_json::json!({"type": raw.kind, "attributes": raw.attributes});
        let toxic: Toxic = serde_json::from_value(tagged)
            .map_err(|e| SpecError::new("attributes", format!("toxic {:?}: {e}", raw.kind)))?;
        let spec = ToxicSpec {
            name: raw
                .name
                .unwrap_or_else(|| format!("{}_{}", toxic.type_name(), raw.stream.as_str())),
            stream: raw.stream,
            toxicity: raw.toxicity,
            toxic,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl From<ToxicSpec> for RawToxic {
    fn from(spec: ToxicSpec) -> Self {
        let tagged = serde_json::to_value(spec.toxic).expect("toxics always serialize");
        let attributes = tagged
            .get("attributes")
            .and_then(|a| a.as_object())
            .cloned()
            .unwrap_or_default();
        RawToxic {
            name: Some(spec.name),
            kind: spec.toxic.type_name().to_string(),
            stream: spec.stream,
            toxicity: spec.toxicity,
            attributes,
        }
    }
}

impl ToxicSpec {
    /// A toxic applied to every connection, named `TYPE_STREAM`.
    pub fn new(toxic: Toxic, stream: Stream) -> Self {
        Self {
            name: format!("{}_{}", toxic.type_name(), stream.as_str()),
            stream,
            toxicity: 1.0,
            toxic,
        }
    }

    /// Checks the bounds serde cannot.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(0.0..=1.0).contains(&self.toxicity) {
            return Err(SpecError::new(
                "toxicity",
                format!("toxic {}: toxicity must be within 0.0..=1.0", self.name),
            ));
        }
        if self.name.is_empty() || self.name.contains(['/', ' ']) {
            return Err(SpecError::new(
                "name",
                format!(
                    "toxic name {:?}: must be non-empty, without '/' or spaces",
                    self.name
                ),
            ));
        }
        match self.toxic {
            Toxic::Bandwidth { rate: 0 } => Err(SpecError::new(
                "rate",
                format!("toxic {}: rate must be more than 0", self.name),
            )),
            Toxic::Slicer {
                average_size: 0, ..
            } => Err(SpecError::new(
                "average_size",
                format!("toxic {}: average_size must be more than 0", self.name),
            )),
            Toxic::Latency { latency, jitter } if latency > 3_600_000 || jitter > 3_600_000 => {
                Err(SpecError::new(
                    if latency > 3_600_000 {
                        "latency"
                    } else {
                        "jitter"
                    },
                    format!(
                        "toxic {}: latency and jitter must be at most an hour",
                        self.name
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Parses the command-line form `TYPE[:KEY=VALUE[,KEY=VALUE]...]`, or a
    /// JSON object.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let text = text.trim();
        if text.starts_with('{') {
            return serde_json::from_str(text)
                .map_err(|e| SpecError::new("toxic", format!("toxic {text:?}: {e}")));
        }
        let (kind, args) = text.split_once(':').unwrap_or((text, ""));
        let mut raw = RawToxic {
            name: None,
            kind: kind.to_string(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            attributes: Default::default(),
        };
        for pair in args.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                SpecError::new(
                    "toxic",
                    format!("toxic {text:?}: {pair:?} is not KEY=VALUE"),
                )
            })?;
            match key {
                "name" => raw.name = Some(value.to_string()),
                "stream" => {
                    raw.stream = serde_json::from_value(value.into()).map_err(|_| {
                        SpecError::new(
                            "stream",
                            format!("toxic {text:?}: stream is upstream or downstream"),
                        )
                    })?
                }
                "toxicity" => {
                    raw.toxicity = value.parse().map_err(|_| {
                        SpecError::new(
                            "toxicity",
                            format!("toxic {text:?}: toxicity {value:?} is not a number"),
                        )
                    })?
                }
                _ => {
                    let number: u64 = value.parse().map_err(|_| {
                        SpecError::new(
                            key,
                            format!("toxic {text:?}: {key} = {value:?} is not a whole number"),
                        )
                    })?;
                    raw.attributes.insert(key.to_string(), number.into());
                }
            }
        }
        ToxicSpec::try_from(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_command_line_form() {
        let spec = ToxicSpec::parse("latency:latency=100,jitter=10,stream=upstream").unwrap();
        assert_eq!(
            spec.toxic,
            Toxic::Latency {
                latency: 100,
                jitter: 10
            }
        );
        assert_eq!(
            (spec.stream, spec.name.as_str()),
            (Stream::Upstream, "latency_upstream")
        );
        assert!(ToxicSpec::parse("latency:lantecy=100").is_err());
        assert!(ToxicSpec::parse("bandwidth:rate=0").is_err());
        assert_eq!(
            ToxicSpec::parse("bandwidth:rate=0").unwrap_err().field,
            "rate"
        );
        assert!(ToxicSpec::parse("warp:speed=9").is_err());
    }

    #[test]
    fn round_trips_toxiproxy_json() {
        let json = r#"{"name":"cut","type":"reset_peer","stream":"upstream","toxicity":0.5,"attributes":{"timeout":20}}"#;
        let spec: ToxicSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.toxic, Toxic::ResetPeer { timeout: 20 });
        let back: serde_json::Value = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}
