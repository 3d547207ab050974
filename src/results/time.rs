//! UTC timestamps without a calendar crate: `20261124T111500Z` for file names
//! and `2026-11-24T11:15:00Z` for `started_at`.

use std::time::{SystemTime, UNIX_EPOCH};

/// A wall-clock instant in UTC, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Calendar fields: year, month (1-12), day, hour, minute, second.
    pub fields: (i64, u32, u32, u32, u32, u32),
}

impl Utc {
    /// The time now.
    pub fn now() -> Utc {
        Utc::from_system(SystemTime::now())
    }

    /// Breaks a `SystemTime` down (times before 1970 become 1970).
    pub fn from_system(t: SystemTime) -> Utc {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let rem = rem as u32;
        Utc {
            fields: (y, m, d, rem / 3600, rem / 60 % 60, rem % 60),
        }
    }

    /// `yyyymmddThhmmssZ`, for file names.
    pub fn compact(&self) -> String {
        let (y, mo, d, h, mi, s) = self.fields;
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
    }

    /// RFC 3339, `yyyy-mm-ddThh:mm:ssZ`.
    pub fn rfc3339(&self) -> String {
        let (y, mo, d, h, mi, s) = self.fields;
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let t = Utc::from_system(UNIX_EPOCH);
        assert_eq!(t.rfc3339(), "1970-01-01T00:00:00Z");
        // 2026-11-24T11:15:00Z
        let t = Utc::from_system(UNIX_EPOCH + Duration::from_secs(1_795_518_900));
        assert_eq!(t.compact(), "20261124T111500Z");
        // A leap day.
        let t = Utc::from_system(UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(t.rfc3339(), "2000-02-29T00:00:00Z");
    }
}
