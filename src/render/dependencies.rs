//! Helm's dependency processing before rendering (pkg/chartutil/dependencies.go): aliases,
//! `condition`/`tags` switching subcharts off, and `import-values` lifting child values up.

use serde_json::Value as Json;

use crate::render::chart::{Chart, Dependency};
use crate::values::{self, ChartTree, NullOverNull, Values, ValuesError, table_at};
use gocompat::semver::is_compatible_range;

impl ChartTree for Chart {
    fn chart_name(&self) -> &str {
        self.name()
    }
    fn default_values(&self) -> &Values {
        &self.values
    }
    fn subcharts(&self) -> Vec<&Self> {
        self.dependencies.iter().collect()
    }
}

/// `action.CheckDependencies`: every dependency of Chart.yaml must be present under charts/.
pub fn check_dependencies(chart: &Chart) -> Result<(), String> {
    let missing: Vec<&str> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|req| !chart.dependencies.iter().any(|d| d.name() == req.name))
        .map(|req| req.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "An error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: {}",
            missing.join(", ")
        ))
    }
}

/// `chartutil.ProcessDependenciesWithMerge`: applies aliases, drops disabled subcharts and
/// imports child values, changing `chart` in place as Helm does before rendering.
pub fn process_dependencies(
    chart: &mut Chart,
    user_values: &Values,
    null_over_null: NullOverNull,
) -> Result<(), ValuesError> {
    process_enabled(chart, user_values, "", null_over_null)?;
    process_import_values(chart)
}

fn alias_dependency(charts: &[Chart], req: &Dependency) -> Option<Chart> {
    let found = charts
        .iter()
        .find(|c| c.name() == req.name && is_compatible_range(&req.version, &c.metadata.version))?;
    let mut copy = found.clone();
    if !req.alias.is_empty() {
        copy.metadata.name = req.alias.clone();
    }
    Some(copy)
}

fn process_enabled(
    chart: &mut Chart,
    values: &Values,
    path: &str,
    null_over_null: NullOverNull,
) -> Result<(), ValuesError> {
    if chart.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let existing = std::mem::take(&mut chart.dependencies);
    let mut chosen: Vec<Chart> = existing
        .iter()
        .filter(|e| {
            !chart.metadata.dependencies.iter().any(|req| {
                e.name() == req.name && is_compatible_range(&req.version, &e.metadata.version)
            })
        })
        .cloned()
        .collect();
    for req in chart.metadata.dependencies.iter_mut() {
        if let Some(dep) = alias_dependency(&existing, req) {
            chosen.push(dep);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    chart.dependencies = chosen;
    for req in chart.metadata.dependencies.iter_mut() {
        req.enabled = true;
    }
    let coalesced = values::coalesce_values(chart, values, null_over_null)?;
    apply_tags(&mut chart.metadata.dependencies, &coalesced);
    apply_conditions(&mut chart.metadata.dependencies, &coalesced, path);
    let disabled: Vec<String> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    chart
        .dependencies
        .retain(|d| !disabled.iter().any(|n| n == d.name()));
    chart
        .metadata
        .dependencies
        .retain(|r| !disabled.contains(&r.name));
    for sub in chart.dependencies.iter_mut() {
        let sub_path = format!("{path}{}.", sub.name());
        process_enabled(sub, &coalesced, &sub_path, null_over_null)?;
    }
    Ok(())
}

fn apply_tags(reqs: &mut [Dependency], values: &Values) {
    let Some(tags) = table_at(values, "tags") else {
        return;
    };
    for req in reqs {
        let (mut has_true, mut has_false) = (false, false);
        for tag in &req.tags {
            match tags.get(tag) {
                Some(Json::Bool(true)) => has_true = true,
                Some(Json::Bool(false)) => has_false = true,
                Some(_) => {
                    tracing::warn!("Tag {tag:?} for chart {} returned non-bool value", req.name)
                }
                None => {}
            }
        }
        if !has_true && has_false {
            req.enabled = false;
        } else if has_true || !has_false {
            req.enabled = true;
        }
    }
}

/// `Values.PathValue`: a non-table value at a dotted path.
fn path_value<'a>(values: &'a Values, dotted: &str) -> Option<&'a Json> {
    let (table, key) = match dotted.rsplit_once('.') {
        Some((table_path, key)) => (table_at(values, table_path)?, key),
        None => (values, dotted),
    };
    table.get(key).filter(|v| !v.is_object())
}

fn apply_conditions(reqs: &mut [Dependency], values: &Values, path: &str) {
    for req in reqs {
        for condition in req.condition.trim().split(',') {
            if condition.is_empty() {
                continue;
            }
            match path_value(values, &format!("{path}{condition}")) {
                Some(Json::Bool(enabled)) => {
                    req.enabled = *enabled;
                    break;
                }
                Some(_) => tracing::warn!(
                    "Condition path '{condition}' for chart {} returned non-bool value",
                    req.name
                ),
                None => {}
            }
        }
    }
}

fn process_import_values(chart: &mut Chart) -> Result<(), ValuesError> {
    for sub in chart.dependencies.iter_mut() {
        process_import_values(sub)?;
    }
    if chart.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let merged = values::merge_values(chart, &Values::new())?;
    let mut imported = Values::new();
    for req in chart.metadata.dependencies.iter_mut() {
        let mut normalized = Vec::new();
        for item in &req.import_values {
            match item {
                Json::Object(spec) => {
                    let text = |key: &str| match spec.get(key) {
                        Some(Json::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    let (child, parent) = (text("child"), text("parent"));
                    normalized.push(serde_json::json!({"child": child, "parent": parent}));
                    match table_at(&merged, &format!("{}.{child}", req.name)) {
                        Some(table) => {
                            imported =
                                values::merge_tables(imported, path_to_map(&parent, table.clone()));
                        }
                        None => tracing::warn!(
                            "ImportValues missing table from chart {}: {child}",
                            req.name
                        ),
                    }
                }
                Json::String(export) => {
                    let child = format!("exports.{export}");
                    normalized.push(serde_json::json!({"child": child, "parent": "."}));
                    match table_at(&merged, &format!("{}.{child}", req.name)) {
                        Some(table) => {
                            imported = values::merge_tables(imported, table.clone());
                        }
                        None => tracing::warn!("ImportValues missing table: {child}"),
                    }
                }
                _ => {}
            }
        }
        req.import_values = normalized;
    }
    // Imported values rank below the parent's own values.
    chart.values = values::merge_tables(merged, imported);
    Ok(())
}

fn path_to_map(path: &str, data: Values) -> Values {
    if path == "." {
        return data;
    }
    let mut current = data;
    for part in path.split('.').rev() {
        let mut outer = Values::new();
        outer.insert(part.to_string(), Json::Object(current));
        current = outer;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::chart::{ChartFile, load_files};

    fn file(name: &str, data: &str) -> ChartFile {
        ChartFile {
            name: name.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    fn parent() -> Chart {
        let chart = load_files(
            vec![
                file(
                    "Chart.yaml",
                    "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: 0.x.x\n  alias: first\n  condition: first.enabled\n- name: sub\n  version: 0.x.x\n  alias: second\n  tags: [extra]\n  import-values:\n  - child: shared\n    parent: fromsub\n",
                ),
                file(
                    "values.yaml",
                    "first:\n  enabled: true\ntags:\n  extra: true\n",
                ),
                file(
                    "charts/sub/Chart.yaml",
                    "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
                ),
                file("charts/sub/values.yaml", "shared:\n  a: 1\n"),
            ],
            "top",
        );
        match chart {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn aliases_conditions_tags_and_imports() {
        let mut chart = parent();
        assert!(check_dependencies(&chart).is_ok());
        let user: Values = serde_json::from_value(serde_json::json!({"first": {"enabled": false}}))
            .unwrap_or_default();
        assert!(process_dependencies(&mut chart, &user, NullOverNull::Delete).is_ok());
        let names: Vec<&str> = chart.dependencies.iter().map(|d| d.name()).collect();
        assert_eq!(names, vec!["second"]);
        assert_eq!(
            chart.values.get("fromsub"),
            Some(&serde_json::json!({"a": 1.0}))
        );
    }

    #[test]
    fn missing_dependency_is_reported() {
        let mut chart = parent();
        chart.dependencies.clear();
        let err = check_dependencies(&chart).err().unwrap_or_default();
        assert!(
            err.ends_with("missing in charts/ directory: sub, sub"),
            "{err}"
        );
    }
}
