//! The Helm release record (`helm.sh/release.v1` JSON) as Helm 3 and Helm 4 write it, with every
//! field keelson does not model carried through untouched, in its original order.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A JSON value that keeps object keys in the order they were read.
///
/// Helm writes Go structs, whose keys come in declaration order, not sorted; carrying unmodelled
/// parts in this form keeps a decoded record re-encodable byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub enum GoValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<GoValue>),
    Object(Carried),
}

/// An ordered JSON object: unknown fields of a record, or a Go struct keelson does not model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Carried(pub Vec<(String, GoValue)>);

impl Carried {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key`, the last one when a (malformed) object repeats it, as Go does.
    pub fn get(&self, key: &str) -> Option<&GoValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(GoValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Sets `key`, keeping its position when present, appending it otherwise.
    pub fn set(&mut self, key: &str, value: GoValue) {
        match self.0.iter_mut().rev().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// Removes every entry for `key`.
    pub fn remove(&mut self, key: &str) -> Option<GoValue> {
        let found = self.get(key).cloned();
        self.0.retain(|(k, _)| k != key);
        found
    }
}

impl GoValue {
    /// The same value with object keys sorted, as `serde_json::Value` holds it.
    pub fn to_json(&self) -> Value {
        match self {
            GoValue::Null => Value::Null,
            GoValue::Bool(b) => Value::Bool(*b),
            GoValue::Number(n) => Value::Number(n.clone()),
            GoValue::String(s) => Value::String(s.clone()),
            GoValue::Array(items) => Value::Array(items.iter().map(GoValue::to_json).collect()),
            GoValue::Object(obj) => Value::Object(
                obj.0
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl From<&Value> for GoValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => GoValue::Null,
            Value::Bool(b) => GoValue::Bool(*b),
            Value::Number(n) => GoValue::Number(n.clone()),
            Value::String(s) => GoValue::String(s.clone()),
            Value::Array(items) => GoValue::Array(items.iter().map(GoValue::from).collect()),
            Value::Object(obj) => GoValue::Object(Carried(
                obj.iter()
                    .map(|(k, v)| (k.clone(), GoValue::from(v)))
                    .collect(),
            )),
        }
    }
}

impl Serialize for GoValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            GoValue::Null => serializer.serialize_unit(),
            GoValue::Bool(b) => serializer.serialize_bool(*b),
            GoValue::Number(n) => n.serialize(serializer),
            GoValue::String(s) => serializer.serialize_str(s),
            GoValue::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            GoValue::Object(obj) => obj.serialize(serializer),
        }
    }
}

impl Serialize for Carried {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

struct GoValueVisitor;

impl<'de> Visitor<'de> for GoValueVisitor {
    type Value = GoValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<GoValue, E> {
        Ok(GoValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<GoValue, E> {
        Ok(GoValue::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<GoValue, E> {
        Ok(GoValue::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<GoValue, E> {
        serde_json::Number::from_f64(v)
            .map(GoValue::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a JSON number")))
    }
    fn visit_str<E>(self, v: &str) -> Result<GoValue, E> {
        Ok(GoValue::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<GoValue, E> {
        Ok(GoValue::String(v))
    }
    fn visit_unit<E>(self) -> Result<GoValue, E> {
        Ok(GoValue::Null)
    }
    fn visit_none<E>(self) -> Result<GoValue, E> {
        Ok(GoValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<GoValue, D::Error> {
        GoValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(GoValue::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GoValue, A::Error> {
        CarriedVisitor.visit_map(map).map(GoValue::Object)
    }
}

impl<'de> Deserialize<'de> for GoValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(GoValueVisitor)
    }
}

struct CarriedVisitor;

impl<'de> Visitor<'de> for CarriedVisitor {
    type Value = Carried;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Carried, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((key, value)) = map.next_entry::<String, GoValue>()? {
            entries.push((key, value));
        }
        Ok(Carried(entries))
    }
}

impl<'de> Deserialize<'de> for Carried {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CarriedVisitor)
    }
}

/// Deserializes a field that is present (possibly `null`) into `Some`, so `null` survives a
/// round trip where Go writes it (fields without `omitempty`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The lifecycle state of a revision (Helm's `release.Status`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Unknown,
    Deployed,
    Uninstalled,
    Superseded,
    Failed,
    Uninstalling,
    PendingInstall,
    PendingUpgrade,
    PendingRollback,
    /// A status a newer Helm may introduce; carried as written.
    Other(String),
}

impl Status {
    pub fn as_str(&self) -> &str {
        match self {
            Status::Unknown => "unknown",
            Status::Deployed => "deployed",
            Status::Uninstalled => "uninstalled",
            Status::Superseded => "superseded",
            Status::Failed => "failed",
            Status::Uninstalling => "uninstalling",
            Status::PendingInstall => "pending-install",
            Status::PendingUpgrade => "pending-upgrade",
            Status::PendingRollback => "pending-rollback",
            Status::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "unknown" => Status::Unknown,
            "deployed" => Status::Deployed,
            "uninstalled" => Status::Uninstalled,
            "superseded" => Status::Superseded,
            "failed" => Status::Failed,
            "uninstalling" => Status::Uninstalling,
            "pending-install" => Status::PendingInstall,
            "pending-upgrade" => Status::PendingUpgrade,
            "pending-rollback" => Status::PendingRollback,
            other => Status::Other(other.to_string()),
        }
    }

    /// True for the states Helm treats as "another operation is in progress".
    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            Status::PendingInstall | Status::PendingUpgrade | Status::PendingRollback
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Status::parse(&s))
    }
}

/// One revision of a release: the JSON Helm stores, field order as Helm's Go struct.
///
/// Every field is optional so that a field Helm omitted stays omitted; anything keelson does not
/// model lands in `extra` and is written back where Helm 4 puts it (after `namespace`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Release {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Info>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<Chart>,
    /// The user-supplied values only (`helm get values`); chart defaults live in `chart.values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Vec<Hook>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Helm 4: `csa` or `ssa`; absent for Helm 3 records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_method: Option<String>,
    #[serde(flatten)]
    pub extra: Carried,
}

/// `release.Info`: the revision's lifecycle data.
///
/// Times are kept as the exact strings written: Helm 3 writes a zero time as `""`, Helm 4 omits
/// it, and both write RFC 3339 with nanoseconds and the writer's local offset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Info {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_deployed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deployed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<GoValue>,
    #[serde(flatten)]
    pub extra: Carried,
}

/// `chart.Chart` as stored in a record (subcharts are not stored by Helm).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Chart {
    /// Chart.yaml, kept as written (read it through [`Chart::metadata_str`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub metadata: Option<GoValue>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub lock: Option<GoValue>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub templates: Option<Option<Vec<File>>>,
    /// values.yaml as parsed by Helm (`null` when the chart has none).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub values: Option<Value>,
    /// values.schema.json, base64 (or `null`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub schema: Option<GoValue>,
    /// Helm 4: modification time of values.schema.json (written even when zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemamodtime: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub files: Option<Option<Vec<File>>>,
    /// Helm 4: modification time of the chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modtime: Option<String>,
    #[serde(flatten)]
    pub extra: Carried,
}

impl Chart {
    /// A string field of Chart.yaml (`name`, `version`, `appVersion`, ...).
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        match &self.metadata {
            Some(GoValue::Object(obj)) => obj.get_str(key),
            _ => None,
        }
    }

    /// `name-version`, as `helm list` shows it in the CHART column.
    pub fn name_version(&self) -> String {
        format!(
            "{}-{}",
            self.metadata_str("name").unwrap_or_default(),
            self.metadata_str("version").unwrap_or_default()
        )
    }

    /// The chart's templates (empty when Helm wrote `null`).
    pub fn templates(&self) -> &[File] {
        self.templates
            .as_ref()
            .and_then(|t| t.as_deref())
            .unwrap_or(&[])
    }
}

/// A chart file: a template or a non-template file; `data` is base64 as Go writes `[]byte`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct File {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub data: Option<String>,
    /// Helm 4: the file's modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modtime: Option<String>,
    #[serde(flatten)]
    pub extra: Carried,
}

/// `release.Hook`: a rendered hook manifest and its last run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Hook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<GoValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_policies: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Carried,
}

impl Release {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    pub fn version(&self) -> i64 {
        self.version.unwrap_or_default()
    }

    /// The status from the JSON (what Helm uses for history and pending checks).
    pub fn status(&self) -> Status {
        self.info
            .as_ref()
            .and_then(|i| i.status.clone())
            .unwrap_or(Status::Unknown)
    }

    pub fn description(&self) -> &str {
        self.info
            .as_ref()
            .and_then(|i| i.description.as_deref())
            .unwrap_or_default()
    }

    /// Sets status and description together, like Helm's `SetStatus`.
    pub fn set_status(&mut self, status: Status, description: impl Into<String>) {
        let info = self.info.get_or_insert_with(Info::default);
        info.status = Some(status);
        info.description = Some(description.into());
    }

    /// Which Helm wrote this record, judged from the fields only that Helm writes.
    pub fn writer(&self) -> Writer {
        if self.apply_method.is_some() {
            return Writer::Helm4;
        }
        // Helm 3 always writes `deleted` (as "" while the release lives); Helm 4 omits zero times.
        match self.info.as_ref().and_then(|i| i.deleted.as_deref()) {
            Some(_) => Writer::Helm3,
            None => Writer::Helm4,
        }
    }

    /// The user config, empty when the record has none.
    pub fn config(&self) -> Map<String, Value> {
        self.config.clone().unwrap_or_default()
    }
}

/// The Helm major version whose conventions a record follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Helm3,
    Helm4,
}

/// Formats an instant as Go's `time.RFC3339Nano` does (trailing fractional zeros dropped,
/// `Z` for a zero offset, else `±hh:mm`).
pub fn format_rfc3339_nano(zoned: &jiff::Zoned) -> String {
    let dt = zoned.datetime();
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let nanos = dt.subsec_nanosecond();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    let offset_seconds = zoned.offset().seconds();
    if offset_seconds == 0 {
        out.push('Z');
    } else {
        let sign = if offset_seconds < 0 { '-' } else { '+' };
        let minutes = offset_seconds.unsigned_abs() / 60;
        out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    out
}

/// Now, in the local time zone (TZ, then /etc/localtime, like Go's `time.Local`).
pub fn now_rfc3339_nano() -> String {
    format_rfc3339_nano(&jiff::Zoned::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let z: jiff::Zoned = "2026-11-27T06:40:01.120000000+01:00[+01:00]"
            .parse()
            .unwrap();
        assert_eq!(format_rfc3339_nano(&z), "2026-11-27T06:40:01.12+01:00");
        let z: jiff::Zoned = "2026-11-27T06:40:01Z[UTC]".parse().unwrap();
        assert_eq!(format_rfc3339_nano(&z), "2026-11-27T06:40:01Z");
        let z: jiff::Zoned = "2026-01-02T03:04:05.000000009-05:30[-05:30]"
            .parse()
            .unwrap();
        assert_eq!(
            format_rfc3339_nano(&z),
            "2026-01-02T03:04:05.000000009-05:30"
        );
    }

    #[test]
    fn carried_keeps_order_and_last_duplicate_wins() {
        let obj: Carried = serde_json::from_str(r#"{"z":1,"a":2,"z":3}"#).unwrap();
        assert_eq!(obj.get("z"), Some(&GoValue::Number(3.into())));
        assert_eq!(
            serde_json::to_string(&obj).unwrap(),
            r#"{"z":1,"a":2,"z":3}"#
        );
    }

    #[test]
    fn null_and_absent_fields_survive() {
        let text = r#"{"metadata":{"name":"x"},"lock":null,"templates":null,"values":null,"schema":null,"files":null}"#;
        let chart: Chart = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&chart).unwrap(), text);
        let chart: Chart = serde_json::from_str(r#"{"metadata":{"name":"x"}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&chart).unwrap(),
            r#"{"metadata":{"name":"x"}}"#
        );
    }
}
