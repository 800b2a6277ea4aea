//! Sprig's date functions over a Go `time.Time` value (now, date, toDate, duration, ...).
//!
//! Go's `time.Local` is the system zone (`TZ`, else /etc/localtime) and named zones come from
//! the system's zoneinfo, as Go loads them; a zone that fails to load is UTC, as in Sprig.

use std::sync::Arc;

use super::args;
use super::{Func, FuncError};
use crate::value::{Object, Value};
use gocompat::time::{GoTime, NANOS_PER_SECOND, Zone, duration_string, parse_duration, parse_time};

pub fn functions() -> Vec<(&'static str, Func)> {
    vec![
        ("ago", ago),
        ("date", date),
        ("date_in_zone", date_in_zone),
        ("dateInZone", date_in_zone),
        ("date_modify", date_modify),
        ("dateModify", date_modify),
        ("must_date_modify", must_date_modify),
        ("mustDateModify", must_date_modify),
        ("duration", duration),
        ("durationRound", duration_round),
        ("htmlDate", html_date),
        ("htmlDateInZone", html_date_in_zone),
        ("mustToDate", must_to_date),
        ("now", now),
        ("toDate", to_date),
        ("unixEpoch", unix_epoch),
    ]
}

impl Object for GoTime {
    fn type_name(&self) -> &str {
        "time.Time"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let (year, month, day, hour, minute, second, weekday, yearday) = self.civil();
        Some(match name {
            "Unix" => Value::Int(self.unix()),
            "UnixNano" => Value::Int(self.nanos as i64),
            // Not a Go field: how keelson's own functions read a time's zone back.
            "__zone" => Value::String(self.zone.encode()),
            "UnixMilli" => Value::Int((self.nanos / 1_000_000) as i64),
            "Year" => Value::Int(year),
            "Month" => Value::Int(month),
            "Day" => Value::Int(day),
            "Hour" => Value::Int(hour),
            "Minute" => Value::Int(minute),
            "Second" => Value::Int(second),
            "Nanosecond" => Value::Int(self.nanosecond()),
            "Weekday" => Value::Int(weekday),
            "YearDay" => Value::Int(yearday),
            "UTC" => Value::Object(Arc::new(self.in_zone(Zone::Utc))),
            "Local" => Value::Object(Arc::new(self.in_zone(Zone::Local))),
            "String" => Value::String(self.to_go_string()),
            _ => return None,
        })
    }

    fn call_method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match name {
            "Format" => Some(match args.first() {
                Some(Value::String(layout)) => Ok(Value::String(self.format(layout))),
                _ => Err("wrong type for value; expected string".to_string()),
            }),
            "Add" => Some(match args.first() {
                Some(Value::Int(d)) => Ok(Value::Object(Arc::new(self.plus(i128::from(*d))))),
                _ => Err("wrong type for value; expected time.Duration".to_string()),
            }),
            _ => self.field(name).map(Ok),
        }
    }

    fn to_go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    fn to_serializable(&self) -> Value {
        Value::String(self.format("2006-01-02T15:04:05.999999999Z07:00"))
    }
}

/// The `time.Time` Sprig's date functions take: a time, or unix seconds as an int.
fn time_arg(value: &Value) -> GoTime {
    match value {
        Value::Object(o) if o.type_name() == "time.Time" => match o.field("UnixNano") {
            Some(Value::Int(nanos)) => GoTime {
                nanos: i128::from(nanos),
                zone: match o.field("__zone") {
                    Some(Value::String(zone)) => Zone::decode(&zone),
                    _ => Zone::Local,
                },
            },
            _ => GoTime::now(),
        },
        Value::Int(seconds) => GoTime::from_unix(*seconds),
        _ => GoTime::now(),
    }
}

fn time_value(t: GoTime) -> Value {
    Value::Object(Arc::new(t))
}

fn now(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("now", args, 0)?;
    Ok(time_value(GoTime::now()))
}

fn date(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("date", args, 2)?;
    let layout = args::string(args, 0)?;
    Ok(Value::String(
        time_arg(&args[1]).in_zone(Zone::Local).format(layout),
    ))
}

fn date_in_zone(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("dateInZone", args, 3)?;
    let layout = args::string(args, 0)?;
    let zone = Zone::load(args::string(args, 2)?);
    Ok(Value::String(
        time_arg(&args[1]).in_zone(zone).format(layout),
    ))
}

fn html_date(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("htmlDate", args, 1)?;
    Ok(Value::String(
        time_arg(&args[0]).in_zone(Zone::Local).format("2006-01-02"),
    ))
}

fn html_date_in_zone(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("htmlDateInZone", args, 2)?;
    let zone = Zone::load(args::string(args, 1)?);
    Ok(Value::String(
        time_arg(&args[0]).in_zone(zone).format("2006-01-02"),
    ))
}

fn time_param(args: &[Value], index: usize) -> Result<GoTime, FuncError> {
    match args.get(index) {
        Some(Value::Object(o)) if o.type_name() == "time.Time" => Ok(time_arg(&args[index])),
        Some(Value::Nil) | None => Err("invalid value; expected time.Time".to_string()),
        Some(other) => Err(format!(
            "wrong type for value; expected time.Time; got {}",
            super::args::go_type_name(other)
        )),
    }
}

fn modify(args: &[Value], name: &str) -> Result<(GoTime, Result<i64, String>), FuncError> {
    args::exact(name, args, 2)?;
    let change = args::string(args, 0)?;
    let t = time_param(args, 1)?;
    Ok((t, parse_duration(change)))
}

fn date_modify(args: &[Value]) -> Result<Value, FuncError> {
    let (t, change) = modify(args, "dateModify")?;
    Ok(time_value(match change {
        Ok(d) => t.plus(i128::from(d)),
        Err(_) => t,
    }))
}

fn must_date_modify(args: &[Value]) -> Result<Value, FuncError> {
    let (t, change) = modify(args, "mustDateModify")?;
    let d = change?;
    Ok(time_value(t.plus(i128::from(d))))
}

fn ago(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("ago", args, 1)?;
    let t = time_arg(&args[0]);
    let elapsed = GoTime::now().nanos - t.nanos;
    let rounded = (elapsed + NANOS_PER_SECOND / 2).div_euclid(NANOS_PER_SECOND) * NANOS_PER_SECOND;
    Ok(Value::String(duration_string(rounded as i64)))
}

fn duration(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("duration", args, 1)?;
    let seconds = match &args[0] {
        Value::String(s) => super::conv::parse_go_int(s, 10).unwrap_or(0),
        Value::Int(i) => *i,
        _ => 0,
    };
    Ok(Value::String(duration_string(
        seconds.wrapping_mul(1_000_000_000),
    )))
}

fn duration_round(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("durationRound", args, 1)?;
    let nanos: i64 = match &args[0] {
        Value::String(s) => parse_duration(s).unwrap_or(0),
        Value::Int(i) => *i,
        Value::Object(o) if o.type_name() == "time.Time" => {
            (GoTime::now().nanos - time_arg(&args[0]).nanos) as i64
        }
        _ => 0,
    };
    let u = nanos.unsigned_abs();
    let hour = 3_600_000_000_000u64;
    let units: [(u64, &str); 6] = [
        (hour * 24 * 365, "y"),
        (hour * 24 * 30, "mo"),
        (hour * 24, "d"),
        (hour, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    for (size, suffix) in units {
        if u > size {
            return Ok(Value::String(format!("{}{suffix}", u / size)));
        }
    }
    Ok(Value::from("0s"))
}

fn to_date(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("toDate", args, 2)?;
    let layout = args::string(args, 0)?;
    let text = args::string(args, 1)?;
    Ok(time_value(parse_time(layout, text).unwrap_or(GoTime {
        nanos: -62_135_596_800 * NANOS_PER_SECOND,
        zone: Zone::Utc,
    })))
}

fn must_to_date(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("mustToDate", args, 2)?;
    let layout = args::string(args, 0)?;
    let text = args::string(args, 1)?;
    parse_time(layout, text).map(time_value)
}

fn unix_epoch(args: &[Value]) -> Result<Value, FuncError> {
    args::exact("unixEpoch", args, 1)?;
    let t = time_param(args, 0)?;
    Ok(Value::String(t.unix().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let t = GoTime::from_unix(1_700_000_000).in_zone(Zone::Utc);
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(t.format("Mon Jan _2 3:04PM"), "Tue Nov 14 10:13PM");
        assert_eq!(t.format("20060102150405"), "20231114221320");
        assert_eq!(t.to_go_string(), "2023-11-14 22:13:20 +0000 UTC");
        let parsed =
            parse_time("2006-01-02T15:04:05Z07:00", "2023-11-14T00:00:00Z").map(|t| t.unix());
        assert_eq!(parsed, Ok(1_699_920_000));
        let fixed = parse_time("2006-01-02T15:04:05Z07:00", "2023-11-14T22:13:20+02:00");
        assert_eq!(
            fixed
                .map(|t| t.in_zone(Zone::Fixed(7200)).to_go_string())
                .as_deref(),
            Ok("2023-11-14 22:13:20 +0200 +0200")
        );
        let paris = GoTime::from_unix(1_700_000_000).in_zone(Zone::load("Europe/Paris"));
        if paris.zone == Zone::Named("Europe/Paris".to_string()) {
            assert_eq!(paris.format("15:04 MST -07:00"), "23:13 CET +01:00");
        }
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(duration_string(90_000_000_000), "1m30s");
        assert_eq!(duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_string(1_500_000_000), "1.5s");
        assert_eq!(duration_string(1_500_000), "1.5ms");
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert!(matches!(duration(&[Value::from("95")]), Ok(Value::String(s)) if s == "1m35s"));
        assert!(
            matches!(duration_round(&[Value::from("2h5m")]), Ok(Value::String(s)) if s == "2h")
        );
    }
}
