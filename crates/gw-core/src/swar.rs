//! Tests on eight bytes at a time ("SIMD within a register"), for the path scans that
//! run on every request. Each test is exact as a yes/no over the eight bytes.

/// `b` in each of the eight bytes.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const ONES: u64 = splat(1);
const HIGHS: u64 = splat(0x80);
const SLASHES: u64 = splat(b'/');

// The tests below return a mask whose high bit is set in some lane exactly when the
// test holds for some byte (which lanes is not exact); masks combine with `|`, and
// `any` reads the answer.

/// Whether some test behind `mask` holds.
pub(crate) const fn any(mask: u64) -> bool {
    mask & HIGHS != 0
}

/// A byte of `x` is zero.
pub(crate) const fn zero(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x
}

/// A byte of `x` is `b`.
pub(crate) const fn byte(x: u64, b: u8) -> u64 {
    zero(x ^ splat(b))
}

/// A byte of `x` is below `n` (`n` at most 128).
pub(crate) const fn less(x: u64, n: u8) -> u64 {
    x.wrapping_sub(splat(n)) & !x
}

/// A byte of `x` and the byte after it, the same byte of `next`, are both `/`.
pub(crate) const fn double_slash(x: u64, next: u64) -> u64 {
    zero((x ^ SLASHES) | (next ^ SLASHES))
}

/// Whether the mask of `test` says yes for some eight-byte word of `bytes` (first byte
/// in the lowest lane) together with the word one byte later (for tests on byte pairs;
/// past the end it reads an ordinary byte), over every position; `None` when `bytes` is
/// shorter than eight bytes. The last word overlaps the one before, which cannot change
/// an "any" answer.
pub(crate) fn any_word(bytes: &[u8], test: impl Fn(u64, u64) -> u64) -> Option<bool> {
    let last = bytes.len().checked_sub(8)?;
    let mut at = 0;
    loop {
        let start = at.min(last);
        let mut w = [0; 8];
        w.copy_from_slice(&bytes[start..start + 8]);
        let x = u64::from_le_bytes(w);
        let after = bytes.get(start + 8).copied().unwrap_or(b'a');
        let next = (x >> 8) | (u64::from(after) << 56);
        if any(test(x, next)) {
            return Some(true);
        }
        if start == last {
            return Some(false);
        }
        at += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_test_agrees_with_a_byte_loop() {
        let samples: [u8; 12] = [
            0, 1, 0x1f, 0x20, 0x21, b'.', b'/', b'a', 0x7e, 0x7f, 0x80, 0xff,
        ];
        // Every sample at every position, among neighbours that are also samples.
        for &a in &samples {
            for &b in &samples {
                for at in 0..8 {
                    let mut bytes = [b; 8];
                    bytes[at] = a;
                    let x = u64::from_ne_bytes(bytes);
                    assert_eq!(any(zero(x)), bytes.contains(&0), "{bytes:?}");
                    assert_eq!(any(byte(x, b'.')), bytes.contains(&b'.'), "{bytes:?}");
                    assert_eq!(any(byte(x, 0x7f)), bytes.contains(&0x7f), "{bytes:?}");
                    let below = bytes.iter().any(|&c| c < 0x21);
                    assert_eq!(any(less(x, 0x21)), below, "{bytes:?}");
                    let either = bytes.contains(&b'.') || below;
                    assert_eq!(any(byte(x, b'.') | less(x, 0x21)), either, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn double_slashes_are_found_across_word_ends() {
        let naive = |p: &[u8]| p.windows(2).any(|w| w == b"//");
        let scan = |p: &[u8]| {
            any_word(p, double_slash).unwrap_or_else(|| p.windows(2).any(|w| w == b"//"))
        };
        for len in 0usize..40 {
            let plain: Vec<u8> = (0..len)
                .map(|i| if i % 3 == 0 { b'/' } else { b'a' })
                .collect();
            assert_eq!(scan(&plain), naive(&plain), "{plain:?}");
            for at in 0..len.saturating_sub(1) {
                let mut path = plain.clone();
                path[at] = b'/';
                path[at + 1] = b'/';
                assert!(scan(&path), "{path:?}");
            }
        }
        assert!(!scan("/é/€/𝄞/x".as_bytes()));
    }
}
