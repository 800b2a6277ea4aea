//! Full-render mode for the updater: re-render the deployed revision from its stored chart and
//! config with the cluster's capabilities, and only when that reproduces the stored manifest
//! byte for byte, render the new revision the same way. Subcharts, which Helm does not store,
//! come from `subcharts` (fetched at the locked versions) and `lookup` is answered from the
//! cluster, as helm's upgrade does ([`ClusterLookup`]); anything else (a subchart that cannot be
//! fetched or differs, a lookup the cluster refuses, random values, a template feature the
//! renderer lacks) falls back to patch mode, with the reason.

use std::sync::Arc;

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::Scope;
use serde_json::{Map, Value};
use tracing::debug;

use crate::render::chart::Chart;
use crate::render::release::{
    HelmFlavor, RenderSettings, RenderedRelease, render_from_record_with_subcharts,
};
use crate::storage::{Hook, StoredRelease, Writer};

/// What the cluster tells templates through `.Capabilities`, as Helm's upgrade reads it.
#[derive(Debug, Clone, Default)]
pub struct ClusterCapabilities {
    /// `v1.20.2`
    pub kube_version: Option<String>,
    /// `group/version` and `group/version/Kind` of every served resource.
    pub api_versions: Vec<String>,
}

impl ClusterCapabilities {
    /// Reads the server version and the served API versions (one discovery pass).
    pub async fn discover(client: &Client) -> Self {
        let kube_version = client
            .apiserver_version()
            .await
            .ok()
            .map(|info| info.git_version);
        let mut api_versions = Vec::new();
        if let Ok(discovery) = kube::Discovery::new(client.clone()).run().await {
            for group in discovery.groups() {
                for version in group.versions() {
                    let group_version = if group.name().is_empty() {
                        version.to_string()
                    } else {
                        format!("{}/{version}", group.name())
                    };
                    for (resource, _) in group.versioned_resources(version) {
                        api_versions.push(format!("{group_version}/{}", resource.kind));
                    }
                    api_versions.push(group_version);
                }
            }
        }
        api_versions.sort();
        api_versions.dedup();
        Self {
            kube_version,
            api_versions,
        }
    }
}

/// Answers the templates' `lookup` from the cluster, as `helm install`/`helm upgrade` do (not
/// `helm template`): one GET (or LIST, for an empty name) through the dynamic API; a missing
/// object is an empty map. Charts that keep generated secrets or certificates by looking up
/// their own Secret (bitnami's `common.secrets.lookup`) then re-render the deployed revision
/// byte for byte, as helm's upgrade does, instead of falling back to patch mode.
pub struct ClusterLookup {
    client: Client,
    /// The runtime the updater runs on: renders run on blocking threads, which wait here.
    runtime: tokio::runtime::Handle,
}

impl ClusterLookup {
    pub fn new(client: Client, runtime: tokio::runtime::Handle) -> Self {
        Self { client, runtime }
    }

    async fn fetch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, String> {
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|err| format!("lookup {api_version} {kind}: {err}"))?;
        let api: Api<DynamicObject> =
            if capabilities.scope == Scope::Namespaced && !namespace.is_empty() {
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            } else {
                Api::all_with(self.client.clone(), &resource)
            };
        let object = if name.is_empty() {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|err| format!("lookup {api_version} {kind} in {namespace:?}: {err}"))?;
            Some(serde_json::json!({
                "apiVersion": api_version,
                "kind": format!("{kind}List"),
                "metadata": list.metadata,
                "items": list.items,
            }))
        } else {
            api.get_opt(name)
                .await
                .map_err(|err| format!("lookup {api_version} {kind} {namespace}/{name}: {err}"))?
                .map(|object| serde_json::to_value(object).unwrap_or_default())
        };
        Ok(object.unwrap_or_else(|| Value::Object(Map::new())))
    }
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

impl crate::render::engine::Lookup for ClusterLookup {
    fn lookup(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<crate::render::gotemplate::value::Value, String> {
        let json = self
            .runtime
            .block_on(self.fetch(api_version, kind, namespace, name))?;
        Ok(crate::render::gotemplate::value::Value::from_json(&json))
    }
}

/// A revision rendered in full.
#[derive(Debug, Clone)]
pub struct FullRender {
    pub manifest: String,
    pub hooks: Vec<Hook>,
    pub notes: String,
}

fn settings(
    deployed: &StoredRelease,
    revision: i64,
    capabilities: &ClusterCapabilities,
    time_limit: std::time::Duration,
    lookup: Option<Arc<dyn crate::render::engine::Lookup>>,
) -> RenderSettings {
    RenderSettings {
        release_name: deployed.release.name().to_string(),
        namespace: deployed.release.namespace().to_string(),
        revision,
        is_upgrade: revision > 1,
        kube_version: capabilities.kube_version.clone(),
        api_versions: capabilities.api_versions.clone(),
        flavor: match deployed.release.writer() {
            Writer::Helm3 => HelmFlavor::Helm3,
            Writer::Helm4 => HelmFlavor::Helm4,
        },
        lookup,
        skip_schema_validation: false,
        budget: crate::render::gotemplate::exec::RenderBudget {
            time_limit,
            ..Default::default()
        },
    }
}

fn render(
    deployed: &StoredRelease,
    config: &Map<String, Value>,
    revision: i64,
    capabilities: &ClusterCapabilities,
    time_limit: std::time::Duration,
    subcharts: &[Chart],
    lookup: Option<Arc<dyn crate::render::engine::Lookup>>,
) -> Result<RenderedRelease, String> {
    let chart = deployed
        .release
        .chart
        .as_ref()
        .ok_or_else(|| "the release record holds no chart".to_string())?;
    let chart = serde_json::to_value(chart)
        .map_err(|err| format!("the record's chart cannot be read: {err}"))?;
    let settings = settings(deployed, revision, capabilities, time_limit, lookup);
    render_from_record_with_subcharts(&chart, &Value::Object(config.clone()), &settings, subcharts)
        .map_err(|err| {
            debug!(release = %deployed.release.name(), error = %err, "render failed");
            err.to_string()
        })
}

/// Where two renderings of a manifest first differ, for the patch-mode reason.
fn first_difference(stored: &str, rendered: &str) -> String {
    let clip = |line: &str| {
        let line = line.trim();
        match line.char_indices().nth(80) {
            Some((end, _)) => format!("{}…", &line[..end]),
            None => line.to_string(),
        }
    };
    let mut stored_lines = stored.lines();
    let mut rendered_lines = rendered.lines();
    let mut number = 0;
    loop {
        number += 1;
        match (stored_lines.next(), rendered_lines.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => {
                return format!(
                    "line {number}: stored `{}`, re-rendered `{}`",
                    clip(a),
                    clip(b)
                );
            }
            (Some(a), None) => {
                return format!("line {number}: stored `{}`, re-rendered nothing", clip(a));
            }
            (None, Some(b)) => {
                return format!("line {number}: stored nothing, re-rendered `{}`", clip(b));
            }
            (None, None) => return "the line endings differ".to_string(),
        }
    }
}

/// Renders the new revision (`revision`, with `config`) when the deployed revision re-renders
/// byte-identically (manifest and every hook) with `subcharts`; `Err` is why patch mode is
/// used instead. Each of the two renders may take half of `time_limit`, so the thread ends by
/// itself when its caller stops waiting.
pub fn full_render(
    deployed: &StoredRelease,
    config: &Map<String, Value>,
    revision: i64,
    capabilities: &ClusterCapabilities,
    time_limit: std::time::Duration,
    subcharts: &[Chart],
    lookup: Option<Arc<dyn crate::render::engine::Lookup>>,
) -> Result<FullRender, String> {
    let time_limit = time_limit / 2;
    let with_subcharts = if subcharts.is_empty() {
        ""
    } else {
        " with the fetched subcharts"
    };
    let stored_manifest = deployed.release.manifest.as_deref().unwrap_or_default();
    let stored_hooks = deployed.release.hooks.clone().unwrap_or_default();
    let current = render(
        deployed,
        &deployed.release.config(),
        deployed.release.version(),
        capabilities,
        time_limit,
        subcharts,
        lookup.clone(),
    )
    .map_err(|err| {
        format!(
            "re-rendering revision {}{with_subcharts} failed: {err}",
            deployed.release.version()
        )
    })?;
    if current.manifest != stored_manifest {
        debug!(release = %deployed.release.name(), "stored manifest does not re-render identically; patch mode");
        return Err(format!(
            "revision {} does not re-render byte for byte{with_subcharts} ({})",
            deployed.release.version(),
            first_difference(stored_manifest, &current.manifest)
        ));
    }
    let hooks_match = current.hooks.len() == stored_hooks.len()
        && current
            .hooks
            .iter()
            .zip(&stored_hooks)
            .all(|(rendered, stored)| {
                stored.manifest.as_deref() == Some(rendered.manifest.as_str())
                    && stored.path.as_deref() == Some(rendered.path.as_str())
            });
    if !hooks_match {
        return Err(format!(
            "the hooks of revision {} do not re-render byte for byte{with_subcharts}",
            deployed.release.version()
        ));
    }
    let next = render(
        deployed,
        config,
        revision,
        capabilities,
        time_limit,
        subcharts,
        lookup,
    )
    .map_err(|err| format!("rendering the new revision failed: {err}"))?;
    if next.hooks.len() != stored_hooks.len() {
        return Err("the new revision has a different set of hooks".to_string());
    }
    // Hooks keep everything Helm recorded about them (last run, …); only their text changes.
    let hooks = stored_hooks
        .into_iter()
        .zip(&next.hooks)
        .map(|(mut stored, rendered)| {
            stored.manifest = Some(rendered.manifest.clone());
            stored
        })
        .collect();
    Ok(FullRender {
        manifest: next.manifest,
        hooks,
        notes: next.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::{first_difference, split_api_version};

    #[test]
    fn lookup_api_versions_split_into_group_and_version() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(
            split_api_version("networking.k8s.io/v1"),
            ("networking.k8s.io", "v1")
        );
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nB\nc\n"),
            "line 2: stored `b`, re-rendered `B`"
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            "line 2: stored nothing, re-rendered `b`"
        );
    }
}
