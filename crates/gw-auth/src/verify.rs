//! Token verification: size cap, header, key selection, signature, claims, cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::cache::{TokenCache, Verified};
use crate::claims::RawClaims;
use crate::error::AuthError;
use crate::keys::Lookup;
use crate::source::KeySource;

/// Verifies tokens against one key source, or one per issuer. Shared (in an `Arc`) by
/// every clone of an [`AuthLayer`](crate::AuthLayer) and its services.
pub struct Verifier {
    pub(crate) sources: Vec<Arc<dyn KeySource>>,
    pub(crate) by_issuer: Option<HashMap<Box<str>, usize>>,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: i64,
    pub(crate) max_token_bytes: usize,
    pub(crate) cache: Option<TokenCache>,
    pub(crate) seen: Vec<AtomicU64>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("sources", &self.sources)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What a synchronous verification attempt needs next.
#[derive(Debug)]
pub(crate) enum Attempt {
    Done(Result<Arc<Verified>, AuthError>),
    /// The `kid` is unknown to source `n`: refetch, then try again.
    UnknownKid(usize),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

fn algorithm(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        // `none`, HS256/384/512 and anything else: never with public keys.
        _ => return None,
    })
}

impl Verifier {
    /// Verifies `token` at `now` (Unix seconds). On an unknown `kid` it waits for the
    /// key source's single-flight refetch once (if one is allowed) and tries again.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, AuthError> {
        match self.attempt(token, now) {
            Attempt::Done(r) => r,
            Attempt::UnknownKid(source) => {
                // Without an allowed refetch, still look again: one that just ended may
                // have brought the key.
                if let Some(wait) = self.refetch(source) {
                    wait.await;
                }
                self.after_refetch(token, now)
            }
        }
    }

    pub(crate) fn refetch(
        &self,
        source: usize,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        self.sources[source].refetch()
    }

    /// The second attempt, after a refetch: an unknown `kid` is now final.
    pub(crate) fn after_refetch(&self, token: &str, now: i64) -> Result<Arc<Verified>, AuthError> {
        match self.attempt(token, now) {
            Attempt::Done(r) => r,
            Attempt::UnknownKid(_) => Err(AuthError::invalid("unknown-kid")),
        }
    }

    /// Verifies without waiting: a cache hit, a full verification, or "unknown kid".
    pub(crate) fn attempt(&self, token: &str, now: i64) -> Attempt {
        match self.cached(token.as_bytes(), now) {
            Some(hit) => Attempt::Done(Ok(hit)),
            None => self.attempt_uncached(token, now),
        }
    }

    /// The cached verification of `token`, if it is still valid at `now`.
    pub(crate) fn cached(&self, token: &[u8], now: i64) -> Option<Arc<Verified>> {
        if token.len() > self.max_token_bytes {
            return None;
        }
        let cache = self.cache.as_ref()?;
        self.purge_if_keys_changed(cache);
        match cache.get(token, now, |s| self.sources[s].generation()) {
            Some(hit) => {
                gw_core::hot_counter!("gw_auth_cache_total", "result" => "hit").increment(1);
                Some(hit)
            }
            None => {
                gw_core::hot_counter!("gw_auth_cache_total", "result" => "miss").increment(1);
                None
            }
        }
    }

    /// Whether `token` is over the size cap (checked before any decoding).
    pub(crate) fn too_large(&self, token: &[u8]) -> bool {
        token.len() > self.max_token_bytes
    }

    /// Full verification (the size cap first), caching the result when it is valid now.
    pub(crate) fn attempt_uncached(&self, token: &str, now: i64) -> Attempt {
        if self.too_large(token.as_bytes()) {
            return Attempt::Done(Err(AuthError::invalid("token-too-large")));
        }
        self.verify_uncached(token, now)
    }

    fn purge_if_keys_changed(&self, cache: &TokenCache) {
        for (source, seen) in self.sources.iter().zip(&self.seen) {
            let g = source.generation();
            if seen.load(Ordering::Relaxed) != g && seen.swap(g, Ordering::AcqRel) != g {
                if cache.len() > 0 {
                    tracing::debug!("gw-auth: key set changed; clearing the token cache");
                }
                cache.clear();
            }
        }
    }

    fn verify_uncached(&self, token: &str, now: i64) -> Attempt {
        let malformed = || Attempt::Done(Err(AuthError::invalid("malformed")));
        let mut parts = token.splitn(3, '.');
        let (Some(h64), Some(p64), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return malformed();
        };
        if sig.contains('.') || sig.is_empty() {
            return malformed();
        }
        let message = &token[..h64.len() + 1 + p64.len()];
        let Some(header) = decode_json::<Header>(h64) else {
            return malformed();
        };
        if header.crit.is_some() {
            return Attempt::Done(Err(AuthError::invalid("unsupported-crit")));
        }
        let Some(alg) = algorithm(&header.alg) else {
            return Attempt::Done(Err(AuthError::invalid("alg-not-allowed")));
        };
        let Some(raw) = decode_json::<RawClaims>(p64) else {
            return malformed();
        };

        // Key set: by the (not yet verified) `iss`, in one lookup.
        let source = match &self.by_issuer {
            None => 0,
            Some(map) => match raw.iss.as_deref().and_then(|iss| map.get(iss)) {
                Some(&i) => i,
                None => return Attempt::Done(Err(AuthError::invalid("unknown-issuer"))),
            },
        };
        let keys = self.sources[source].keys();
        let key = match keys.lookup(header.kid.as_deref(), alg) {
            Lookup::Found(k) => k,
            Lookup::UnknownKid => return Attempt::UnknownKid(source),
            Lookup::NoKid => return Attempt::Done(Err(AuthError::invalid("kid-required"))),
        };
        if !key.allows(alg) {
            return Attempt::Done(Err(AuthError::invalid("alg-key-mismatch")));
        }
        match jsonwebtoken::crypto::verify(sig, message.as_bytes(), key.decoding_key(), alg) {
            Ok(true) => {}
            Ok(false) => return Attempt::Done(Err(AuthError::invalid("bad-signature"))),
            Err(_) => return malformed(),
        }

        let result = self.check_claims(raw, now, source, keys.generation());
        if let (Some(cache), Ok(v)) = (&self.cache, &result) {
            // Only tokens valid right now are cached; entries expire at `exp`.
            if now < v.claims.exp && v.claims.nbf.is_none_or(|nbf| nbf <= now) {
                cache.insert(token, v.clone());
            }
        }
        Attempt::Done(result)
    }

    fn check_claims(
        &self,
        raw: RawClaims,
        now: i64,
        source: usize,
        generation: u64,
    ) -> Result<Arc<Verified>, AuthError> {
        let claims = raw.into_claims()?;
        if now > claims.exp.saturating_add(self.leeway) {
            return Err(AuthError::expired());
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(AuthError::invalid("not-yet-valid"));
        }
        if self.by_issuer.is_none()
            && !self.issuers.is_empty()
            && !self.issuers.contains(&claims.iss)
        {
            return Err(AuthError::invalid("wrong-issuer"));
        }
        if !self.audiences.is_empty() && !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(AuthError::invalid("wrong-audience"));
        }
        let principal = claims.principal();
        Ok(Arc::new(Verified {
            claims: Arc::new(claims),
            principal,
            source,
            generation,
        }))
    }

    /// The oldest key-set age over all sources; `None` if any source never loaded keys.
    pub fn key_set_age(&self) -> Option<Duration> {
        self.sources
            .iter()
            .map(|s| s.age())
            .try_fold(Duration::ZERO, |max, age| age.map(|a| a.max(max)))
    }

    /// Number of tokens in the verified-token cache.
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(b64: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}
