//! Helm's values coalescing (pkg/chartutil/coalesce.go): chart defaults under user values,
//! subchart values under their parent's, globals passed down, and `null` deleting a default.

use serde_json::Value;

use super::{Values, ValuesError};

/// The chart tree as coalescing needs it: each chart's name, its values.yaml and its subcharts
/// (already filtered to the enabled ones, named by alias).
pub trait ChartTree {
    fn chart_name(&self) -> &str;
    fn default_values(&self) -> &Values;
    fn subcharts(&self) -> Vec<&Self>;
}

const GLOBAL_KEY: &str = "global";

/// What a user's `null` does to a key inside a map whose chart default is `null` too. Helm
/// 3.17 deletes the key; helm 4.1.3 and later keep it (helm/helm d94a5c97 and 8c5fe4ef, for
/// issue 31643). A top-level `null` deletes the key in both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NullOverNull {
    /// helm 3.17: any user `null` over a default deletes the key.
    #[default]
    Delete,
    /// helm 4.1: only a `null` over a non-`null` default deletes it.
    Keep,
}

/// `chartutil.CoalesceValues`: user values over the chart's defaults, recursively for subcharts;
/// a user `null` removes the default.
pub fn coalesce_values<C: ChartTree>(
    chart: &C,
    user: &Values,
    null_over_null: NullOverNull,
) -> Result<Values, ValuesError> {
    let mut dest = user.clone();
    coalesce(chart, &mut dest, "", false, null_over_null)?;
    Ok(dest)
}

/// [`coalesce_values`] for a chart without subcharts (as Helm's release records store charts):
/// `user` over `defaults`. It cannot fail: only a subchart's section can have the wrong type.
pub fn coalesce_single_chart(
    chart_name: &str,
    defaults: &Values,
    user: &Values,
    null_over_null: NullOverNull,
) -> Values {
    let mut dest = user.clone();
    coalesce_chart_defaults(
        chart_name,
        defaults,
        &[],
        &mut dest,
        "",
        false,
        null_over_null,
    );
    dest
}

/// `chartutil.MergeValues`: like [`coalesce_values`] but keeps `null`s (used for import-values).
pub fn merge_values<C: ChartTree>(chart: &C, user: &Values) -> Result<Values, ValuesError> {
    let mut dest = user.clone();
    coalesce(chart, &mut dest, "", true, NullOverNull::Keep)?;
    Ok(dest)
}

/// `chartutil.CoalesceTables`: `dst` wins over `src`; `null`s in `dst` remove keys.
pub fn coalesce_tables(mut dst: Values, src: Values, null_over_null: NullOverNull) -> Values {
    coalesce_tables_full_key(&mut dst, src, "", false, null_over_null);
    dst
}

/// `chartutil.MergeTables`: `dst` wins over `src`; `null`s are kept.
pub fn merge_tables(mut dst: Values, src: Values) -> Values {
    coalesce_tables_full_key(&mut dst, src, "", true, NullOverNull::Keep);
    dst
}

/// `Values.Table(path)`: the map at a dotted path, if every step is a map.
pub fn table_at<'a>(values: &'a Values, dotted: &str) -> Option<&'a Values> {
    let mut current = values;
    for part in dotted.split('.') {
        match current.get(part) {
            Some(Value::Object(map)) => current = map,
            _ => return None,
        }
    }
    Some(current)
}

fn coalesce<C: ChartTree>(
    chart: &C,
    dest: &mut Values,
    prefix: &str,
    merge: bool,
    null_over_null: NullOverNull,
) -> Result<(), ValuesError> {
    let subcharts = chart.subcharts();
    let subchart_names: Vec<&str> = subcharts.iter().map(|c| c.chart_name()).collect();
    coalesce_chart_defaults(
        chart.chart_name(),
        chart.default_values(),
        &subchart_names,
        dest,
        prefix,
        merge,
        null_over_null,
    );
    coalesce_dependencies(chart, dest, prefix, merge, null_over_null)
}

fn concat_prefix(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `coalesceValues`: puts a chart's own defaults under `dest`; the sections named after its
/// subcharts merge (their `null`s are left for the subcharts to handle).
fn coalesce_chart_defaults(
    chart_name: &str,
    defaults: &Values,
    subchart_names: &[&str],
    dest: &mut Values,
    prefix: &str,
    merge: bool,
    null_over_null: NullOverNull,
) {
    let sub_prefix = concat_prefix(prefix, chart_name);
    for (key, default) in defaults {
        match dest.get_mut(key) {
            Some(Value::Null) if !merge => {
                dest.remove(key);
            }
            Some(Value::Object(dest_table)) => match default {
                Value::Object(src) => {
                    let merge_here = merge || subchart_names.contains(&key.as_str());
                    coalesce_tables_full_key(
                        dest_table,
                        src.clone(),
                        &concat_prefix(&sub_prefix, key),
                        merge_here,
                        null_over_null,
                    );
                }
                Value::Null => {}
                _ => tracing::warn!("skipped value for {sub_prefix}.{key}: Not a table."),
            },
            Some(_) => {}
            None => {
                dest.insert(key.clone(), default.clone());
            }
        }
    }
}

/// `coalesceDeps`: each subchart gets its section (created if missing) with globals passed down.
fn coalesce_dependencies<C: ChartTree>(
    chart: &C,
    dest: &mut Values,
    prefix: &str,
    merge: bool,
    null_over_null: NullOverNull,
) -> Result<(), ValuesError> {
    let sub_prefix = concat_prefix(prefix, chart.chart_name());
    for subchart in chart.subcharts() {
        let name = subchart.chart_name().to_string();
        let mut section = match dest.remove(&name) {
            None => Values::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                let found = go_percent_t(&other);
                dest.insert(name.clone(), other);
                return Err(ValuesError::TypeMismatch { name, found });
            }
        };
        coalesce_globals(&mut section, dest, &sub_prefix);
        coalesce(subchart, &mut section, &sub_prefix, merge, null_over_null)?;
        dest.insert(name, Value::Object(section));
    }
    Ok(())
}

/// How Go's `%t` verb prints a non-bool value in Helm's "type mismatch" error.
fn go_percent_t(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Null => "%!t(<nil>)".to_string(),
        Value::String(s) => format!("%!t(string={s})"),
        Value::Number(n) => format!("%!t(float64={n})"),
        Value::Array(_) => "%!t([]interface {}=[...])".to_string(),
        Value::Object(_) => "%!t(map[string]interface {}=map[...])".to_string(),
    }
}

/// `coalesceGlobals`: the parent's `global` table goes over the subchart's section's `global`.
fn coalesce_globals(dest: &mut Values, parent: &Values, prefix: &str) {
    let mut dest_globals = match dest.get(GLOBAL_KEY) {
        None => Values::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            tracing::warn!("skipping globals because destination {GLOBAL_KEY} is not a table.");
            return;
        }
    };
    let parent_globals = match parent.get(GLOBAL_KEY) {
        None => Values::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            tracing::warn!("skipping globals because source {GLOBAL_KEY} is not a table.");
            return;
        }
    };
    for (key, value) in parent_globals {
        match value {
            Value::Object(parent_table) => match dest_globals.remove(&key) {
                None => {
                    dest_globals.insert(key, Value::Object(parent_table));
                }
                Some(Value::Object(sub_table)) => {
                    let mut merged = parent_table;
                    coalesce_tables_full_key(
                        &mut merged,
                        sub_table,
                        &concat_prefix(prefix, &key),
                        true,
                        NullOverNull::Keep,
                    );
                    dest_globals.insert(key, Value::Object(merged));
                }
                Some(other) => {
                    tracing::warn!(
                        "Conflict: cannot merge map onto non-map for {key:?}. Skipping."
                    );
                    dest_globals.insert(key, other);
                }
            },
            scalar => {
                if matches!(dest_globals.get(&key), Some(Value::Object(_))) {
                    tracing::warn!("key {key} is table. Skipping");
                } else {
                    dest_globals.insert(key, scalar);
                }
            }
        }
    }
    dest.insert(GLOBAL_KEY.to_string(), Value::Object(dest_globals));
}

/// `coalesceTablesFullKey`: `dst` has precedence; with `merge` false a `null` in `dst` deletes
/// the key `src` has (unless `src` has `null` too and `null_over_null` keeps it). A `null` for
/// a key `src` lacks stays, as helm 3.17 and 4.1 keep it.
fn coalesce_tables_full_key(
    dst: &mut Values,
    src: Values,
    prefix: &str,
    merge: bool,
    null_over_null: NullOverNull,
) {
    for (key, src_value) in src {
        let full_key = concat_prefix(prefix, &key);
        match dst.get_mut(&key) {
            Some(Value::Null)
                if !merge && (null_over_null == NullOverNull::Delete || !src_value.is_null()) =>
            {
                dst.remove(&key);
            }
            None => {
                dst.insert(key, src_value);
            }
            Some(dst_value) => match (dst_value, src_value) {
                (Value::Object(dst_table), Value::Object(src_table)) => {
                    coalesce_tables_full_key(
                        dst_table,
                        src_table,
                        &full_key,
                        merge,
                        null_over_null,
                    );
                }
                (_, Value::Object(_)) => {
                    tracing::warn!("cannot overwrite table with non table for {full_key}");
                }
                (Value::Object(_), src_value) if !src_value.is_null() => {
                    tracing::warn!(
                        "destination for {full_key} is a table. Ignoring non-table value ({src_value})"
                    );
                }
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct TestChart {
        name: String,
        values: Values,
        subcharts: Vec<TestChart>,
    }

    impl ChartTree for TestChart {
        fn chart_name(&self) -> &str {
            &self.name
        }
        fn default_values(&self) -> &Values {
            &self.values
        }
        fn subcharts(&self) -> Vec<&Self> {
            self.subcharts.iter().collect()
        }
    }

    fn map(value: serde_json::Value) -> Values {
        match value {
            Value::Object(m) => m,
            _ => Values::new(),
        }
    }

    fn chart(name: &str, values: serde_json::Value, subcharts: Vec<TestChart>) -> TestChart {
        TestChart {
            name: name.to_string(),
            values: map(values),
            subcharts,
        }
    }

    #[test]
    fn user_values_win_and_null_deletes_default() {
        let parent = chart(
            "top",
            json!({"a": 1.0, "b": {"x": 1.0, "y": 2.0}, "c": "keep"}),
            vec![],
        );
        let user = map(json!({"a": 5, "b": {"y": null, "z": 3}, "c": null, "d": null}));
        let out = coalesce_values(&parent, &user, NullOverNull::Delete).unwrap_or_default();
        assert_eq!(
            Value::Object(out),
            json!({"a": 5, "b": {"x": 1.0, "z": 3}, "d": null})
        );
    }

    #[test]
    fn subcharts_get_their_section_and_globals() {
        let sub = chart(
            "sub",
            json!({"image": {"tag": "1.0"}, "global": {"region": "eu", "own": true}}),
            vec![],
        );
        let top = chart(
            "top",
            json!({"global": {"region": "us"}, "sub": {"image": {"tag": "2.0"}}}),
            vec![sub],
        );
        let out = coalesce_values(&top, &Values::new(), NullOverNull::Delete).unwrap_or_default();
        assert_eq!(
            Value::Object(out),
            json!({
                "global": {"region": "us"},
                "sub": {"image": {"tag": "2.0"}, "global": {"region": "us", "own": true}}
            })
        );
    }

    #[test]
    fn parent_null_for_subchart_default_is_deleted_in_the_subchart() {
        let sub = chart("sub", json!({"x": 1.0, "y": 2.0}), vec![]);
        let top = chart("top", json!({"sub": {"x": null}}), vec![sub]);
        let out = coalesce_values(&top, &Values::new(), NullOverNull::Delete).unwrap_or_default();
        assert_eq!(Value::Object(out), json!({"sub": {"y": 2.0, "global": {}}}));
    }

    #[test]
    fn scalar_in_place_of_subchart_section_is_an_error() {
        let sub = chart("sub", json!({}), vec![]);
        let top = chart("top", json!({}), vec![sub]);
        let err = coalesce_values(&top, &map(json!({"sub": "oops"})), NullOverNull::Delete).err();
        assert!(matches!(err, Some(ValuesError::TypeMismatch { name, .. }) if name == "sub"));
    }

    #[test]
    fn nested_null_without_default_stays() {
        let parent = chart("top", json!({"m": {"a": 1, "n": {"k": 1}}}), vec![]);
        let user = map(json!({"m": {"a": null, "n": null, "new": null}}));
        let out = coalesce_values(&parent, &user, NullOverNull::Delete).unwrap_or_default();
        assert_eq!(Value::Object(out), json!({"m": {"new": null}}));
    }

    #[test]
    fn nested_null_over_null_default_is_deleted_by_helm3_and_kept_by_helm4() {
        let parent = chart(
            "top",
            json!({"top": null, "m": {"both": null, "set": 1, "deep": {"both": null}}}),
            vec![],
        );
        let user =
            map(json!({"top": null, "m": {"both": null, "set": null, "deep": {"both": null}}}));
        let helm3 = coalesce_values(&parent, &user, NullOverNull::Delete).unwrap_or_default();
        assert_eq!(Value::Object(helm3), json!({"m": {"deep": {}}}));
        let helm4 = coalesce_values(&parent, &user, NullOverNull::Keep).unwrap_or_default();
        assert_eq!(
            Value::Object(helm4),
            json!({"m": {"both": null, "deep": {"both": null}}})
        );
        let single = coalesce_single_chart("top", &parent.values, &user, NullOverNull::Keep);
        assert_eq!(
            Value::Object(single),
            json!({"m": {"both": null, "deep": {"both": null}}})
        );
    }

    #[test]
    fn merge_tables_keeps_nulls_and_coalesce_drops_them() {
        let dst = map(json!({"a": null, "b": 1}));
        let src = map(json!({"a": 2, "c": 3}));
        assert_eq!(
            Value::Object(merge_tables(dst.clone(), src.clone())),
            json!({"a": null, "b": 1, "c": 3})
        );
        assert_eq!(
            Value::Object(coalesce_tables(dst, src, NullOverNull::Delete)),
            json!({"b": 1, "c": 3})
        );
    }

    #[test]
    fn table_at_walks_maps_only() {
        let values = map(json!({"a": {"b": {"c": 1}}, "s": "x"}));
        assert!(table_at(&values, "a.b").is_some());
        assert!(table_at(&values, "a.b.c").is_none());
        assert!(table_at(&values, "s").is_none());
    }
}
