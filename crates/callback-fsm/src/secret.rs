//! [`CallbackSecrets`]: the shared secrets accepted in `X-Callback-Secret`.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Header carrying the shared secret.
pub const CALLBACK_SECRET_HEADER: &str = "x-callback-secret";

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Why a secret list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// No secret was given.
    Empty,
    /// The secret at this position (0-based) is shorter than [`MIN_SECRET_LEN`] bytes.
    TooShort {
        /// Position in the list.
        index: usize,
    },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("at least one callback secret is required"),
            Self::TooShort { index } => write!(
                f,
                "callback secret #{index} is shorter than {MIN_SECRET_LEN} bytes"
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// The accepted callback secrets (several at once, for rotation).
///
/// Only SHA-256 digests are kept. [`verify`](Self::verify) hashes the presented value once
/// and compares the digest with every configured digest in constant time, without
/// stopping at a match, so the time taken depends neither on which secret matched nor on
/// how many bytes of it were right. `Debug` never prints the secrets.
#[derive(Clone)]
pub struct CallbackSecrets {
    digests: Arc<[[u8; 32]]>,
}

impl CallbackSecrets {
    /// Accepts `secrets`; each must be at least [`MIN_SECRET_LEN`] bytes, and there must be
    /// at least one.
    pub fn new<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut digests = Vec::new();
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < MIN_SECRET_LEN {
                return Err(SecretError::TooShort { index });
            }
            digests.push(digest(secret));
        }
        if digests.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self {
            digests: digests.into(),
        })
    }

    /// Number of configured secrets.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Always `false`: construction requires a secret.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` equals one of the secrets. A missing header is checked as an
    /// empty value (no configured secret is that short), so it costs the same as a wrong
    /// one.
    pub fn verify(&self, presented: Option<&[u8]>) -> bool {
        let presented = digest(presented.unwrap_or_default());
        let mut ok = Choice::from(0u8);
        for known in self.digests.iter() {
            ok |= presented.ct_eq(known);
        }
        bool::from(ok)
    }
}

impl fmt::Debug for CallbackSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackSecrets")
            .field("count", &self.digests.len())
            .finish_non_exhaustive()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a-very-long-callback-secret-0001!";
    const B: &str = "another-long-callback-secret-0002";

    #[test]
    fn enforces_length_and_presence() {
        assert_eq!(
            CallbackSecrets::new(Vec::<String>::new()).unwrap_err(),
            SecretError::Empty
        );
        assert_eq!(
            CallbackSecrets::new([A, "short"]).unwrap_err(),
            SecretError::TooShort { index: 1 }
        );
        assert!(CallbackSecrets::new(["x".repeat(31)]).is_err());
        assert!(CallbackSecrets::new(["x".repeat(32)]).is_ok());
    }

    #[test]
    fn accepts_any_configured_secret() {
        let s = CallbackSecrets::new([A, B]).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.verify(Some(A.as_bytes())));
        assert!(s.verify(Some(B.as_bytes())));
        assert!(!s.verify(None));
        assert!(!s.verify(Some(b"")));
        assert!(!s.verify(Some(&A.as_bytes()[..31])));
        let mut longer = A.as_bytes().to_vec();
        longer.push(b'x');
        assert!(!s.verify(Some(&longer)));
    }

    #[test]
    fn debug_redacts() {
        let s = CallbackSecrets::new([A]).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(A) && shown.contains("count"));
    }
}
