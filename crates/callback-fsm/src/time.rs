//! [`Timestamp`]: an RFC 3339 instant with nanosecond precision.

use std::fmt;

use gw_core::calendar::{civil_from_days, days_from_civil};

/// An instant, as nanoseconds since the Unix epoch (UTC), parsed from RFC 3339.
///
/// The range is that of `i64` nanoseconds (1677-09-21 to 2262-04-11); fractions finer
/// than a nanosecond are truncated. Leap seconds (`:60`) are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampError(&'static str);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an RFC 3339 timestamp: {}", self.0)
    }
}

impl std::error::Error for TimestampError {}

impl Timestamp {
    /// From nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T` and `Z` in either case).
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(TimestampError("too short"));
        }
        let year = digits(b, 0, 4)?;
        expect(b, 4, b'-')?;
        let month = digits(b, 5, 2)?;
        expect(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        if !matches!(b[10], b'T' | b't') {
            return Err(TimestampError("expected 'T' between date and time"));
        }
        let hour = digits(b, 11, 2)?;
        expect(b, 13, b':')?;
        let minute = digits(b, 14, 2)?;
        expect(b, 16, b':')?;
        let second = digits(b, 17, 2)?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(TimestampError("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimestampError("no such time of day"));
        }
        let mut i = 19;
        let mut frac: i64 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    frac = frac * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return Err(TimestampError("empty fraction"));
            }
            for _ in n..9 {
                frac *= 10;
            }
        }
        let offset_secs: i64 = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() => {
                let oh = digits(b, i + 1, 2)?;
                expect(b, i + 3, b':')?;
                let om = digits(b, i + 4, 2)?;
                if oh > 23 || om > 59 {
                    return Err(TimestampError("bad offset"));
                }
                let off = i64::from(oh * 3600 + om * 60);
                if sign == b'+' { off } else { -off }
            }
            _ => return Err(TimestampError("expected 'Z' or a ±HH:MM offset at the end")),
        };
        let days = days_from_civil(i64::from(year), month, day);
        let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
        secs.checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(frac))
            .map(Self)
            .ok_or(TimestampError("outside the supported range (1677-2262)"))
    }
}

impl fmt::Display for Timestamp {
    /// Canonical UTC form: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, fraction without trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let tod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            tod / 3600,
            tod % 3600 / 60,
            tod % 60
        )?;
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Result<u32, TimestampError> {
    let mut v = 0u32;
    for &c in b.get(at..at + n).ok_or(TimestampError("truncated"))? {
        if !c.is_ascii_digit() {
            return Err(TimestampError("expected a digit"));
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Ok(v)
}

fn expect(b: &[u8], at: usize, c: u8) -> Result<(), TimestampError> {
    if b.get(at) == Some(&c) {
        Ok(())
    } else {
        Err(TimestampError("unexpected separator"))
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Timestamp, TimestampError> {
        Timestamp::parse_rfc3339(s)
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(p("1970-01-01T00:00:00Z").unwrap().unix_nanos(), 0);
        assert_eq!(
            p("2026-02-23T10:00:00+01:00").unwrap(),
            p("2026-02-23T09:00:00Z").unwrap()
        );
        assert_eq!(
            p("2026-02-23t09:00:00.5z").unwrap().to_string(),
            "2026-02-23T09:00:00.5Z"
        );
        assert_eq!(
            p("2024-02-29T23:59:59.123456789-00:30")
                .unwrap()
                .to_string(),
            "2024-03-01T00:29:59.123456789Z"
        );
        // Sub-nanosecond digits are truncated.
        assert_eq!(
            p("2026-01-01T00:00:00.0000000019Z").unwrap().unix_nanos() % 1_000_000_000,
            1
        );
        assert!(p("1969-12-31T23:59:59Z").unwrap().unix_nanos() < 0);
        assert_eq!(
            p("1900-03-01T00:00:00Z").unwrap().to_string(),
            "1900-03-01T00:00:00Z"
        );
    }

    #[test]
    fn refuses_non_rfc3339() {
        for bad in [
            "",
            "2026-02-23",
            "2026-02-23 09:00:00Z",
            "2026-02-23T09:00:00",
            "2026-02-23T09:00:00+0100",
            "2026-02-30T09:00:00Z",
            "2023-02-29T09:00:00Z",
            "2026-13-01T09:00:00Z",
            "2026-02-23T24:00:00Z",
            "2026-02-23T09:00:60Z",
            "2026-02-23T09:00:00.Z",
            "2026-02-23T09:00:00ZZ",
            "2026-02-23T09:00:00+24:00",
            "9999-12-31T23:59:59Z",
            "1600-01-01T00:00:00Z",
            "٢٠٢٦-02-23T09:00:00Z",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
