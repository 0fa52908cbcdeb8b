//! Calendar periods (day, month) in a fixed UTC offset.

use std::fmt;

use gw_core::calendar::{civil_from_days, days_from_civil};

/// A fixed offset from UTC that decides where days and months begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UtcOffset(i32);

impl UtcOffset {
    /// UTC itself.
    pub const UTC: Self = Self(0);

    /// An offset of `hours` (east of UTC is positive), clamped to ±18 hours.
    pub const fn from_hours(hours: i32) -> Self {
        Self::from_minutes(hours.saturating_mul(60))
    }

    /// An offset of `minutes` (east of UTC is positive), clamped to ±18 hours.
    pub const fn from_minutes(minutes: i32) -> Self {
        let m = if minutes > 18 * 60 {
            18 * 60
        } else if minutes < -18 * 60 {
            -18 * 60
        } else {
            minutes
        };
        Self(m * 60)
    }

    /// The offset in seconds.
    pub const fn seconds(self) -> i32 {
        self.0
    }
}

/// How long a scope's budget lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeriodKind {
    /// A calendar day.
    Day,
    /// A calendar month.
    Month,
}

/// One calendar day or month, in the offset it was computed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// Local days since 1970-01-01.
    Day(i64),
    /// Local months since year 0 (`year * 12 + month - 1`).
    Month(i64),
}

impl Period {
    /// The period of `kind` containing the instant `unix` (seconds) in `offset`.
    pub fn containing(kind: PeriodKind, unix: i64, offset: UtcOffset) -> Self {
        let day = (unix + i64::from(offset.seconds())).div_euclid(86_400);
        match kind {
            PeriodKind::Day => Self::Day(day),
            PeriodKind::Month => {
                let (y, m, _) = civil_from_days(day);
                Self::Month(y * 12 + i64::from(m) - 1)
            }
        }
    }

    /// The instant (unix seconds) the next period starts.
    pub fn ends_at(self, offset: UtcOffset) -> i64 {
        let next_day = match self {
            Self::Day(d) => d + 1,
            Self::Month(m) => {
                let next = m + 1;
                days_from_civil(next.div_euclid(12), next.rem_euclid(12) as u32 + 1, 1)
            }
        };
        next_day * 86_400 - i64::from(offset.seconds())
    }
}

impl fmt::Display for Period {
    /// `2026-11-22` for a day, `2026-11` for a month.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Day(d) => {
                let (y, m, d) = civil_from_days(d);
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            Self::Month(m) => write!(f, "{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-22T07:58:36Z
    const NOW: i64 = 1_795_334_316;

    #[test]
    fn labels_and_boundaries_in_utc() {
        let day = Period::containing(PeriodKind::Day, NOW, UtcOffset::UTC);
        let month = Period::containing(PeriodKind::Month, NOW, UtcOffset::UTC);
        assert_eq!(day.to_string(), "2026-11-22");
        assert_eq!(month.to_string(), "2026-11");
        // 2026-11-23T00:00:00Z and 2026-12-01T00:00:00Z
        assert_eq!(day.ends_at(UtcOffset::UTC), 1_795_392_000);
        assert_eq!(month.ends_at(UtcOffset::UTC), 1_796_083_200);
    }

    #[test]
    fn offset_moves_the_boundary() {
        // 23:30 UTC on Nov 30 is already Dec 1 in UTC+1 and still Nov 30 in UTC-5.
        let t = 1_796_083_200 - 1_800;
        let plus1 = UtcOffset::from_hours(1);
        assert_eq!(
            Period::containing(PeriodKind::Month, t, plus1).to_string(),
            "2026-12"
        );
        assert_eq!(
            Period::containing(PeriodKind::Day, t, UtcOffset::from_hours(-5)).to_string(),
            "2026-11-30"
        );
        let d = Period::containing(PeriodKind::Day, t, plus1);
        assert_eq!(d.ends_at(plus1), 1_796_083_200 + 86_400 - 3_600);
    }

    #[test]
    fn december_rolls_into_january_and_leap_days_exist() {
        let dec = Period::Month(2026 * 12 + 11);
        assert_eq!(dec.to_string(), "2026-12");
        assert_eq!(
            Period::containing(
                PeriodKind::Month,
                dec.ends_at(UtcOffset::UTC),
                UtcOffset::UTC
            )
            .to_string(),
            "2027-01"
        );
        // 2028-02-29T12:00:00Z
        assert_eq!(
            Period::containing(PeriodKind::Day, 1_835_438_400, UtcOffset::UTC).to_string(),
            "2028-02-29"
        );
        assert_eq!(UtcOffset::from_hours(30).seconds(), 18 * 3_600);
    }
}
