//! Day windows in a fixed UTC offset, and RFC 3339 timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: i64 = 86_400;

/// The day `now` falls in, in a zone `offset_secs` east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DayWindow {
    /// Days since 1970-01-01 in that zone.
    pub day: i64,
    /// The next local midnight, in Unix seconds.
    pub reset_unix: i64,
    /// Whole seconds from `now` to the reset (at least 1).
    pub seconds_left: u64,
}

impl DayWindow {
    pub(crate) fn at(now: SystemTime, offset_secs: i32) -> Self {
        let now_secs = gw_core::clock::unix_seconds(now);
        let local = now_secs + i64::from(offset_secs);
        let day = local.div_euclid(DAY);
        let reset_unix = (day + 1) * DAY - i64::from(offset_secs);
        let seconds_left = u64::try_from(reset_unix - now_secs).unwrap_or(1).max(1);
        Self {
            day,
            reset_unix,
            seconds_left,
        }
    }

    pub(crate) fn reset_at(&self) -> SystemTime {
        match u64::try_from(self.reset_unix) {
            Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
            Err(_) => UNIX_EPOCH,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time in seconds.
pub(crate) use gw_core::calendar::format_rfc3339 as rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn day_window_in_an_offset() {
        // 2023-11-14T22:13:20Z
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let utc = DayWindow::at(now, 0);
        assert_eq!(rfc3339(utc.reset_unix), "2023-11-15T00:00:00Z");
        assert_eq!(utc.seconds_left, 6_400);
        // UTC+5:30: already 2023-11-15T03:43:20 local; next midnight is 18:30Z on the 15th.
        let ist = DayWindow::at(now, 5 * 3600 + 1800);
        assert_eq!(rfc3339(ist.reset_unix), "2023-11-15T18:30:00Z");
        assert_eq!(ist.day, utc.day + 1);
        // UTC-8: 14:13 local on the 14th; midnight local is 08:00Z on the 15th.
        let pst = DayWindow::at(now, -8 * 3600);
        assert_eq!(rfc3339(pst.reset_unix), "2023-11-15T08:00:00Z");
        assert_eq!(
            pst.reset_at(),
            UNIX_EPOCH + Duration::from_secs(1_700_035_200)
        );
    }
}
