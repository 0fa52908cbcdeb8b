//! Which body and query field names hold secrets.
//!
//! A name is compared in a normal form: lower case, without `-`, `_` and spaces
//! (`X-Api-Key`, `api_key`, `apiKey` -> `apikey`), its parts between `[`, `]` and `.`
//! kept apart (`user[Pass_Word]` -> `user`, `password`). It is secret when any part
//! equals a listed name (the short ones in [`DEFAULT_REDACTED_FIELDS`] and those added
//! with `AuditLayer::redact_fields`, which also match the parts joined), or when any
//! part, or the parts joined, contains a word of [`SECRET_FIELD_WORDS`] anywhere
//! (`accessToken`, `client_secret`, `db-password`, `password[0]`, `private.key`).
//!
//! The one exception: a name whose every secret word is `token` followed by `s`,
//! `count`, `limit`, `usage` or `used` (or `s` and one of those) at its end, or before
//! index parts only (`max_tokens`, `prompt_tokens`, `token_count`, `tokens_used`,
//! `max_tokens[0]`), names a number of tokens, not a credential, and is kept when its
//! value is a number; any other value under such a name (`"tokens": ["..."]`) is
//! redacted, and so is any value under `token_sms` or `tokenSerial`.
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

/// Stands for `[`, `]` and `.` in a normal form: the boundary between two parts.
pub(crate) const SEP: u8 = b'.';

/// A normalized name, as [`with_normal`] hands it over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Normal<'a> {
    /// The normal form, parts separated by one [`SEP`] (none leading or trailing).
    pub(crate) text: &'a [u8],
    /// Whether it may hold a secret word (see [`words`]).
    pub(crate) may_hold_word: bool,
    /// Whether it has more than one part.
    pub(crate) nested: bool,
}

impl Normal<'_> {
    /// The parts of a nested name (`user`, `password` for `user[password]`).
    pub(crate) fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.text.split(|&b| b == SEP)
    }

    /// Whether the whole name, parts joined, equals `other` (`card[number]` and
    /// `cardnumber`).
    pub(crate) fn joined_eq(&self, other: &[u8]) -> bool {
        self.text.iter().filter(|&&b| b != SEP).eq(other)
    }

    /// The length of the whole name, parts joined.
    pub(crate) fn joined_len(&self) -> usize {
        self.text.iter().filter(|&&b| b != SEP).count()
    }
}

/// Calls `f` with the normal form of `name`.
pub(crate) fn with_normal<R>(name: &str, f: impl FnOnce(Normal<'_>) -> R) -> R {
    let name = name.as_bytes();
    let mut inline = [0u8; INLINE];
    let mut heap = Vec::new();
    let out: &mut [u8] = if name.len() <= INLINE {
        &mut inline
    } else {
        heap.resize(name.len(), 0);
        &mut heap
    };
    let mut len = 0;
    let mut candidate = false;
    let mut nested = false;
    let mut prev = 0u8;
    for &b in name {
        match b {
            b'-' | b'_' | b' ' => continue,
            // One separator between two non-empty parts; the letter pairs run on across
            // it (`private.key` holds `privatekey`).
            b'[' | b']' | b'.' => {
                if len > 0 && out[len - 1] != SEP {
                    out[len] = SEP;
                    len += 1;
                }
                continue;
            }
            _ => {}
        }
        let b = b.to_ascii_lowercase();
        if b.is_ascii_lowercase() && prev.is_ascii_lowercase() {
            candidate |= PAIRS[usize::from(prev - b'a')] & (1 << (b - b'a')) != 0;
        }
        if len > 0 && out[len - 1] == SEP {
            nested = true;
        }
        out[len] = b;
        len += 1;
        prev = b;
    }
    if len > 0 && out[len - 1] == SEP {
        len -= 1;
    }
    f(Normal {
        text: &out[..len],
        may_hold_word: candidate,
        nested,
    })
}

/// The end (in `n`) of `word` when `n` starts with it, separators between its letters
/// skipped (`private.key`).
fn word_end(n: &[u8], word: &[u8]) -> Option<usize> {
    let mut i = 0;
    for &w in word {
        while i > 0 && n.get(i) == Some(&SEP) {
            i += 1;
        }
        if n.get(i) != Some(&w) {
            return None;
        }
        i += 1;
    }
    Some(i)
}

/// What may follow `token` in a name that counts tokens, up to the end of the name.
const COUNT_SUFFIXES: [&str; 9] = [
    "s", "count", "limit", "usage", "used", "scount", "slimit", "susage", "sused",
];

/// Whether `after`, what follows a `token`, makes a token count: one of
/// [`COUNT_SUFFIXES`], then the end of the name or only index parts (`max_tokens[0]`).
fn counts_tokens(after: &[u8]) -> bool {
    COUNT_SUFFIXES.iter().any(|s| {
        after.strip_prefix(s.as_bytes()).is_some_and(|rest| {
            rest.is_empty()
                || (rest[0] == SEP && rest.iter().all(|&b| b == SEP || b.is_ascii_digit()))
        })
    })
}

/// How the normal form `n` (that may hold a secret word) reads: secret when any part,
/// or the parts joined, holds a word that is not a token count.
pub(crate) fn words(n: &[u8]) -> Secrecy {
    let mut found = Secrecy::Plain;
    for i in 0..n.len() {
        let rest = &n[i..];
        if rest[0] == SEP {
            continue;
        }
        for word in SECRET_FIELD_WORDS {
            let word = word.as_bytes();
            if word[0] != rest[0] {
                continue;
            }
            let Some(end) = word_end(rest, word) else {
                continue;
            };
            if word != b"token" || !counts_tokens(&rest[end..]) {
                return Secrecy::Secret;
            }
            found = Secrecy::TokenCount;
        }
    }
    found
}

/// `name` in normal form, parts joined, for the configured list.
pub(crate) fn normal(name: &str) -> String {
    with_normal(name, |n| {
        let joined: Vec<u8> = n.text.iter().copied().filter(|&b| b != SEP).collect();
        String::from_utf8_lossy(&joined).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrecy(name: &str) -> Secrecy {
        with_normal(name, |n| {
            let found = words(n.text);
            // The letter-pair filter never hides a word.
            assert!(n.may_hold_word || found == Secrecy::Plain, "{name}");
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
        let text = |name: &str| with_normal(name, |n| String::from_utf8_lossy(n.text).into_owned());
        assert_eq!(normal("X-Api-Key"), "xapikey");
        assert_eq!(normal("user[Pass_Word]"), "userpassword");
        assert_eq!(text("user[Pass_Word]"), "user.password");
        assert_eq!(text("user[profile][api-key]"), "user.profile.apikey");
        assert_eq!(text("[tokens][]"), "tokens");
        assert_eq!(text("a..b.Client Secret"), "a.b.clientsecret");
        assert_eq!(normal(&format!("{}Token", "x".repeat(100))).len(), 105);
        assert!(with_normal("a[b]", |n| n.nested) && !with_normal("tokens[]", |n| n.nested));
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
            "password[0]",
            "token[1]",
            "api_key[0]",
            "secret[value]",
            "private.key",
            "user[password]",
            "tokens[0]secret",
            "max_tokens.token",
            "token_sms",
            "tokenSerial",
            "tokens_sms",
            "token_counter",
            "tokenssn",
            "tokens[sms]",
            "token.count",
            "tokens2",
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
            "tokens_used",
            "token_usage",
            "total_tokens",
            "max_tokens[0]",
            "usage.prompt_tokens",
            "tokens[]",
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
            "user[name]",
            "items[0].value",
            "...",
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
            assert!(!with_normal(name, |n| n.may_hold_word), "{name}");
        }
    }
}
