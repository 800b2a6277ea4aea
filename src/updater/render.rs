//! Full-render mode for the updater: re-render the deployed revision from its stored chart and
//! config with the cluster's capabilities, and only when that reproduces the stored manifest
//! byte for byte, render the new revision the same way. Anything else (subcharts, which Helm
//! does not store, `lookup`, a template feature the renderer lacks) falls back to patch mode.

use kube::Client;
use serde_json::{Map, Value};
use tracing::debug;

use crate::render::release::{HelmFlavor, RenderSettings, RenderedRelease, render_from_record};
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
        lookup: None,
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
) -> Option<RenderedRelease> {
    let chart = serde_json::to_value(deployed.release.chart.as_ref()?).ok()?;
    let settings = settings(deployed, revision, capabilities, time_limit);
    match render_from_record(&chart, &Value::Object(config.clone()), &settings) {
        Ok(rendered) => Some(rendered),
        Err(err) => {
            debug!(release = %deployed.release.name(), error = %err, "render failed");
            None
        }
    }
}

/// Renders the new revision (`revision`, with `config`) when the deployed revision re-renders
/// byte-identically (manifest and every hook); `None` means patch mode. Each of the two renders
/// may take half of `time_limit`, so the thread ends by itself when its caller stops waiting.
pub fn full_render(
    deployed: &StoredRelease,
    config: &Map<String, Value>,
    revision: i64,
    capabilities: &ClusterCapabilities,
    time_limit: std::time::Duration,
) -> Option<FullRender> {
    let time_limit = time_limit / 2;
    let stored_manifest = deployed.release.manifest.as_deref().unwrap_or_default();
    let stored_hooks = deployed.release.hooks.clone().unwrap_or_default();
    let current = render(
        deployed,
        &deployed.release.config(),
        deployed.release.version(),
        capabilities,
        time_limit,
    )?;
    let hooks_match = current.hooks.len() == stored_hooks.len()
        && current
            .hooks
            .iter()
            .zip(&stored_hooks)
            .all(|(rendered, stored)| {
                stored.manifest.as_deref() == Some(rendered.manifest.as_str())
                    && stored.path.as_deref() == Some(rendered.path.as_str())
            });
    if current.manifest != stored_manifest || !hooks_match {
        debug!(release = %deployed.release.name(), "stored manifest does not re-render identically; patch mode");
        return None;
    }
    let next = render(deployed, config, revision, capabilities, time_limit)?;
    if next.hooks.len() != stored_hooks.len() {
        return None;
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
    Some(FullRender {
        manifest: next.manifest,
        hooks,
        notes: next.notes,
    })
}
