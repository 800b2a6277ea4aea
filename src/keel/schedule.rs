//! Keel's `pollSchedule`: `@every <Go duration>`, the `@hourly`-style descriptors, and cron
//! expressions with five fields (minute first) or six (seconds first, Keel's form); the next
//! time each one fires.

use std::fmt;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed poll schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `@every 1m30s`: a fixed delay between checks.
    Every(Duration),
    /// A cron expression (descriptors such as `@daily` are stored as their cron form).
    Cron(Box<CronSpec>),
}

/// One cron expression as bit sets of the values each field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Whether the day-of-month / day-of-week field was `*` or `?`: cron matches a day when
    /// both match if either is a star, and when either matches otherwise.
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid poll schedule {spec:?}: {problem}")]
pub struct ScheduleError {
    pub spec: String,
    pub problem: String,
}

/// Checks more often than once a second would only hammer registries.
const MIN_EVERY: Duration = Duration::from_secs(1);

impl Schedule {
    /// Parses a schedule as Keel writes it.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        let fail = |problem: String| ScheduleError {
            spec: spec.to_string(),
            problem,
        };
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(fail("empty".to_string()));
        }
        if let Some(rest) = trimmed.strip_prefix("@every") {
            let text = rest.trim();
            if text.is_empty() || !rest.starts_with(char::is_whitespace) {
                return Err(fail(
                    "@every needs a duration, e.g. \"@every 1m30s\"".into(),
                ));
            }
            let every = parse_go_duration(text).map_err(fail)?;
            if every.is_zero() {
                return Err(fail("@every needs a positive duration".into()));
            }
            // Keel's cron library rounds sub-second delays up to one second.
            let every = every.max(MIN_EVERY);
            return Ok(Schedule::Every(Duration::from_secs(every.as_secs())));
        }
        let expression = match trimmed {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            other if other.starts_with('@') => {
                return Err(fail(format!(
                    "unknown descriptor {other:?} (use @every <duration>, @hourly, @daily, @midnight, @weekly, @monthly, @yearly or a cron expression)"
                )));
            }
            other => other,
        };
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let fields: Vec<&str> = match fields.len() {
            6 => fields,
            // Five fields are the classic crontab: no seconds field, checks on the minute.
            5 => std::iter::once("0").chain(fields).collect(),
            n => {
                return Err(fail(format!(
                    "expected 5 cron fields (minute hour day-of-month month day-of-week) or 6 (with seconds first), found {n}"
                )));
            }
        };
        let field = |index: usize, range: &FieldRange| {
            parse_field(fields[index], range).map_err(|problem| {
                fail(format!(
                    "{} field {:?}: {problem}",
                    range.name, fields[index]
                ))
            })
        };
        let (seconds, _) = field(0, &SECONDS)?;
        let (minutes, _) = field(1, &MINUTES)?;
        let (hours, _) = field(2, &HOURS)?;
        let (days_of_month, dom_star) = field(3, &DAYS_OF_MONTH)?;
        let (months, _) = field(4, &MONTHS)?;
        let (mut days_of_week, dow_star) = field(5, &DAYS_OF_WEEK)?;
        // 7 is Sunday too, as in most crontabs.
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        Ok(Schedule::Cron(Box::new(CronSpec {
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star,
            dow_star,
        })))
    }

    /// The first time strictly after `after` at which the schedule fires, in `tz` (cron fields
    /// are wall-clock times). `None` when a cron expression never matches (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(every) => {
                let span = jiff::SignedDuration::try_from(*every).ok()?;
                after.checked_add(span).ok()
            }
            Schedule::Cron(spec) => spec.next_after(after, tz),
        }
    }

    /// The typical gap between two checks: what "the most frequent schedule" compares.
    pub fn period(&self, tz: &TimeZone) -> Duration {
        match self {
            Schedule::Every(every) => *every,
            Schedule::Cron(_) => {
                let now = Timestamp::now();
                let first = self.next_after(now, tz);
                let second = first.and_then(|t| self.next_after(t, tz));
                match (first, second) {
                    (Some(a), Some(b)) => b
                        .duration_since(a)
                        .try_into()
                        .unwrap_or(Duration::from_secs(86_400 * 366)),
                    _ => Duration::from_secs(86_400 * 366),
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Schedule::Every(every) => write!(f, "@every {}s", every.as_secs()),
            Schedule::Cron(_) => f.write_str("cron"),
        }
    }
}

impl CronSpec {
    fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // Start at the next whole second; search at most five years ahead, as cron libraries
        // do, so an impossible date (February 30th) ends instead of looping forever.
        let start = after.checked_add(1.second()).ok()?;
        let start = Timestamp::from_second(start.as_second()).ok()?;
        let mut t: DateTime = tz.to_datetime(start);
        let limit = t.year() + 5;
        'search: loop {
            if t.year() > limit {
                return None;
            }
            while !bit(self.months, t.month() as u32) {
                t = t
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .start_of_day();
                if t.year() > limit {
                    return None;
                }
            }
            while !self.day_matches(&t) {
                t = t.checked_add(1.day()).ok()?.start_of_day();
                if t.day() == 1 {
                    continue 'search;
                }
            }
            while !bit(self.hours, t.hour() as u32) {
                t = t
                    .with()
                    .minute(0)
                    .second(0)
                    .subsec_nanosecond(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                if t.hour() == 0 {
                    continue 'search;
                }
            }
            while !bit(self.minutes, t.minute() as u32) {
                t = t
                    .with()
                    .second(0)
                    .subsec_nanosecond(0)
                    .build()
                    .ok()?
                    .checked_add(1.minute())
                    .ok()?;
                if t.minute() == 0 {
                    continue 'search;
                }
            }
            while !bit(self.seconds, t.second() as u32) {
                t = t.checked_add(1.second()).ok()?;
                if t.second() == 0 {
                    continue 'search;
                }
            }
            let zoned = t.to_zoned(tz.clone()).ok()?;
            let found = zoned.timestamp();
            // A wall-clock time skipped by a daylight-saving jump resolves to a later instant;
            // one repeated by a fall-back resolves to the earlier, so never before `after`.
            if found > after {
                return Some(found);
            }
            t = t.checked_add(1.second()).ok()?;
        }
    }

    fn day_matches(&self, t: &DateTime) -> bool {
        let dom = bit(self.days_of_month, t.day() as u32);
        let dow = bit(
            self.days_of_week,
            t.weekday().to_sunday_zero_offset() as u32,
        );
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn bit(set: u64, value: u32) -> bool {
    value < 64 && set & (1 << value) != 0
}

struct FieldRange {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECONDS: FieldRange = FieldRange {
    name: "seconds",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTES: FieldRange = FieldRange {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: FieldRange = FieldRange {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: FieldRange = FieldRange {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: FieldRange = FieldRange {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAYS_OF_WEEK: FieldRange = FieldRange {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// A field's value set and whether it was a bare star (`*` or `?`).
fn parse_field(text: &str, range: &FieldRange) -> Result<(u64, bool), String> {
    let mut set = 0u64;
    let mut star = false;
    for part in text.split(',') {
        if part.is_empty() {
            return Err("empty list item".to_string());
        }
        let (span, step) = match part.split_once('/') {
            Some((span, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| format!("step {step:?} is not a number"))?;
                if step == 0 {
                    return Err("step must be at least 1".to_string());
                }
                (span, Some(step))
            }
            None => (part, None),
        };
        let (low, high) = if span == "*" || span == "?" {
            if step.is_none() {
                star = true;
            }
            (range.min, range.max)
        } else if let Some((low, high)) = span.split_once('-') {
            (value(low, range)?, value(high, range)?)
        } else {
            let low = value(span, range)?;
            // `N/step` means from N to the end of the range.
            (low, if step.is_some() { range.max } else { low })
        };
        if low > high {
            return Err(format!("range {low}-{high} runs backwards"));
        }
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            set |= 1 << v;
            v += step;
        }
    }
    Ok((set, star))
}

fn value(text: &str, range: &FieldRange) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = range.names.iter().position(|n| *n == lower) {
        // Month names count from 1, weekday names from 0 (Sunday).
        return Ok(index as u32 + range.min);
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number or a name"))?;
    if v < range.min || v > range.max {
        return Err(format!("{v} is outside {}-{}", range.min, range.max));
    }
    Ok(v)
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units (`1h30m`, `1.5s`,
/// `300ms`); a bare `0` is zero. Negative durations are refused: they mean nothing here.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 30s, 1m30s, 2h)");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("{text:?} is negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("{text:?} is missing a unit (ns, us, ms, s, m, h)")),
            other => return Err(format!("{text:?} has an unknown unit {other:?}")),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(bad)?;
        let mut scale = unit_nanos;
        for digit in fraction.chars() {
            scale /= 10;
            nanos += u128::from(digit.to_digit(10).unwrap_or(0)) * scale;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(bad)?;
    }
    // Go's Duration is an int64 of nanoseconds: about 292 years.
    if total_nanos > i64::MAX as u128 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    fn next(spec: &str, after: &str) -> String {
        Schedule::parse(spec)
            .expect("valid schedule")
            .next_after(at(after), &TimeZone::UTC)
            .expect("fires")
            .to_string()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("99999999999h").is_err());
    }

    #[test]
    fn every_and_descriptors() {
        assert_eq!(
            Schedule::parse("@every 1m30s"),
            Ok(Schedule::Every(Duration::from_secs(90)))
        );
        assert_eq!(
            Schedule::parse("@every 200ms"),
            Ok(Schedule::Every(Duration::from_secs(1)))
        );
        assert_eq!(
            next("@hourly", "2026-12-06T05:30:00Z"),
            "2026-12-06T06:00:00Z"
        );
        assert_eq!(
            next("@daily", "2026-12-06T05:30:00Z"),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            next("@midnight", "2026-12-06T00:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
        // 2026-12-06 is a Sunday.
        assert_eq!(
            next("@weekly", "2026-12-06T00:00:00Z"),
            "2026-12-13T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2026-12-06T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2026-12-06T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn six_fields_have_seconds_five_fields_do_not() {
        assert_eq!(
            next("*/10 * * * * *", "2026-12-06T05:30:03Z"),
            "2026-12-06T05:30:10Z"
        );
        assert_eq!(
            next("30 5 * * * *", "2026-12-06T05:30:03Z"),
            "2026-12-06T06:05:30Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-06T05:30:03Z"),
            "2026-12-06T05:45:00Z"
        );
        assert_eq!(
            next("0 9 * * mon-fri", "2026-12-06T05:30:00Z"),
            "2026-12-07T09:00:00Z"
        );
        assert_eq!(
            next("0 0 1,15 * *", "2026-12-06T05:30:00Z"),
            "2026-12-15T00:00:00Z"
        );
        assert_eq!(
            next("0 12 * DEC sun", "2026-12-06T12:00:00Z"),
            "2026-12-13T12:00:00Z"
        );
        // Day of month and day of week both restricted: either matches (cron's rule).
        assert_eq!(
            next("0 0 13 * 5", "2026-12-06T00:00:00Z"),
            "2026-12-11T00:00:00Z"
        );
        // 7 is Sunday as well.
        assert_eq!(
            next("0 0 * * 7", "2026-12-07T00:00:00Z"),
            "2026-12-13T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-12-06T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
    }

    #[test]
    fn impossible_dates_end() {
        let schedule = Schedule::parse("0 0 30 2 *").expect("parses");
        assert_eq!(
            schedule.next_after(at("2026-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        for (spec, problem) in [
            ("", "empty"),
            ("@every", "@every needs a duration"),
            ("@every 5", "missing a unit"),
            ("@every 0s", "positive"),
            ("@fortnightly", "unknown descriptor"),
            ("* * *", "found 3"),
            ("61 * * * *", "minutes field \"61\": 61 is outside 0-59"),
            ("* * * * * * *", "found 7"),
            ("*/0 * * * *", "step must be at least 1"),
            ("5-1 * * * *", "runs backwards"),
            ("* * * foo *", "\"foo\" is not a number or a name"),
        ] {
            let err = Schedule::parse(spec).expect_err(spec);
            assert!(err.to_string().contains(problem), "{spec:?}: {err}");
        }
    }

    #[test]
    fn periods() {
        let tz = TimeZone::UTC;
        assert_eq!(
            Schedule::parse("@every 5m").expect("parses").period(&tz),
            Duration::from_secs(300)
        );
        assert_eq!(
            Schedule::parse("*/10 * * * * *")
                .expect("parses")
                .period(&tz),
            Duration::from_secs(10)
        );
        assert_eq!(
            Schedule::parse("@hourly").expect("parses").period(&tz),
            Duration::from_secs(3600)
        );
    }
}
