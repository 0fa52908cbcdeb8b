//! Which body and query field names hold secrets.
//!
//! A name is compared in a normal form: its last part when it is nested (`user[password]`,
//! `user.password` -> `password`), in lower case, without `-`, `_` and spaces
//! (`X-Api-Key`, `api_key`, `apiKey` -> `apikey`). It is secret when the normal form
//! equals a listed name (the short ones in [`DEFAULT_REDACTED_FIELDS`] and those added
//! with `AuditLayer::redact_fields`) or contains a word of [`SECRET_FIELD_WORDS`]
//! anywhere (`accessToken`, `client_secret`, `db-password`, `private_key`).
//!
//! The one exception: a name whose only secret word is `token` followed by `s`, `count`,
//! `limit` or `usage` (`max_tokens`, `prompt_tokens`, `token_count`) names a number of
//! tokens, not a credential, and is kept when its value is a number; any other value
//! under such a name (`"tokens": ["..."]`) is redacted.
//!
//! Every name is normalized into a stack buffer (names over 64 bytes, rare, into a heap
//! one), and most names are told apart from every secret word by one table lookup per
//! pair of letters, done during that same pass.

/// Words that make a field secret wherever they appear in its normalized name.
pub const SECRET_FIELD_WORDS: [&str; 14] = [
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "apikey",
    "privatekey",
    "accesskey",
    "signature",
    "credential",
    "authorization",
    "jwt",
    "cookie",
];

/// For each word of [`SECRET_FIELD_WORDS`], a pair of its letters that ordinary field
/// names seldom have: a name without any of these pairs holds none of the words.
const WORD_PAIRS: [&[u8; 2]; 14] = [
    b"ok", b"cr", b"sw", b"wd", b"hr", b"wd", b"ik", b"ek", b"sk", b"gn", b"cr", b"za", b"jw",
    b"ok",
];

/// Field names redacted by default on an exact match of their normal form: secrets too
/// short to look for inside other names.
pub const DEFAULT_REDACTED_FIELDS: [&str; 7] = ["auth", "sig", "pass", "pin", "otp", "cvv", "cvc"];

/// Row `a` has bit `b` set when the letter pair `a b` is in [`WORD_PAIRS`].
const PAIRS: [u32; 26] = {
    let mut rows = [0u32; 26];
    let mut i = 0;
    while i < WORD_PAIRS.len() {
        let [a, b] = *WORD_PAIRS[i];
        rows[(a - b'a') as usize] |= 1 << (b - b'a');
        i += 1;
    }
    rows
};

/// What a field name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    /// Not secret.
    Plain,
    /// Secret: the value is redacted.
    Secret,
    /// A number of tokens (`max_tokens`): kept when the value is a number.
    TokenCount,
}

/// Room for a normalized name on the stack.
const INLINE: usize = 64;

/// The part of `name` that is compared: the last non-empty part between `[`, `]`, `.`.
fn last_part(name: &str) -> &str {
    if !name
        .as_bytes()
        .iter()
        .any(|&b| matches!(b, b'[' | b']' | b'.'))
    {
        return name;
    }
    name.rsplit(['[', ']', '.'])
        .find(|s| !s.is_empty())
        .unwrap_or(name)
}

/// Calls `f` with the normal form of `name` and whether it may hold a secret word.
pub(crate) fn with_normal<R>(name: &str, f: impl FnOnce(&[u8], bool) -> R) -> R {
    let part = last_part(name).as_bytes();
    let mut inline = [0u8; INLINE];
    let mut heap = Vec::new();
    let out: &mut [u8] = if part.len() <= INLINE {
        &mut inline
    } else {
        heap.resize(part.len(), 0);
        &mut heap
    };
    let mut len = 0;
    let mut candidate = false;
    let mut prev = 0u8;
    for &b in part {
        if matches!(b, b'-' | b'_' | b' ') {
            continue;
        }
        let b = b.to_ascii_lowercase();
        if b.is_ascii_lowercase() && prev.is_ascii_lowercase() {
            candidate |= PAIRS[usize::from(prev - b'a')] & (1 << (b - b'a')) != 0;
        }
        out[len] = b;
        len += 1;
        prev = b;
    }
    f(&out[..len], candidate)
}

/// How the normal form `n` (that may hold a secret word) reads.
pub(crate) fn words(n: &[u8]) -> Secrecy {
    let mut found = Secrecy::Plain;
    for i in 0..n.len() {
        let rest = &n[i..];
        for word in SECRET_FIELD_WORDS {
            let word = word.as_bytes();
            if word[0] != rest[0] || !rest.starts_with(word) {
                continue;
            }
            let after = &rest[word.len()..];
            let counts = word == b"token"
                && ["s", "count", "limit", "usage"]
                    .iter()
                    .any(|s| after.starts_with(s.as_bytes()));
            if !counts {
                return Secrecy::Secret;
            }
            found = Secrecy::TokenCount;
        }
    }
    found
}

/// `name` in normal form, for the configured list.
pub(crate) fn normal(name: &str) -> String {
    with_normal(name, |n, _| String::from_utf8_lossy(n).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrecy(name: &str) -> Secrecy {
        with_normal(name, |n, candidate| {
            let found = words(n);
            // The letter-pair filter never hides a word.
            assert!(candidate || found == Secrecy::Plain, "{name}");
            found
        })
    }

    #[test]
    fn every_word_has_its_filter_pair() {
        for (word, pair) in SECRET_FIELD_WORDS.iter().zip(WORD_PAIRS) {
            assert!(word.as_bytes().windows(2).any(|w| w == pair), "{word}");
        }
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(normal("X-Api-Key"), "xapikey");
        assert_eq!(normal("user[Pass_Word]"), "password");
        assert_eq!(normal("user[profile][api-key]"), "apikey");
        assert_eq!(normal("tokens[]"), "tokens");
        assert_eq!(normal("a.b.Client Secret"), "clientsecret");
        assert_eq!(normal(&format!("{}Token", "x".repeat(100))).len(), 105);
    }

    #[test]
    fn secret_words_are_found_anywhere_and_token_counts_are_told_apart() {
        for name in [
            "accessToken",
            "refresh_token",
            "id_token",
            "idToken",
            "clientSecret",
            "private_key",
            "api-key",
            "X_API_KEY",
            "db_password",
            "passwd",
            "credentials",
            "aws_secret_access_key",
            "awsAccessKeyId",
            "signature",
            "jwt",
            "session_cookie",
            "Authorization",
            "token_type",
            "otp_token",
            "tokens_secret",
            &format!("{}_token", "x".repeat(100)),
        ] {
            assert_eq!(secrecy(name), Secrecy::Secret, "{name}");
        }
        for name in [
            "max_tokens",
            "prompt_tokens",
            "token_count",
            "tokenLimit",
            "tokens",
        ] {
            assert_eq!(secrecy(name), Secrecy::TokenCount, "{name}");
        }
        for name in [
            "page",
            "model",
            "messages",
            "description",
            "task",
            "temperature",
            "signal",
            "design",
            "author",
            "passenger",
            "key",
            "",
        ] {
            assert_eq!(secrecy(name), Secrecy::Plain, "{name}");
        }
    }

    #[test]
    fn most_ordinary_names_skip_the_word_search() {
        for name in [
            "page",
            "model",
            "messages",
            "role",
            "content",
            "temperature",
            "stream",
        ] {
            assert!(!with_normal(name, |_, candidate| candidate), "{name}");
        }
    }
}
