//! Go's `time` package as Sprig and Helm use it: a `time.Time` (an instant and the zone it is
//! shown in), `Time.Format` and `time.Parse` with Go's reference layouts, and `time.Duration`'s
//! text. Go's `time.Local` is the system zone (`TZ`, else /etc/localtime) and named zones come
//! from the system's zoneinfo, as Go loads them (through jiff's zone database reader).
//!
//! The calendar arithmetic stays hand-written (`civil_from_days`, `days_from_civil`): Go's
//! `time.Time` covers years far beyond jiff's -9999..=9999 (`date` of a huge unix second prints
//! such years); one implementation serves formatting, parsing and go-yaml's timestamp check.

use std::time::{SystemTime, UNIX_EPOCH};

pub const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// The location a Go `time.Time` is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    Utc,
    /// `time.Local`.
    Local,
    /// A zone from the zoneinfo database (`dateInZone ... "Europe/Paris"`).
    Named(String),
    /// An unnamed fixed offset in seconds (a parsed `+02:00`), printed like Go as `+0200`.
    Fixed(i32),
}

impl Zone {
    /// Go's `time.LoadLocation` (failures become UTC, as Sprig does).
    pub fn load(name: &str) -> Zone {
        match name {
            "" | "UTC" => Zone::Utc,
            "Local" => Zone::Local,
            other => match jiff::tz::TimeZone::get(other) {
                Ok(_) => Zone::Named(other.to_string()),
                Err(_) => Zone::Utc,
            },
        }
    }

    fn time_zone(&self) -> Option<jiff::tz::TimeZone> {
        match self {
            Zone::Local => Some(jiff::tz::TimeZone::system()),
            Zone::Named(name) => jiff::tz::TimeZone::get(name).ok(),
            _ => None,
        }
    }

    /// The offset east of UTC in seconds and the zone abbreviation at `unix` seconds.
    fn at(&self, unix: i64) -> (i32, Option<String>) {
        match self {
            Zone::Utc => (0, Some("UTC".to_string())),
            Zone::Fixed(offset) => (*offset, None),
            zone => {
                let Some(tz) = zone.time_zone() else {
                    return (0, Some("UTC".to_string()));
                };
                let Ok(timestamp) = jiff::Timestamp::from_second(unix) else {
                    return (0, Some("UTC".to_string()));
                };
                let info = tz.to_offset_info(timestamp);
                (
                    info.offset().seconds(),
                    Some(info.abbreviation().to_string()),
                )
            }
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Zone::Utc => "UTC".to_string(),
            Zone::Local => "Local".to_string(),
            Zone::Named(name) => name.clone(),
            Zone::Fixed(offset) => format!("fixed:{offset}"),
        }
    }

    pub fn decode(text: &str) -> Zone {
        match text.strip_prefix("fixed:") {
            Some(offset) => Zone::Fixed(offset.parse().unwrap_or(0)),
            None => Zone::load(text),
        }
    }
}

/// A Go `time.Time`: an instant (nanoseconds since the Unix epoch) and the zone it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoTime {
    /// Nanoseconds since the Unix epoch.
    pub nanos: i128,
    pub zone: Zone,
}

impl GoTime {
    pub fn now() -> GoTime {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        GoTime {
            nanos,
            zone: Zone::Local,
        }
    }

    /// The instant `nanos` after the Unix epoch, shown in `zone`.
    pub fn from_unix_nanos(nanos: i128, zone: Zone) -> GoTime {
        GoTime { nanos, zone }
    }

    pub fn from_unix(seconds: i64) -> GoTime {
        GoTime {
            nanos: i128::from(seconds) * NANOS_PER_SECOND,
            zone: Zone::Local,
        }
    }

    pub fn unix(&self) -> i64 {
        self.nanos.div_euclid(NANOS_PER_SECOND) as i64
    }

    pub fn nanosecond(&self) -> i64 {
        self.nanos.rem_euclid(NANOS_PER_SECOND) as i64
    }

    /// (year, month 1–12, day, hour, minute, second, weekday 0=Sunday, yearday 1–366).
    pub fn civil(&self) -> (i64, i64, i64, i64, i64, i64, i64, i64) {
        let seconds = self.unix() + i64::from(self.offset());
        let days = seconds.div_euclid(86_400);
        let rem = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7);
        let yearday = days - days_from_civil(year, 1, 1) + 1;
        (
            year,
            month,
            day,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            weekday,
            yearday,
        )
    }

    /// The same instant `nanos` later, in the same zone.
    pub fn plus(&self, nanos: i128) -> GoTime {
        GoTime {
            nanos: self.nanos + nanos,
            zone: self.zone.clone(),
        }
    }

    /// The same instant shown in another zone (`Time.In`).
    pub fn in_zone(&self, zone: Zone) -> GoTime {
        GoTime {
            nanos: self.nanos,
            zone,
        }
    }

    fn offset(&self) -> i32 {
        self.zone.at(self.unix()).0
    }

    /// The zone's abbreviation, or Go's name for an unnamed fixed zone (`+0200`).
    fn zone_name(&self) -> String {
        match self.zone.at(self.unix()).1 {
            Some(name) => name,
            None => self.offset_text(false, false),
        }
    }

    /// `+hh`, `+hhmm`, `+hh:mm` (and `:ss` when asked).
    fn offset_text(&self, colon: bool, seconds: bool) -> String {
        let offset = self.offset();
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        let (h, m, sec) = (abs / 3600, abs / 60 % 60, abs % 60);
        let sep = if colon { ":" } else { "" };
        let mut out = format!("{sign}{h:02}{sep}{m:02}");
        if seconds {
            out.push_str(&format!("{sep}{sec:02}"));
        }
        out
    }

    /// Go's `Time.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        format_time(self, layout)
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The number of days in `month` (1–12) of `year` in the proleptic Gregorian calendar.
pub fn days_in_month(year: i64, month: i64) -> i64 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(next_year, next_month, 1) - days_from_civil(year, month, 1)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The layout elements Go's `nextStdChunk` recognizes, longest first where prefixes overlap.
const TOKENS: &[&str] = &[
    "January",
    "Jan",
    "Monday",
    "Mon",
    "MST",
    "2006",
    "06",
    "01",
    "02",
    "03",
    "04",
    "05",
    "002",
    "_2",
    "15",
    "1",
    "2",
    "3",
    "4",
    "5",
    "PM",
    "pm",
    "Z07:00:00",
    "Z07:00",
    "Z0700",
    "Z07",
    "-07:00:00",
    "-07:00",
    "-0700",
    "-07",
];

pub fn format_time(t: &GoTime, layout: &str) -> String {
    let (year, month, day, hour, minute, second, weekday, yearday) = t.civil();
    let month_name = MONTHS.get((month - 1) as usize).copied().unwrap_or("");
    let day_name = DAYS.get(weekday as usize).copied().unwrap_or("");
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        // Fractional seconds: .000 / .999 (or with a comma) after any character.
        if (rest.starts_with(".0")
            || rest.starts_with(".9")
            || rest.starts_with(",0")
            || rest.starts_with(",9"))
            && let Some(digit) = rest.as_bytes().get(1).copied()
        {
            let count = rest[1..].bytes().take_while(|b| *b == digit).count();
            let next = rest.as_bytes().get(1 + count).copied();
            if !next.is_some_and(|b| b.is_ascii_digit()) {
                let digits = format!("{:09}", t.nanosecond());
                let mut frac = digits[..count.min(9)].to_string();
                if digit == b'9' {
                    frac = frac.trim_end_matches('0').to_string();
                    if !frac.is_empty() {
                        out.push('.');
                        out.push_str(&frac);
                    }
                } else {
                    out.push(char::from(rest.as_bytes()[0]));
                    out.push_str(&frac);
                }
                rest = &rest[1 + count..];
                continue;
            }
        }
        let token = TOKENS.iter().find(|tok| {
            rest.starts_with(**tok)
                && !(**tok == "Jan" && rest.starts_with("January"))
                && !(**tok == "Mon" && rest.starts_with("Monday"))
                && !(**tok == "Mon" && rest[3..].starts_with(|c: char| c.is_ascii_lowercase()))
                && !(**tok == "Jan" && rest[3..].starts_with(|c: char| c.is_ascii_lowercase()))
        });
        let Some(token) = token else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let text = match *token {
            "January" => month_name.to_string(),
            "Jan" => month_name.chars().take(3).collect(),
            "Monday" => day_name.to_string(),
            "Mon" => day_name.chars().take(3).collect(),
            "MST" => t.zone_name(),
            "2006" => format!("{year:04}"),
            "06" => format!("{:02}", year.rem_euclid(100)),
            "01" => format!("{month:02}"),
            "02" => format!("{day:02}"),
            "03" => format!("{hour12:02}"),
            "04" => format!("{minute:02}"),
            "05" => format!("{second:02}"),
            "002" => format!("{yearday:03}"),
            "_2" => format!("{day:>2}"),
            "15" => format!("{hour:02}"),
            "1" => month.to_string(),
            "2" => day.to_string(),
            "3" => hour12.to_string(),
            "4" => minute.to_string(),
            "5" => second.to_string(),
            "PM" => if hour >= 12 { "PM" } else { "AM" }.to_string(),
            "pm" => if hour >= 12 { "pm" } else { "am" }.to_string(),
            tok if tok.starts_with('Z') && t.offset() == 0 => "Z".to_string(),
            "Z07:00:00" | "-07:00:00" => t.offset_text(true, true),
            "Z07:00" | "-07:00" => t.offset_text(true, false),
            "Z0700" | "-0700" => t.offset_text(false, false),
            _ => t.offset_text(false, false)[..3].to_string(),
        };
        out.push_str(&text);
        rest = &rest[token.len()..];
    }
    out
}

/// Go's `time.ParseInLocation(layout, value, UTC)` for the numeric layout elements.
pub fn parse_time(layout: &str, value: &str) -> Result<GoTime, String> {
    let err = || {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            crate::strconv::quote(value),
            crate::strconv::quote(layout),
            crate::strconv::quote(value),
            crate::strconv::quote(layout)
        )
    };
    let (mut year, mut month, mut day, mut hour, mut minute, mut second) =
        (1i64, 1i64, 1i64, 0i64, 0i64, 0i64);
    let mut nanos = 0i64;
    let mut offset: Option<i64> = None;
    let mut pm: Option<bool> = None;
    let mut l = layout;
    let mut v = value;
    let take_digits = |v: &mut &str, min: usize, max: usize| -> Option<i64> {
        let count = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if count < min {
            return None;
        }
        let n = v[..count].parse().ok()?;
        *v = &v[count..];
        Some(n)
    };
    while !l.is_empty() {
        if (l.starts_with(".0") || l.starts_with(".9")) && v.starts_with('.') {
            let count = l[1..]
                .bytes()
                .take_while(|b| *b == b'0' || *b == b'9')
                .count();
            l = &l[1 + count..];
            v = &v[1..];
            let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
            v = &v[digits.len()..];
            let padded = format!("{digits:0<9}");
            nanos = padded[..9].parse().map_err(|_| err())?;
            continue;
        }
        let token = TOKENS.iter().find(|tok| l.starts_with(**tok)).copied();
        match token {
            None => {
                let c = l.chars().next().unwrap_or(' ');
                if !v.starts_with(c) {
                    return Err(err());
                }
                l = &l[c.len_utf8()..];
                v = &v[c.len_utf8()..];
            }
            Some(tok) => {
                l = &l[tok.len()..];
                match tok {
                    "2006" => year = take_digits(&mut v, 4, 4).ok_or_else(err)?,
                    "06" => year = 2000 + take_digits(&mut v, 2, 2).ok_or_else(err)?,
                    "01" => month = take_digits(&mut v, 2, 2).ok_or_else(err)?,
                    "1" => month = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                    "02" => day = take_digits(&mut v, 2, 2).ok_or_else(err)?,
                    "2" | "_2" => {
                        v = v.trim_start_matches(' ');
                        day = take_digits(&mut v, 1, 2).ok_or_else(err)?
                    }
                    "15" => hour = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                    "03" | "3" => hour = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                    "04" | "4" => minute = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                    "05" | "5" => second = take_digits(&mut v, 1, 2).ok_or_else(err)?,
                    "PM" | "pm" => {
                        let upper = v.get(..2).map(str::to_ascii_uppercase);
                        pm = match upper.as_deref() {
                            Some("PM") => Some(true),
                            Some("AM") => Some(false),
                            _ => return Err(err()),
                        };
                        v = &v[2..];
                    }
                    "January" | "Jan" => {
                        let found = MONTHS.iter().position(|m| {
                            let name = if tok == "Jan" { &m[..3] } else { m };
                            v.starts_with(name)
                        });
                        let index = found.ok_or_else(err)?;
                        let name_len = if tok == "Jan" { 3 } else { MONTHS[index].len() };
                        month = index as i64 + 1;
                        v = &v[name_len..];
                    }
                    "Monday" | "Mon" => {
                        let found = DAYS.iter().find(|d| {
                            let name = if tok == "Mon" { &d[..3] } else { d };
                            v.starts_with(name)
                        });
                        let name = found.ok_or_else(err)?;
                        v = &v[if tok == "Mon" { 3 } else { name.len() }..];
                    }
                    "MST" => {
                        let len = v.bytes().take_while(u8::is_ascii_uppercase).count();
                        v = &v[len..];
                    }
                    tok => {
                        if tok.starts_with('Z') && v.starts_with('Z') {
                            v = &v[1..];
                            offset = Some(0);
                            continue;
                        }
                        let sign = match v.as_bytes().first() {
                            Some(b'+') => 1,
                            Some(b'-') => -1,
                            _ => return Err(err()),
                        };
                        v = &v[1..];
                        let h = take_digits(&mut v, 2, 2).ok_or_else(err)?;
                        let mut m = 0;
                        if tok.contains(':') {
                            if v.starts_with(':') {
                                v = &v[1..];
                                m = take_digits(&mut v, 2, 2).ok_or_else(err)?;
                            }
                        } else if tok.len() > 4 {
                            m = take_digits(&mut v, 2, 2).ok_or_else(err)?;
                        }
                        offset = Some(sign * (h * 3600 + m * 60));
                    }
                }
            }
        }
    }
    if !v.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            crate::strconv::quote(value),
            crate::strconv::quote(v)
        ));
    }
    if let Some(pm) = pm {
        if pm && hour < 12 {
            hour += 12;
        } else if !pm && hour == 12 {
            hour = 0;
        }
    }
    if !(1..=12).contains(&month) {
        return Err(format!(
            "parsing time {}: month out of range",
            crate::strconv::quote(value)
        ));
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "parsing time {}: day out of range",
            crate::strconv::quote(value)
        ));
    }
    let days = days_from_civil(year, month, day);
    let wall = days * 86_400 + hour * 3600 + minute * 60 + second;
    let (seconds, zone) = match offset {
        Some(offset) => {
            let seconds = wall - offset;
            // Go uses Local when its offset at that instant is the parsed one.
            let zone = if Zone::Local.at(seconds).0 as i64 == offset {
                Zone::Local
            } else if offset == 0 && layout_has_z(layout) && value_has_z(value) {
                Zone::Utc
            } else {
                Zone::Fixed(offset as i32)
            };
            (seconds, zone)
        }
        None => {
            // A wall time in Local: take the offset in effect at about that time.
            let guess = Zone::Local.at(wall).0 as i64;
            let offset = Zone::Local.at(wall - guess).0 as i64;
            (wall - offset, Zone::Local)
        }
    };
    Ok(GoTime {
        nanos: i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos),
        zone,
    })
}

fn layout_has_z(layout: &str) -> bool {
    layout.contains("Z07")
}

fn value_has_z(value: &str) -> bool {
    value.contains('Z')
}

/// Go's `time.Duration.String()`.
pub fn duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let negative = nanos < 0;
    let u = nanos.unsigned_abs();
    let sign = if negative { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(u, scale));
    }
    let hours = u / 3_600_000_000_000;
    let minutes = u / 60_000_000_000 % 60;
    let seconds = fraction(u % 60_000_000_000, 1_000_000_000);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `time.ParseDuration`.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", crate::strconv::quote(text));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::strconv::quote(text)
                ));
            }
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::strconv::quote(other),
                    crate::strconv::quote(text)
                ));
            }
        };
        total += number * scale;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}
