//! Full-render mode for the updater: re-render the deployed revision from its stored chart and
//! config with the cluster's capabilities, and only when that reproduces the stored manifest
//! byte for byte, render the new revision the same way. Subcharts, which Helm does not store,
//! come from `subcharts` (fetched at the locked versions); anything else (a subchart that
//! cannot be fetched or differs, a `lookup` keelson does not answer, a template feature the
//! renderer lacks) falls back to patch mode, with the reason. `lookup` is answered from the
//! cluster as `helm upgrade` answers it (`super::lookup`).

use std::sync::Arc;

use kube::Client;
use serde_json::{Map, Value};
use tracing::debug;

use crate::render::chart::Chart;
use crate::render::engine::Lookup;
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
    lookup: Option<Arc<dyn Lookup>>,
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
        budget: gotemplate::RenderBudget {
            time_limit,
            ..Default::default()
        },
    }
}

fn render(
    deployed: &StoredRelease,
    config: &Map<String, Value>,
    revision: i64,
    render: &RenderInputs<'_>,
) -> Result<RenderedRelease, String> {
    let chart = deployed
        .release
        .chart
        .as_ref()
        .ok_or_else(|| "the release record holds no chart".to_string())?;
    let chart = serde_json::to_value(chart)
        .map_err(|err| format!("the record's chart cannot be read: {err}"))?;
    let settings = settings(
        deployed,
        revision,
        render.capabilities,
        render.time_limit,
        render.lookup.clone(),
    );
    render_from_record_with_subcharts(
        &chart,
        &Value::Object(config.clone()),
        &settings,
        render.subcharts,
    )
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

/// What both renders of one update share.
pub struct RenderInputs<'a> {
    pub capabilities: &'a ClusterCapabilities,
    /// For each of the two renders.
    pub time_limit: std::time::Duration,
    pub subcharts: &'a [Chart],
    /// Answers `lookup` (from the cluster, as `helm upgrade`); `None` renders offline.
    pub lookup: Option<Arc<dyn Lookup>>,
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
    lookup: Option<Arc<dyn Lookup>>,
) -> Result<FullRender, String> {
    let inputs = RenderInputs {
        capabilities,
        time_limit: time_limit / 2,
        subcharts,
        lookup,
    };
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
        &inputs,
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
    let next = render(deployed, config, revision, &inputs)
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
    use super::first_difference;

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
