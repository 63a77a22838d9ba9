//! Wall-clock time, read in one place: Unix seconds and milliseconds, and the RFC 3339 form
//! (UTC, milliseconds) that every timestamp of the contract uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats a time as RFC 3339 UTC with milliseconds: `2026-11-22T10:00:00.123Z`.
pub fn rfc3339_ms(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Now, as [`rfc3339_ms`] writes it.
pub fn now_rfc3339_ms() -> String {
    rfc3339_ms(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_milliseconds_in_utc() {
        let t = time::macros::datetime!(2026-11-22 11:00:00.1234 +01:00);
        assert_eq!(rfc3339_ms(t), "2026-11-22T10:00:00.123Z");
        assert!(unix_millis() / 1000 >= unix_secs().saturating_sub(1));
    }
}
