//! Standard five-field cron schedules as CronJobs read them (robfig/cron's `ParseStandard`:
//! minute hour day-of-month month day-of-week, names, ranges, steps, `@daily`-style macros),
//! and the next matching minute after a time, in a time zone.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("expected exactly 5 fields, found {0}: {1}")]
    FieldCount(usize, String),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse int from {0}")]
    NotANumber(String),
    #[error("beginning of range ({0}) below minimum ({1}): {2}")]
    BelowMin(u32, u32, String),
    #[error("end of range ({0}) above maximum ({1}): {2}")]
    AboveMax(u32, u32, String),
    #[error("beginning of range ({0}) beyond end of range ({1}): {2}")]
    Reversed(u32, u32, String),
    #[error("step of range should be a positive number: {0}")]
    BadStep(String),
}

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day-of-month or day-of-week was `*` or `?`: then both must match, otherwise either
    /// may (cron's traditional OR of the two day fields).
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], first: u32) -> Result<u32, Error> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + first);
    }
    s.parse().map_err(|_| Error::NotANumber(s.into()))
}

/// One comma-separated part: `*`, `?`, `a`, `a-b`, each optionally `/step`.
fn range(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), Error> {
    let (body, step) = match expr.split_once('/') {
        Some((b, s)) => {
            let step: u32 = s.parse().map_err(|_| Error::NotANumber(s.into()))?;
            if step == 0 {
                return Err(Error::BadStep(expr.into()));
            }
            (b, Some(step))
        }
        None => (expr, None),
    };
    let star = body == "*" || body == "?";
    let (lo, hi) = if star {
        (min, max)
    } else {
        match body.split_once('-') {
            Some((a, b)) => (value(a, names, min)?, value(b, names, min)?),
            // `a/n` means from a to the end, every n.
            None => {
                let v = value(body, names, min)?;
                (v, if step.is_some() { max } else { v })
            }
        }
    };
    if lo < min {
        return Err(Error::BelowMin(lo, min, expr.into()));
    }
    if hi > max {
        return Err(Error::AboveMax(hi, max, expr.into()));
    }
    if lo > hi {
        return Err(Error::Reversed(lo, hi, expr.into()));
    }
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star && step == 1))
}

fn field(expr: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), Error> {
    let mut bits = 0;
    let mut star = false;
    for part in expr.split(',') {
        let (b, s) = range(part, min, max, names)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(Error::Descriptor(s.into())),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(Error::FieldCount(fields.len(), spec.into()));
        }
        let (minute, _) = field(fields[0], 0, 59, &[])?;
        let (hour, _) = field(fields[1], 0, 23, &[])?;
        let (dom, dom_star) = field(fields[2], 1, 31, &[])?;
        let (month, _) = field(fields[3], 1, 12, MONTHS)?;
        let (mut dow, dow_star) = field(fields[4], 0, 7, DAYS)?;
        // 7 is Sunday too.
        if dow & (1 << 7) != 0 {
            dow |= 1;
        }
        Ok(Schedule {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first whole minute strictly after `after` that the schedule matches, read in `tz`;
    /// None if there is none within about five years (as robfig gives up).
    pub fn next(&self, after: jiff::Timestamp, tz: &TimeZone) -> Option<jiff::Timestamp> {
        let start = after.to_zoned(tz.clone()).datetime();
        let mut t = DateTime::from_parts(
            start.date(),
            Time::new(start.hour(), start.minute(), 0, 0).ok()?,
        )
        .checked_add(jiff::Span::new().minutes(1))
        .ok()?;
        let limit = start.year() + 5;
        while t.year() <= limit {
            if self.month & (1 << t.month()) == 0 {
                let first = t.date().first_of_month();
                t = first
                    .checked_add(jiff::Span::new().months(1))
                    .ok()?
                    .to_datetime(Time::midnight());
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().tomorrow().ok()?.to_datetime(Time::midnight());
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = DateTime::from_parts(t.date(), Time::new(t.hour(), 0, 0, 0).ok()?)
                    .checked_add(jiff::Span::new().hours(1))
                    .ok()?;
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t = t.checked_add(jiff::Span::new().minutes(1)).ok()?;
                continue;
            }
            let at = t.to_zoned(tz.clone()).ok()?.timestamp();
            // A minute skipped by a DST change maps before `after`: keep looking.
            if at > after {
                return Some(at);
            }
            t = t.checked_add(jiff::Span::new().minutes(1)).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, after: &str) -> String {
        Schedule::parse(spec)
            .unwrap()
            .next(ts(after), &TimeZone::UTC)
            .unwrap()
            .to_string()
    }

    #[test]
    fn every_minute_and_every_n_minutes_land_on_whole_minutes() {
        assert_eq!(
            next("* * * * *", "2025-03-01T10:00:30Z"),
            "2025-03-01T10:01:00Z"
        );
        assert_eq!(
            next("*/1 * * * *", "2025-03-01T10:00:00Z"),
            "2025-03-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2025-03-01T10:07:00Z"),
            "2025-03-01T10:15:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2025-03-01T10:30:00Z"),
            "2025-03-01T10:45:00Z"
        );
    }

    #[test]
    fn hours_days_months_and_names_roll_over() {
        assert_eq!(
            next("30 2 * * *", "2025-03-01T10:00:00Z"),
            "2025-03-02T02:30:00Z"
        );
        assert_eq!(
            next("0 0 1 jan *", "2025-03-01T10:00:00Z"),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2025-12-15T00:00:00Z"),
            "2026-01-01T00:00:00Z"
        );
        // 2025-03-01 is a Saturday: the next Monday-to-Friday 09:00 is Monday the 3rd.
        assert_eq!(
            next("0 9 * * MON-FRI", "2025-03-01T10:00:00Z"),
            "2025-03-03T09:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2025-03-01T10:00:00Z"),
            "2025-03-02T00:00:00Z"
        );
    }

    #[test]
    fn restricted_day_of_month_and_day_of_week_match_either() {
        // The 13th, or any Friday: Friday 2025-03-07 comes first.
        assert_eq!(
            next("0 0 13 * 5", "2025-03-01T00:00:00Z"),
            "2025-03-07T00:00:00Z"
        );
        assert_eq!(
            next("0 0 13 * *", "2025-03-01T00:00:00Z"),
            "2025-03-13T00:00:00Z"
        );
    }

    #[test]
    fn time_zones_shift_the_wall_clock() {
        let s = Schedule::parse("0 9 * * *").unwrap();
        let tz = TimeZone::fixed(jiff::tz::offset(2));
        let got = s.next(ts("2025-03-01T00:00:00Z"), &tz).unwrap();
        assert_eq!(got.to_string(), "2025-03-01T07:00:00Z");
    }

    #[test]
    fn bad_schedules_are_refused_with_robfigs_words() {
        assert_eq!(
            Schedule::parse("* * * *"),
            Err(Error::FieldCount(4, "* * * *".into()))
        );
        assert!(matches!(
            Schedule::parse("61 * * * *"),
            Err(Error::AboveMax(61, 59, _))
        ));
        assert!(matches!(
            Schedule::parse("*/0 * * * *"),
            Err(Error::BadStep(_))
        ));
        assert!(matches!(
            Schedule::parse("@fortnightly"),
            Err(Error::Descriptor(_))
        ));
        assert!(Schedule::parse("5-1 * * * *").is_err());
    }
}
