//! Publisher keys: a secp256k1 key pair per publisher, made for the run or
//! read from a file of hex secret keys, one per line.
//!
//! A relay may limit or allow-list authors by public key, so a run against
//! such a relay reads its keys from a file (`# comments` and blank lines are
//! skipped); otherwise every run makes fresh ones, which no relay has seen.

use secp256k1::{Keypair, SECP256K1};
use std::fmt;
use std::path::{Path, PathBuf};

/// A key pair and its x-only public key (the event's `pubkey`), hex-encoded
/// once.
#[derive(Clone)]
pub struct Keys {
    pub(crate) keypair: Keypair,
    pubkey_hex: String,
}

impl fmt::Debug for Keys {
    /// The public key only: a secret key never goes to a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("pubkey", &self.pubkey_hex)
            .finish_non_exhaustive()
    }
}

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keys file could not be read.
    #[error("cannot read the keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line is not 64 hex digits, or not a valid secp256k1 secret key.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file holds no key.
    #[error("the keys file {path} holds no key (one hex secret key per line)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl Keys {
    /// Fresh random keys.
    pub fn generate() -> Self {
        loop {
            // A random 256-bit number is a valid secret key unless it is zero
            // or not below the curve order: about one in 2^128.
            if let Some(keys) = Self::from_secret(rand::random()) {
                return keys;
            }
        }
    }

    /// `count` fresh random keys.
    pub fn generate_many(count: usize) -> Vec<Self> {
        (0..count).map(|_| Self::generate()).collect()
    }

    /// The keys of a 32-byte secret key; `None` if it is zero or not below
    /// the curve order.
    pub fn from_secret(secret: [u8; 32]) -> Option<Self> {
        let keypair = Keypair::from_seckey_byte_array(SECP256K1, secret).ok()?;
        let pubkey_hex = hex::encode(keypair.x_only_public_key().0.serialize());
        Some(Self {
            keypair,
            pubkey_hex,
        })
    }

    /// The keys of a secret key in hex (64 digits, either case).
    pub fn from_secret_hex(text: &str) -> Result<Self, &'static str> {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text, &mut secret)
            .map_err(|_| "not a secret key: 64 hex digits expected")?;
        Self::from_secret(secret).ok_or("not a valid secp256k1 secret key")
    }

    /// The keys in `path`: one hex secret key per line; blank lines and lines
    /// starting with `#` are skipped.
    pub fn load(path: &Path) -> Result<Vec<Self>, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let keys = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
            .map(|(line, text)| {
                Self::from_secret_hex(text).map_err(|reason| KeyError::Line {
                    path: path.to_path_buf(),
                    line,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(keys)
    }

    /// The x-only public key in lowercase hex: an event's `pubkey`.
    pub fn pubkey_hex(&self) -> &str {
        &self.pubkey_hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn derives_the_bip340_public_key() {
        // BIP-340 test vector 0: secret key 3.
        let mut secret = [0u8; 32];
        secret[31] = 3;
        let keys = Keys::from_secret(secret).unwrap();
        assert_eq!(
            keys.pubkey_hex(),
            "f9308a019258c31049344f85f89d5229b531c845836f99b08601f113bce036f9"
        );
        assert!(Keys::from_secret([0; 32]).is_none());
        assert!(Keys::from_secret([0xff; 32]).is_none(), "above the order");
        assert!(!format!("{keys:?}").contains(&"0".repeat(31)), "no secret");
    }

    #[test]
    fn generates_distinct_keys() {
        let keys = Keys::generate_many(3);
        assert_ne!(keys[0].pubkey_hex(), keys[1].pubkey_hex());
        assert_ne!(keys[1].pubkey_hex(), keys[2].pubkey_hex());
        assert_eq!(keys[0].pubkey_hex().len(), 64);
    }

    #[test]
    fn loads_a_keys_file_and_names_the_bad_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let good = dir.join("good.keys");
        let mut f = std::fs::File::create(&good).unwrap();
        writeln!(f, "# publishers' keys\n").unwrap();
        writeln!(f, "{}", "0".repeat(63) + "3").unwrap();
        writeln!(
            f,
            "  5C0C523F52A5B6FAD39ED2403092DF8CEBC36318B39383BCA6C00808626FAB3A  "
        )
        .unwrap();
        let keys = Keys::load(&good).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].pubkey_hex().starts_with("f9308a01"));
        assert_eq!(
            keys[1].pubkey_hex(),
            "87d3561f19b74adbe8bf840682992466068830a9d8c36b4a0c99d36f826cb6cb"
        );

        let bad = dir.join("bad.keys");
        std::fs::write(&bad, format!("{}\nnot-hex\n", "0".repeat(63) + "3")).unwrap();
        let err = Keys::load(&bad).unwrap_err();
        assert!(matches!(err, KeyError::Line { line: 2, .. }), "{err}");
        assert!(err.to_string().contains("bad.keys:2:"), "{err}");

        let zero = dir.join("zero.keys");
        std::fs::write(&zero, "0".repeat(64)).unwrap();
        let err = Keys::load(&zero).unwrap_err();
        assert!(err.to_string().contains("not a valid secp256k1"), "{err}");

        let empty = dir.join("empty.keys");
        std::fs::write(&empty, "# nothing\n\n").unwrap();
        assert!(matches!(Keys::load(&empty), Err(KeyError::Empty { .. })));
        assert!(matches!(
            Keys::load(&dir.join("missing.keys")),
            Err(KeyError::Read { .. })
        ));
    }
}
