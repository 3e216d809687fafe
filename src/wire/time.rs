//! ISO-8601 times with millisecond precision (`2024-05-01T14:02:03.120Z`)
//! <-> ms since the epoch, as Genesys writes them in intervals, records
//! and job dates.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::IntervalError;

/// Parses an ISO-8601 (RFC 3339) time to ms since the epoch.
pub fn parse_iso_ms(s: &str) -> Result<i64, IntervalError> {
    iso_ms_of(s.trim()).ok_or_else(|| IntervalError::Time(s.to_string()))
}

/// An RFC 3339 time in ms since the epoch, its digits below the
/// millisecond cut off (before 1970 too, as [`iso_ms`] writes it); `None`
/// if `s` is not one.
pub fn iso_ms_of(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    // Whole seconds and the millisecond digits: no 128-bit division.
    Some(t.unix_timestamp() * 1000 + i64::from(t.millisecond()))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as bytes.
pub type IsoMs = [u8; 24];

/// Formats ms since the epoch as `2024-05-01T14:02:03.120Z`.
pub fn iso_ms(ms: i64) -> String {
    match iso_ms_form(ms) {
        Some(b) => b.iter().map(|&c| char::from(c)).collect(),
        // Years the 4-digit form cannot hold.
        None => {
            let (year, month, day) = civil(ms.div_euclid(86_400_000));
            let in_day = ms.rem_euclid(86_400_000);
            format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
                in_day / 3_600_000,
                in_day / 60_000 % 60,
                in_day / 1000 % 60,
                in_day % 1000
            )
        }
    }
}

/// [`iso_ms`] without allocating, for years 0 to 9999 (`None` outside).
pub fn iso_ms_form(ms: i64) -> Option<IsoMs> {
    let (year, month, day) = civil(ms.div_euclid(86_400_000));
    let year = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
    let in_day = ms.rem_euclid(86_400_000) as u32;
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    Some(out)
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm):
/// fast, and it never fails, which matters on the emulator's hot path of
/// record generation and on the transform's.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_milliseconds() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_ms_form(253_402_300_800_000), None);
        assert_eq!(iso_ms(253_402_300_800_000), "10000-01-01T00:00:00.000Z");
        for ms in [1_714_521_723_120i64, 4_102_444_800_000, 1_709_164_800_000] {
            assert_eq!(parse_iso_ms(&iso_ms(ms)).unwrap(), ms);
        }
        assert_eq!(parse_iso_ms("2024-05-01T14:02:03.120+02:00"), Ok(1_714_564_923_120));
    }

    #[test]
    fn digits_below_the_millisecond_are_cut_off_on_either_side_of_1970() {
        assert_eq!(iso_ms_of("2024-05-01T14:02:03.1209Z"), Some(1_714_572_123_120));
        assert_eq!(iso_ms_of("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(iso_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso_ms_of("2024-05-01T14:02:03"), None, "an offset is required");
        assert_eq!(iso_ms_of("yesterday"), None);
    }
}
