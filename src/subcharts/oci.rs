//! Charts in OCI registries (`oci://host/path`): the chart manifest at the version's tag and
//! its chart content layer, through the registry client (tokens, credentials, rate limits,
//! size caps; every body checked against its digest).

use serde::Deserialize;

use crate::registry::{ImageRef, RegistryClient};

use super::{MAX_ARCHIVE_BYTES, Wanted};

/// The media types Helm gives a chart's archive layer (the second one by helm before 3.7).
const CHART_LAYER_TYPES: [&str; 2] = [
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    "application/tar+gzip",
];
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(default, rename = "mediaType")]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: u64,
}

/// Downloads `wanted` from `oci://<location>`; returns the archive and its digest (the layer's).
pub async fn fetch(
    registry: &RegistryClient,
    location: &str,
    wanted: &Wanted,
) -> Result<(Vec<u8>, String), String> {
    let location = location.trim_end_matches('/');
    let reference = format!("{location}/{}", wanted.name);
    let image = ImageRef::parse(&reference)
        .map_err(|err| format!("oci://{reference} is not a valid OCI reference: {err}"))?;
    // OCI tags cannot hold `+`; helm pushes `1.0.0+build` as `1.0.0_build`.
    let tag = wanted.version.replace('+', "_");
    let (body, manifest_digest) = registry
        .manifest(&image, &tag, MANIFEST_TYPE)
        .await
        .map_err(|err| crate::cluster::error_chain(&err))?;
    let manifest: Manifest = serde_json::from_slice(&body).map_err(|err| {
        format!("the manifest of oci://{reference}:{tag} ({manifest_digest}) is not JSON: {err}")
    })?;
    let layer = manifest
        .layers
        .iter()
        .find(|layer| CHART_LAYER_TYPES.contains(&layer.media_type.as_str()))
        .ok_or_else(|| {
            format!(
                "oci://{reference}:{tag} ({manifest_digest}) has no {} layer: it is not a Helm chart",
                CHART_LAYER_TYPES[0]
            )
        })?;
    if layer.size > MAX_ARCHIVE_BYTES as u64 {
        return Err(format!(
            "the chart layer of oci://{reference}:{tag} is {} bytes, more than the {MAX_ARCHIVE_BYTES}-byte limit",
            layer.size
        ));
    }
    let bytes = registry
        .blob(&image, &layer.digest, MAX_ARCHIVE_BYTES)
        .await
        .map_err(|err| crate::cluster::error_chain(&err))?;
    Ok((bytes, layer.digest.clone()))
}
