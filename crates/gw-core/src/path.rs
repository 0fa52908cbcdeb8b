//! Request path normalization: one interpretation of a path, or a refusal.
//!
//! Path rules decide security questions (is this public? exempt? service-only?), so a
//! path that different servers could read differently is refused rather than guessed at.
//! [`normalize_path`] percent-decodes a path and returns [`PathError`] for anything
//! ambiguous; layers answer such requests with 400.

use std::borrow::Cow;
use std::fmt;

/// Why a path was refused. Each variant has a stable [`code`](PathError::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `%2F`: an encoded `/` could be read as a separator or as data.
    EncodedSlash,
    /// `%2E`: an encoded `.` hides dot segments.
    EncodedDot,
    /// A `.` or `..` segment.
    DotSegment,
    /// An empty segment (`//`).
    EmptySegment,
    /// A `;` (path parameters, read differently by different servers).
    MatrixParam,
    /// `%25`: a percent-encoded `%`, i.e. double encoding.
    DoubleEncoding,
    /// A `%` not followed by two hex digits.
    InvalidEncoding,
    /// The decoded path is not UTF-8.
    NonUtf8,
    /// A control character, raw or encoded.
    ControlChar,
    /// A `\`, raw or encoded (some servers treat it as `/`).
    Backslash,
}

impl PathError {
    /// The stable machine-readable reason, e.g. `encoded-slash`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotAbsolute => "not-absolute",
            Self::EncodedSlash => "encoded-slash",
            Self::EncodedDot => "encoded-dot",
            Self::DotSegment => "dot-segment",
            Self::EmptySegment => "empty-segment",
            Self::MatrixParam => "matrix-parameter",
            Self::DoubleEncoding => "double-encoding",
            Self::InvalidEncoding => "invalid-encoding",
            Self::NonUtf8 => "non-utf8",
            Self::ControlChar => "control-character",
            Self::Backslash => "backslash",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::NotAbsolute => "path does not start with '/'",
            Self::EncodedSlash => "path contains an encoded '/'",
            Self::EncodedDot => "path contains an encoded '.'",
            Self::DotSegment => "path contains a '.' or '..' segment",
            Self::EmptySegment => "path contains an empty segment ('//')",
            Self::MatrixParam => "path contains ';'",
            Self::DoubleEncoding => "path is double percent-encoded",
            Self::InvalidEncoding => "path contains a malformed percent-encoding",
            Self::NonUtf8 => "decoded path is not UTF-8",
            Self::ControlChar => "path contains a control character",
            Self::Backslash => "path contains '\\'",
        };
        f.write_str(what)
    }
}

impl std::error::Error for PathError {}

/// Normalizes a raw request path (as in `uri.path()`, without the query).
///
/// - Percent-encodings of ordinary characters are decoded (`/he%61lth` is `/health`).
/// - One trailing `/` is dropped (`/health/` is `/health`); `/` stays `/`.
/// - Everything in [`PathError`] is refused.
///
/// Paths that need no change are returned borrowed, without allocating.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes) {
        // Nothing to decode or refuse: at most a trailing `/` to drop.
        return Ok(Cow::Borrowed(match raw.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped,
            _ => raw,
        }));
    }
    normalize_slowly(raw)
}

/// Whether `bytes` has nothing [`normalize_path`] decodes or refuses, nor a `.` (which
/// could start a dot segment), tested eight bytes at a time: the common case. Paths
/// under eight bytes take the byte loop.
fn is_plain(bytes: &[u8]) -> bool {
    use crate::swar::{any_word, byte, double_slash, less};
    let refused = |x, next| {
        less(x, 0x21)
            | byte(x, 0x7f)
            | byte(x, b';')
            | byte(x, b'\\')
            | byte(x, b'%')
            | byte(x, b'.')
            | double_slash(x, next)
    };
    any_word(bytes, refused) == Some(false)
}

/// [`normalize_path`], byte by byte, for an absolute path.
fn normalize_slowly(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = raw.as_bytes();
    // One pass over the raw bytes: refused characters end it at once; the first bad
    // segment is remembered and reported after any encoding error, as decoding comes
    // first. Segments can be checked on the raw bytes because decoding never yields a
    // `/` or a `.` (both are refused encoded).
    let mut has_percent = false;
    let mut segment_error = None;
    let mut start = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        match CLASS[usize::from(b)] {
            ORDINARY => {}
            SLASH => {
                if segment_error.is_none() {
                    segment_error = segment_fault(&bytes[start..i]);
                }
                start = i + 1;
            }
            PERCENT => has_percent = true,
            _ => {
                return Err(match b {
                    b';' => PathError::MatrixParam,
                    b'\\' => PathError::Backslash,
                    _ => PathError::ControlChar,
                });
            }
        }
    }
    // The last segment may be empty: one trailing `/` is dropped below.
    let last = &bytes[start..];
    if segment_error.is_none() && (last == b"." || last == b"..") {
        segment_error = Some(PathError::DotSegment);
    }

    let decoded: Cow<'_, str> = if has_percent {
        Cow::Owned(decode(bytes)?)
    } else {
        Cow::Borrowed(raw)
    };
    if let Some(e) = segment_error {
        return Err(e);
    }

    if decoded.len() > 1 && decoded.ends_with('/') {
        Ok(match decoded {
            Cow::Borrowed(s) => Cow::Borrowed(&s[..s.len() - 1]),
            Cow::Owned(mut s) => {
                s.pop();
                Cow::Owned(s)
            }
        })
    } else {
        Ok(decoded)
    }
}

const ORDINARY: u8 = 0;
const SLASH: u8 = 1;
const PERCENT: u8 = 2;
const REFUSED: u8 = 3;

/// The class of each byte of a raw path: one table lookup per byte on the hot path.
static CLASS: [u8; 256] = {
    let mut t = [ORDINARY; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = REFUSED;
        b += 1;
    }
    t[0x7f] = REFUSED;
    t[b';' as usize] = REFUSED;
    t[b'\\' as usize] = REFUSED;
    t[b'/' as usize] = SLASH;
    t[b'%' as usize] = PERCENT;
    t
};

/// What is wrong with a segment that is followed by a `/`, if anything.
fn segment_fault(seg: &[u8]) -> Option<PathError> {
    match seg {
        b"" => Some(PathError::EmptySegment),
        b"." | b".." => Some(PathError::DotSegment),
        _ => None,
    }
}

fn decode(bytes: &[u8]) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).and_then(|&h| hex(h)),
            bytes.get(i + 2).and_then(|&l| hex(l)),
        ) else {
            return Err(PathError::InvalidEncoding);
        };
        let d = hi << 4 | lo;
        match d {
            b'/' => return Err(PathError::EncodedSlash),
            b'.' => return Err(PathError::EncodedDot),
            b'%' => return Err(PathError::DoubleEncoding),
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::MatrixParam),
            0..=0x1f | 0x7f => return Err(PathError::ControlChar),
            _ => out.push(d),
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| PathError::NonUtf8)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_are_borrowed() {
        for p in ["/", "/health", "/api/v1/agents/42", "/a-b_c~d/e.f/..x"] {
            assert!(
                matches!(normalize_path(p), Ok(Cow::Borrowed(s)) if s == p),
                "{p}"
            );
        }
    }

    #[test]
    fn the_fast_path_answers_as_the_byte_loop() {
        // Every path of up to six bytes after the leading `/` over an alphabet with each
        // kind of byte the normalizer cares about, then longer ones with each at every
        // position (the fast path reads eight bytes at a time).
        const ALPHABET: &[u8] = b"/a.%2;\\ \x7f";
        let check = |path: &[u8]| {
            let Ok(path) = std::str::from_utf8(path) else {
                return;
            };
            assert_eq!(normalize_path(path), normalize_slowly(path), "{path:?}");
        };
        let mut path = vec![b'/'];
        fn all(path: &mut Vec<u8>, left: usize, check: &dyn Fn(&[u8])) {
            check(path);
            if left > 0 {
                for &b in ALPHABET {
                    path.push(b);
                    all(path, left - 1, check);
                    path.pop();
                }
            }
        }
        all(&mut path, 6, &check);
        let long = b"/api/v1/agents/42/runs/7";
        for len in 7..=long.len() {
            for at in 1..len {
                for &b in ALPHABET.iter().chain(b"\t\x80") {
                    let mut path = long[..len].to_vec();
                    path[at] = b;
                    check(&path);
                    path.push(b'/');
                    check(&path);
                }
            }
        }
        check("/é/€/𝄞/x".as_bytes());
    }

    #[test]
    fn decodes_and_trims() {
        let cases = [
            ("/he%61lth", "/health"),
            ("/health/", "/health"),
            ("/api/%E2%82%AC", "/api/€"),
            ("/files/my%20doc/", "/files/my doc"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_path(raw).unwrap(), want, "{raw}");
        }
    }
}
