//! Which charts a release's dependencies were built from, read from the record: the chart
//! metadata (as Helm stored it after processing dependencies: aliases as names, disabled ones
//! removed) aligned with the lock (the versions `helm dependency build` resolved).

use serde::Deserialize;
use serde_json::Value as Json;

use crate::render::chart::Dependency;
use gocompat::semver::{is_compatible_range, parse_version};

/// One dependency archive to fetch: the chart's own name, the exact version Helm resolved,
/// and the repository as Chart.yaml and the lock spell it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wanted {
    pub repository: String,
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} from {}", self.name, self.version, self.repository)
    }
}

#[derive(Debug, Deserialize)]
struct LockEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    repository: String,
}

/// The archives a record's chart needs under `charts/`, in the order `helm dependency build`
/// names them (`NAME-VERSION.tgz`, as the loader reads the directory), or why they cannot be
/// known or fetched.
pub fn wanted_dependencies(record_chart: &Json) -> Result<Vec<Wanted>, String> {
    let mut wanted: Vec<Wanted> = dependency_sources(record_chart)?
        .into_iter()
        .map(|(_, wanted)| wanted)
        .collect();
    wanted.sort_by_cached_key(|w| {
        (
            format!("{}-{}.tgz", w.name, w.version),
            w.repository.clone(),
        )
    });
    wanted.dedup();
    Ok(wanted)
}

/// For each dependency of the record's metadata (in its order), the name the record gives
/// it (the alias, once Helm processed it) and the archive it was built from.
pub fn dependency_sources(record_chart: &Json) -> Result<Vec<(String, Wanted)>, String> {
    let dependencies: Vec<Dependency> = match record_chart.pointer("/metadata/dependencies") {
        Some(Json::Array(items)) if !items.is_empty() => {
            serde_json::from_value(Json::Array(items.clone()))
                .map_err(|err| format!("the record's chart dependencies are malformed: {err}"))?
        }
        _ => return Ok(Vec::new()),
    };
    let lock: Option<Vec<LockEntry>> = match record_chart.pointer("/lock/dependencies") {
        Some(Json::Array(items)) => Some(
            serde_json::from_value(Json::Array(items.clone()))
                .map_err(|err| format!("the record's chart lock is malformed: {err}"))?,
        ),
        _ => None,
    };
    let mut wanted = Vec::new();
    let mut cursor = 0;
    for dependency in &dependencies {
        let shown = if dependency.alias.is_empty() {
            dependency.name.clone()
        } else {
            format!("{} (alias)", dependency.name)
        };
        let repository = dependency.repository.trim();
        if repository.is_empty() {
            return Err(format!(
                "dependency {shown} has no repository: it was vendored into charts/, which Helm does not store in the release"
            ));
        }
        if repository.starts_with("file://") {
            return Err(format!(
                "dependency {shown} comes from {repository}, a local path (file://) that cannot be fetched for a release"
            ));
        }
        let entry = match &lock {
            Some(entries) => {
                // The lock lists every dependency of Chart.yaml in order; the stored metadata
                // lost the disabled ones and carries aliases as names, so walk both in order.
                let found = entries.iter().enumerate().skip(cursor).find(|(_, entry)| {
                    entry.repository.trim() == repository
                        && (!dependency.alias.is_empty() || entry.name == dependency.name)
                        && is_compatible_range(&dependency.version, &entry.version)
                });
                let Some((index, entry)) = found else {
                    return Err(format!(
                        "dependency {shown} {} from {repository} is not in the chart's lock",
                        dependency.version
                    ));
                };
                cursor = index + 1;
                Wanted {
                    repository: repository.to_string(),
                    name: entry.name.clone(),
                    version: entry.version.clone(),
                }
            }
            None => {
                if !dependency.alias.is_empty() {
                    return Err(format!(
                        "dependency {shown} is aliased and the chart has no Chart.lock, so the chart it names is unknown"
                    ));
                }
                if parse_version(&dependency.version).is_none()
                    || dependency
                        .version
                        .trim()
                        .starts_with(['=', '^', '~', '>', '<'])
                {
                    return Err(format!(
                        "dependency {shown} asks for {:?} and the chart has no Chart.lock, so the version Helm resolved is unknown",
                        dependency.version
                    ));
                }
                Wanted {
                    repository: repository.to_string(),
                    name: dependency.name.clone(),
                    version: dependency.version.trim().to_string(),
                }
            }
        };
        wanted.push((dependency.name.clone(), entry));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The chart part of a real helm 3.17 record of `fixtures/charts/fetched/shop` (admin
    /// disabled, worker aliased as jobs).
    fn shop_record() -> Json {
        json!({
            "metadata": {"name": "shop", "version": "2.0.0", "dependencies": [
                {"name": "web", "version": "~0.3.0", "repository": "http://127.0.0.1:46159/manual", "condition": "web.enabled", "enabled": true},
                {"name": "jobs", "version": "1.4.0", "repository": "oci://127.0.0.1:45339/manual/charts", "tags": ["backend"], "enabled": true, "alias": "jobs"}
            ]},
            "lock": {"digest": "sha256:1596be0c", "dependencies": [
                {"name": "web", "version": "0.3.1", "repository": "http://127.0.0.1:46159/manual"},
                {"name": "worker", "version": "1.4.0", "repository": "oci://127.0.0.1:45339/manual/charts"},
                {"name": "web", "version": "0.3.1", "repository": "http://127.0.0.1:46159/manual"}
            ]}
        })
    }

    #[test]
    fn lock_versions_and_real_names_in_archive_order() {
        let wanted = wanted_dependencies(&shop_record()).unwrap_or_default();
        let names: Vec<String> = wanted.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "web 0.3.1 from http://127.0.0.1:46159/manual",
                "worker 1.4.0 from oci://127.0.0.1:45339/manual/charts",
            ]
        );
    }

    #[test]
    fn each_dependency_keeps_the_name_the_record_gives_it() {
        let sources = dependency_sources(&shop_record()).unwrap_or_default();
        let pairs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(name, wanted)| (name.as_str(), wanted.name.as_str()))
            .collect();
        assert_eq!(pairs, [("web", "web"), ("jobs", "worker")]);
    }

    #[test]
    fn no_dependencies_means_nothing_to_fetch() {
        assert_eq!(
            wanted_dependencies(&json!({"metadata": {"name": "x"}})),
            Ok(Vec::new())
        );
    }

    #[test]
    fn unfetchable_dependencies_say_why() {
        let local = json!({"metadata": {"dependencies": [
            {"name": "web", "version": "0.3.1", "repository": "file://../web"}]}});
        assert_eq!(
            wanted_dependencies(&local),
            Err("dependency web comes from file://../web, a local path (file://) that cannot be fetched for a release".into())
        );
        let vendored =
            json!({"metadata": {"dependencies": [{"name": "worker", "version": "0.1.0"}]}});
        assert!(
            wanted_dependencies(&vendored)
                .is_err_and(|reason| reason.contains("vendored into charts/"))
        );
        let range = json!({"metadata": {"dependencies": [
            {"name": "web", "version": "~0.3.0", "repository": "https://charts.example/"}]}});
        assert!(wanted_dependencies(&range).is_err_and(|reason| reason.contains("no Chart.lock")));
        let exact = json!({"metadata": {"dependencies": [
            {"name": "web", "version": "0.3.1", "repository": "https://charts.example/"}]}});
        assert_eq!(
            wanted_dependencies(&exact).map(|w| w.len()),
            Ok(1),
            "an exact version needs no lock"
        );
        let mut stale_lock = shop_record();
        stale_lock["lock"]["dependencies"][1]["version"] = json!("1.5.0");
        assert!(
            wanted_dependencies(&stale_lock)
                .is_err_and(|reason| reason.contains("jobs (alias) 1.4.0")
                    && reason.contains("not in the chart's lock"))
        );
    }
}
