//! `keelson suggest RELEASE`: prints a `keel:` block for the release's containers, each image
//! matched to the values that produce it in the deployed revision.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cluster::ClusterArgs;
use crate::keel::{self, suggest};
use crate::storage::{Driver, DriverKind, Storage};

/// Arguments of `keelson suggest`.
#[derive(Debug, Clone, clap::Args)]
pub struct SuggestArgs {
    /// The release to suggest a block for.
    pub release: String,
    /// Namespace of the release (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where Helm keeps release records (like HELM_DRIVER).
    #[arg(long, value_enum, env = "HELM_DRIVER", ignore_case = true, default_value_t = DriverKind::Secret)]
    pub driver: DriverKind,
    /// The policy the block sets.
    #[arg(long, default_value = "patch")]
    pub policy: String,
    /// The poll schedule the block sets.
    #[arg(long, default_value = "@every 5m")]
    pub poll_schedule: String,
}

/// Runs `keelson suggest`.
pub async fn run(args: SuggestArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    keel::validate_policy(&args.policy)
        .map_err(|problem| anyhow::anyhow!("--policy: {problem}"))?;
    keel::Schedule::parse(&args.poll_schedule)
        .map_err(|err| anyhow::anyhow!("--poll-schedule: {err}"))?;
    let client = cluster.client().await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let storage = Storage::new(Driver::new(client, args.driver));
    let deployed = storage
        .deployed(&namespace, &args.release)
        .await
        .with_context(|| {
            format!(
                "cannot read release {:?} in namespace {namespace:?}",
                args.release
            )
        })?;
    let release = &deployed.release;
    let values = keel::release_values(release);
    let mut texts = vec![release.manifest.clone().unwrap_or_default()];
    texts.extend(
        release
            .hooks
            .iter()
            .flatten()
            .filter_map(|hook| hook.manifest.clone()),
    );
    let mut documents = Vec::new();
    for text in &texts {
        let parsed =
            gocompat::yaml::parse_manifest_documents(text, "manifest").with_context(|| {
                format!(
                    "cannot read the deployed manifest of release {:?} (revision {})",
                    args.release,
                    release.version()
                )
            })?;
        documents.extend(parsed);
    }
    let found = suggest::suggest(&values, &documents);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# keel block for release {} in namespace {namespace} (revision {}): add it to the \
         release's values (helm upgrade --reuse-values -f FILE)",
        args.release,
        release.version()
    )?;
    if values.get("keel").is_some_and(|v| !v.is_null()) {
        writeln!(
            out,
            "# the release already has a keel block; this one would replace it"
        )?;
    }
    out.write_all(suggest::render_block(&found, &args.policy, &args.poll_schedule).as_bytes())?;
    if found.images.is_empty() {
        eprintln!(
            "warning: no container image of release {} is produced by its values",
            args.release
        );
    }
    Ok(ExitCode::SUCCESS)
}
