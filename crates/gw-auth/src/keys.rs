//! Verification keys and key sets. A key's type pins the algorithms it verifies.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::pem::{pem_body, spki_type};

/// What kind of public key a [`VerifyKey`] is; decides which algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA: RS256/384/512 and PS256/384/512.
    Rsa,
    /// ECDSA on P-256: ES256.
    EcP256,
    /// ECDSA on P-384: ES384.
    EcP384,
    /// Ed25519: EdDSA.
    Ed25519,
}

impl KeyType {
    /// The algorithms a key of this type verifies.
    pub const fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            Self::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            Self::EcP256 => &[ES256],
            Self::EcP384 => &[ES384],
            Self::Ed25519 => &[EdDSA],
        }
    }
}

/// A key that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub(crate) String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unusable key: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

pub(crate) fn err(msg: impl Into<String>) -> KeyError {
    KeyError(msg.into())
}

/// One public verification key with its `kid` and the algorithms it may verify.
/// Symmetric (HMAC) keys do not exist here: a token signed with `HS*` never verifies.
#[derive(Clone)]
pub struct VerifyKey {
    kid: Option<Arc<str>>,
    key_type: KeyType,
    pinned: Option<Algorithm>,
    key: DecodingKey,
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("pinned", &self.pinned)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// A key from a PEM public key (`PUBLIC KEY` as SPKI, or `RSA PUBLIC KEY`); its type
    /// is read from the key itself. Private keys and certificates are refused.
    pub fn from_pem(kid: Option<&str>, pem: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| err("PEM is not UTF-8"))?;
        let (label, der) = pem_body(text)?;
        let key_type = match label {
            "RSA PUBLIC KEY" => KeyType::Rsa,
            "PUBLIC KEY" => spki_type(&der)?,
            other => return Err(err(format!("expected a public key, got {other:?}"))),
        };
        let key = match key_type {
            KeyType::Rsa => DecodingKey::from_rsa_pem(pem),
            KeyType::EcP256 | KeyType::EcP384 => DecodingKey::from_ec_pem(pem),
            KeyType::Ed25519 => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            kid: kid.map(Into::into),
            key_type,
            pinned: None,
            key,
        })
    }

    /// A key from a JWK. `use: enc` keys, symmetric keys and unsupported curves are
    /// refused; a JWK `alg` pins the key to that one algorithm.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return Err(err("key is not for signatures"));
        }
        let key_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyType::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyType::EcP256,
                EllipticCurve::P384 => KeyType::EcP384,
                _ => return Err(err("unsupported EC curve")),
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyType::Ed25519
            }
            AlgorithmParameters::OctetKeyPair(_) => return Err(err("unsupported OKP curve")),
            AlgorithmParameters::OctetKey(_) => return Err(err("symmetric keys are refused")),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| err(e.to_string()))?;
        let mut k = Self {
            kid: jwk.common.key_id.as_deref().map(Into::into),
            key_type,
            pinned: None,
            key,
        };
        if let Some(alg) = &jwk.common.key_algorithm {
            let alg = key_algorithm(alg).ok_or_else(|| err(format!("alg {alg:?} refused")))?;
            k = k.pin(alg)?;
        }
        Ok(k)
    }

    /// Restricts the key to `alg`, which its type must support.
    pub fn pin(mut self, alg: Algorithm) -> Result<Self, KeyError> {
        if !self.key_type.algorithms().contains(&alg) {
            return Err(err(format!(
                "{alg:?} does not fit a {:?} key",
                self.key_type
            )));
        }
        self.pinned = Some(alg);
        Ok(self)
    }

    /// Sets the `kid`.
    pub fn with_kid(mut self, kid: impl Into<Arc<str>>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        match self.pinned {
            Some(p) => p == alg,
            None => self.key_type.algorithms().contains(&alg),
        }
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

fn key_algorithm(alg: &KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// An immutable set of keys, indexed by `kid`. Each set built gets a new
/// [`generation`](KeySet::generation), so caches can tell a changed key set apart.
#[derive(Debug)]
pub struct KeySet {
    by_kid: HashMap<Arc<str>, Arc<VerifyKey>>,
    unnamed: Vec<Arc<VerifyKey>>,
    /// Whether a token's `kid` that names no key falls back to the unnamed keys (sets
    /// built from keys; not JWKS documents, where an unknown `kid` means "refetch").
    kid_fallback: bool,
    fingerprint: u64,
    generation: u64,
}

impl Default for KeySet {
    fn default() -> Self {
        Self::new(std::iter::empty())
    }
}

/// The outcome of looking a key up.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    Found(&'a VerifyKey),
    UnknownKid,
    NoKid,
}

impl KeySet {
    /// A set of `keys`; a later key with the same `kid` replaces an earlier one. A token
    /// whose `kid` names no key here is answered as one without a `kid`: by the one key
    /// without a `kid` that allows its `alg`.
    pub fn new(keys: impl IntoIterator<Item = VerifyKey>) -> Self {
        let mut by_kid = HashMap::new();
        let mut unnamed = Vec::new();
        for k in keys {
            match k.kid.clone() {
                Some(kid) => {
                    by_kid.insert(kid, Arc::new(k));
                }
                None => unnamed.push(Arc::new(k)),
            }
        }
        Self {
            by_kid,
            unnamed,
            kid_fallback: true,
            fingerprint: 0,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A set from a JWKS document (`{"keys": [...]}`). Keys that cannot be used
    /// (encryption keys, symmetric keys, unknown types) are skipped and logged; the
    /// document itself must be valid JSON with a `keys` list. In a JWKS set a token's
    /// `kid` must name a key: an unknown `kid` never falls back to keys without one (a
    /// JWKS source refetches instead).
    pub fn from_jwks(json: &[u8]) -> Result<Self, KeyError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(json).map_err(|e| err(format!("JWKS: {e}")))?;
        let mut keys = Vec::with_capacity(doc.keys.len());
        for v in doc.keys {
            match serde_json::from_value::<Jwk>(v)
                .map_err(|e| err(e.to_string()))
                .and_then(|jwk| VerifyKey::from_jwk(&jwk))
            {
                Ok(k) => keys.push(k),
                Err(e) => tracing::debug!(error = %e, "gw-auth: skipping JWKS key"),
            }
        }
        let mut set = Self::new(keys);
        set.kid_fallback = false;
        set.fingerprint = fingerprint(json);
        Ok(set)
    }

    /// The generation: unique per set built in this process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key ids in the set.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(|k| &**k)
    }

    /// Whether `other` came from the same JWKS document.
    pub(crate) fn same_document(&self, other: &KeySet) -> bool {
        self.fingerprint != 0 && self.fingerprint == other.fingerprint
    }

    /// The key for a token's `kid` and `alg`. Without a `kid`, only a set whose keys
    /// include exactly one that allows `alg` answers (no trying of several keys). A
    /// `kid` that names no key falls back, outside JWKS sets, to the one unnamed key
    /// that allows `alg`; named keys are never used for another `kid`.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) => Lookup::Found(k),
                None if self.kid_fallback => {
                    match only_one(self.unnamed.iter().filter(|k| k.allows(alg))) {
                        Some(k) => Lookup::Found(k),
                        None => Lookup::UnknownKid,
                    }
                }
                None => Lookup::UnknownKid,
            },
            None => {
                let fits = self
                    .unnamed
                    .iter()
                    .chain(self.by_kid.values())
                    .filter(|k| k.allows(alg));
                match only_one(fits) {
                    Some(k) => Lookup::Found(k),
                    None => Lookup::NoKid,
                }
            }
        }
    }
}

/// The single item of `it`, or `None` when it has none or several.
fn only_one<'a>(mut it: impl Iterator<Item = &'a Arc<VerifyKey>>) -> Option<&'a VerifyKey> {
    match (it.next(), it.next()) {
        (Some(k), None) => Some(k),
        _ => None,
    }
}

/// FNV-1a of a document, to tell an unchanged JWKS apart from a rotated one.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &str = include_str!("../tests/keys/rsa1.pub.pem");
    const EC256: &str = include_str!("../tests/keys/ec256.pub.pem");
    const EC384: &str = include_str!("../tests/keys/ec384.pub.pem");
    const ED: &str = include_str!("../tests/keys/ed25519.pub.pem");
    const RSA_PRIVATE: &str = include_str!("../tests/keys/rsa1.pem");

    #[test]
    fn pem_type_is_detected_and_pins_algorithms() {
        let cases = [
            (RSA, KeyType::Rsa),
            (EC256, KeyType::EcP256),
            (EC384, KeyType::EcP384),
            (ED, KeyType::Ed25519),
        ];
        for (pem, ty) in cases {
            let k = VerifyKey::from_pem(Some("k"), pem.as_bytes()).unwrap();
            assert_eq!(k.key_type(), ty);
            assert!(!k.allows(Algorithm::HS256));
        }
        let rsa = VerifyKey::from_pem(None, RSA.as_bytes()).unwrap();
        assert!(rsa.allows(Algorithm::PS384) && !rsa.allows(Algorithm::ES256));
        let rsa = rsa.pin(Algorithm::RS256).unwrap();
        assert!(!rsa.allows(Algorithm::PS256));
        assert!(
            VerifyKey::from_pem(None, EC256.as_bytes())
                .unwrap()
                .pin(Algorithm::ES384)
                .is_err()
        );
        assert!(VerifyKey::from_pem(None, RSA_PRIVATE.as_bytes()).is_err());
        assert!(VerifyKey::from_pem(None, b"garbage").is_err());
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let jwks = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","kid":"e","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"XYZ","kid":"x"}
        ]}"#;
        let set = KeySet::from_jwks(jwks).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), ["e"]);
        assert!(matches!(
            set.lookup(Some("h"), Algorithm::HS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(
            set.lookup(None, Algorithm::EdDSA),
            Lookup::Found(_)
        ));
        assert!(matches!(set.lookup(None, Algorithm::RS256), Lookup::NoKid));
        assert!(KeySet::from_jwks(b"{}").is_err());
        assert_ne!(KeySet::default().generation(), set.generation());
    }
}
