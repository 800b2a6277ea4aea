//! `keelson check` (the plan, writing nothing) and `keelson reconcile --once` (plan and write
//! the new revisions) over the releases in a namespace or all namespaces.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::apply::Applier;
use crate::cluster::ClusterArgs;
use crate::registry::{RegistryArgs, RegistryClient};
use crate::storage::{DEFAULT_HISTORY_MAX, Driver, DriverKind, Storage};
use crate::updater::{
    ImagePlan, Outcome, ReleaseOutcome, RunLease, TagCache, Updater, UpdaterConfig,
};
use crate::workloads::update::{ContainerPlan, WorkloadOutcome, WorkloadResult};

/// Which releases a command covers, named as helm names the flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArgs {
    /// Namespace scope (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Label selector on the release records (e.g. -l name=web), ANDed with owner=helm; on
    /// workloads, on their own labels.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Where Helm keeps release records (like HELM_DRIVER).
    #[arg(long, value_enum, env = "HELM_DRIVER", ignore_case = true, default_value_t = DriverKind::Secret)]
    pub driver: DriverKind,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub subcharts: crate::subcharts::SubchartArgs,
}

/// Output of `keelson check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CheckOutput {
    #[default]
    Table,
    Json,
}

/// Arguments of `keelson check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = CheckOutput::Table)]
    pub output: CheckOutput,
    /// After the table, the manifest changes of each planned revision, document by document
    /// (as `helm diff` shows them). JSON output always carries them in `diff`.
    #[arg(long)]
    pub diff: bool,
}

/// Arguments of `keelson reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Run one cycle and exit (the controller runs cycles on each release's pollSchedule).
    #[arg(long, required = true)]
    pub once: bool,
    /// Revisions kept per release, like helm's --history-max (0 = unlimited).
    #[arg(long, default_value_t = DEFAULT_HISTORY_MAX)]
    pub history_max: usize,
    /// Run the chart's pre-upgrade and post-upgrade hooks around each image update. Off by
    /// default: an image bump re-applies the workloads, not the chart's upgrade jobs.
    #[arg(long)]
    pub run_hooks: bool,
    /// How long each hook Job or Pod may run when --run-hooks is set, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub hook_timeout: u64,
    /// Try moves that just failed again now. Otherwise a move that ended in failed revisions
    /// waits 1, 2, 4 … 60 minutes (or for a newer tag) before the next attempt.
    #[arg(long)]
    pub retry_failed: bool,
}

async fn updater(
    scope: &ScopeArgs,
    cluster: &ClusterArgs,
    config: UpdaterConfig,
) -> anyhow::Result<(Updater, Option<String>)> {
    let registry_config = scope.registry.config()?;
    let registry = RegistryClient::new(registry_config.clone())
        .context("cannot set up the registry client")?;
    let client = cluster.client().await?;
    // The kubeconfig is read once: the client knows the context's namespace.
    let namespace = if scope.all_namespaces {
        None
    } else {
        Some(
            scope
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
        )
    };
    let storage = Storage::new(Driver::new(client.clone(), scope.driver));
    let subcharts = crate::subcharts::SubchartFetcher::new(
        scope.subcharts.sources(Some(&client)).await?,
        &registry_config,
    )?;
    Ok((
        Updater {
            storage,
            registry,
            applier: Applier::new(client.clone()),
            client,
            registry_config,
            config,
            capabilities: Default::default(),
            subcharts,
            pull_clients: Default::default(),
        },
        namespace,
    ))
}

/// Runs `keelson check`.
pub async fn check(args: CheckArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let config = UpdaterConfig {
        dry_run: true,
        ..UpdaterConfig::default()
    };
    let (updater, namespace) = updater(&args.scope, cluster, config).await?;
    let outcomes = updater
        .run_cycle(namespace.as_deref(), args.scope.selector.as_deref())
        .await
        .with_context(|| format!("cannot list releases ({} driver)", args.scope.driver))?;
    let (workloads, problems) = crate::workloads::update::run_cycle(
        &updater,
        namespace.as_deref(),
        args.scope.selector.as_deref(),
        &TagCache::default(),
    )
    .await;
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    let plans: Vec<&ImagePlan> = outcomes.iter().flat_map(|o| &o.plans).collect();
    let mut out = std::io::stdout().lock();
    match args.output {
        CheckOutput::Json => {
            let mut objects: Vec<serde_json::Value> = plans
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            for outcome in &workloads {
                objects.extend(workload_objects(outcome)?);
            }
            writeln!(out, "{}", serde_json::to_string(&objects)?)?
        }
        CheckOutput::Table => {
            out.write_all(check_table(&outcomes).as_bytes())?;
            if plans.iter().any(|p| !p.explain.values.is_empty()) {
                out.write_all(b"\n")?;
                out.write_all(explain_table(&plans).as_bytes())?;
            }
            if !workloads.is_empty() {
                out.write_all(b"\n")?;
                out.write_all(workload_table(&workloads).as_bytes())?;
            }
            if args.diff {
                out.write_all(check_diffs(&outcomes).as_bytes())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a workload is left alone, when it is (Helm-owned, bad labels, a failure).
fn workload_note(outcome: &WorkloadOutcome) -> Option<String> {
    match &outcome.result {
        WorkloadResult::ThroughRelease { release } => {
            Some(format!("updated through its release {release}"))
        }
        WorkloadResult::BadSettings { reason } => Some(format!("not tracked: {reason}")),
        WorkloadResult::Busy { reason, .. } | WorkloadResult::Failed { reason } => {
            Some(reason.clone())
        }
        WorkloadResult::UpToDate | WorkloadResult::Updated { .. } => None,
    }
}

/// `check -o json` objects for a workload: its container plans (with `kind` and `name`), or
/// one object saying why it is left alone.
fn workload_objects(outcome: &WorkloadOutcome) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut objects: Vec<serde_json::Value> = outcome
        .plans
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    if let Some(reason) = workload_note(outcome) {
        let (kind, namespace, name) = &outcome.key;
        let release = match &outcome.result {
            WorkloadResult::ThroughRelease { release } => Some(release.clone()),
            _ => None,
        };
        objects.push(serde_json::json!({
            "kind": kind, "name": name, "namespace": namespace, "release": release,
            "target": null, "reason": reason,
        }));
    }
    Ok(objects)
}

fn workload_table(outcomes: &[WorkloadOutcome]) -> String {
    let mut rows = vec![[
        "WORKLOAD".to_string(),
        "NAMESPACE".to_string(),
        "CONTAINER".to_string(),
        "CURRENT".to_string(),
        "TARGET".to_string(),
        "REASON".to_string(),
    ]];
    for outcome in outcomes {
        let (kind, namespace, name) = &outcome.key;
        let subject = format!("{kind}/{name}");
        for plan in &outcome.plans {
            let plan: &ContainerPlan = plan;
            rows.push([
                subject.clone(),
                namespace.clone(),
                plan.container.clone(),
                plan.current.clone(),
                plan.target.clone().unwrap_or_else(|| "-".to_string()),
                plan.reason.clone().unwrap_or_default(),
            ]);
        }
        if let Some(note) = workload_note(outcome) {
            rows.push([
                subject.clone(),
                namespace.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                note,
            ]);
        }
    }
    table(&rows)
}

/// Each release's planned changes, under a header naming it and its targets.
fn check_diffs(outcomes: &[ReleaseOutcome]) -> String {
    let mut text = String::new();
    for outcome in outcomes {
        let Some(plan) = outcome.plans.iter().find(|p| p.diff.is_some()) else {
            continue;
        };
        let targets: Vec<String> = outcome
            .plans
            .iter()
            .filter_map(|p| p.target.as_ref().map(|t| format!("{} → {t}", p.current)))
            .collect();
        text.push_str(&format!(
            "\n=== {}/{}: {}\n",
            outcome.namespace,
            outcome.release,
            targets.join(", ")
        ));
        match plan.diff.as_deref() {
            Some("") => text.push_str("(the manifest does not change)\n"),
            Some(diff) => text.push_str(diff),
            None => {}
        }
    }
    text
}

fn check_table(outcomes: &[ReleaseOutcome]) -> String {
    let mut rows = vec![[
        "RELEASE".to_string(),
        "NAMESPACE".to_string(),
        "PATH".to_string(),
        "CURRENT".to_string(),
        "TARGET".to_string(),
        "REASON".to_string(),
    ]];
    for outcome in outcomes {
        for plan in &outcome.plans {
            rows.push([
                plan.release.clone(),
                plan.namespace.clone(),
                plan.path.clone(),
                plan.current.clone(),
                plan.target.clone().unwrap_or_else(|| "-".to_string()),
                match (&plan.reason, &plan.mode_reason) {
                    (Some(reason), _) => reason.clone(),
                    (None, Some(why)) if plan.target.is_some() => format!("patch mode: {why}"),
                    _ => String::new(),
                },
            ]);
        }
        let reason = match &outcome.outcome {
            Outcome::NotTracked {
                reason: Some(reason),
            } => Some(reason.clone()),
            Outcome::Busy { reason } => Some(reason.clone()),
            Outcome::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        if let Some(reason) = reason {
            rows.push([
                outcome.release.clone(),
                outcome.namespace.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                reason,
            ]);
        }
    }
    table(&rows)
}

/// Per tracked image: the values read (path=value, registry paths in the order they are tried)
/// and the reference resolved from them, with where its tag came from.
fn explain_table(plans: &[&ImagePlan]) -> String {
    let mut rows = vec![[
        "RELEASE".to_string(),
        "NAMESPACE".to_string(),
        "VALUES READ".to_string(),
        "RESOLVED".to_string(),
        "TAG FROM".to_string(),
    ]];
    for plan in plans {
        let reads: Vec<String> = plan
            .explain
            .values
            .iter()
            .map(|read| match &read.value {
                Some(value) => format!("{}={value:?}", read.path),
                None => format!("{}=(unset)", read.path),
            })
            .collect();
        rows.push([
            plan.release.clone(),
            plan.namespace.clone(),
            reads.join(" "),
            plan.explain.resolved.clone(),
            plan.explain.tag_from.label().to_string(),
        ]);
    }
    table(&rows)
}

/// Columns padded like helm's tables (tab-free, two spaces between columns).
pub(crate) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// Runs `keelson reconcile --once`. Exits 1 when any release failed.
pub async fn reconcile(args: ReconcileArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let config = UpdaterConfig {
        history_max: args.history_max,
        dry_run: false,
        run_hooks: args.run_hooks,
        hook_timeout: std::time::Duration::from_secs(args.hook_timeout),
        retry_failed: args.retry_failed,
        ..UpdaterConfig::default()
    };
    let (mut updater, namespace) = updater(&args.scope, cluster, config).await?;
    // The run's own Lease, named on every pending record it writes: another run repairs such a
    // record only once this Lease is gone (deleted at the end, or expired after a kill).
    let lease = RunLease::acquire(&updater.client).await?;
    updater.config.holder = Some(lease.holder());
    let outcomes = updater
        .run_cycle(namespace.as_deref(), args.scope.selector.as_deref())
        .await
        .with_context(|| format!("cannot list releases ({} driver)", args.scope.driver));
    if let Err(err) = lease.release().await {
        tracing::warn!(error = %crate::updater::plan::error_chain(&err), "the Lease expires on its own");
    }
    let outcomes = outcomes?;
    let (workloads, problems) = crate::workloads::update::run_cycle(
        &updater,
        namespace.as_deref(),
        args.scope.selector.as_deref(),
        &TagCache::default(),
    )
    .await;
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for outcome in &outcomes {
        let subject = format!("{}/{}", outcome.namespace, outcome.release);
        match &outcome.outcome {
            Outcome::Updated {
                revision,
                description,
                ..
            } => writeln!(
                out,
                "{subject}: revision {revision} deployed: {description}"
            )?,
            Outcome::UpToDate => {
                let held: Vec<String> = outcome
                    .plans
                    .iter()
                    .filter_map(|p| p.reason.as_ref().map(|r| format!("{}: {r}", p.path)))
                    .collect();
                if held.is_empty() {
                    writeln!(out, "{subject}: up to date")?;
                } else {
                    writeln!(out, "{subject}: held back: {}", held.join("; "))?;
                }
            }
            Outcome::NotTracked { reason: None } => {}
            Outcome::NotTracked {
                reason: Some(reason),
            } => writeln!(out, "{subject}: not tracked: {reason}")?,
            Outcome::Busy { reason } => writeln!(out, "{subject}: skipped: {reason}")?,
            Outcome::Repaired { revision, status } => writeln!(
                out,
                "{subject}: repaired pending revision {revision} (now {})",
                status.as_str()
            )?,
            Outcome::Failed { reason, revision } => {
                failed = true;
                match revision {
                    Some(revision) => {
                        writeln!(out, "{subject}: revision {revision} failed: {reason}")?
                    }
                    None => writeln!(out, "{subject}: failed: {reason}")?,
                }
            }
        }
    }
    for outcome in &workloads {
        let subject = outcome.subject();
        match &outcome.result {
            WorkloadResult::Updated { changes } => {
                let moved: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{}: {} → {}", c.name, c.old, c.new))
                    .collect();
                writeln!(out, "{subject}: patched: {}", moved.join(", "))?
            }
            WorkloadResult::UpToDate => {
                let held: Vec<String> = outcome
                    .plans
                    .iter()
                    .filter_map(|p| p.reason.as_ref().map(|r| format!("{}: {r}", p.container)))
                    .collect();
                if held.is_empty() {
                    writeln!(out, "{subject}: up to date")?;
                } else {
                    writeln!(out, "{subject}: held back: {}", held.join("; "))?;
                }
            }
            WorkloadResult::ThroughRelease { release } => {
                writeln!(out, "{subject}: updated through its release {release}")?
            }
            WorkloadResult::BadSettings { reason } => {
                writeln!(out, "{subject}: not tracked: {reason}")?
            }
            WorkloadResult::Busy { reason, .. } => writeln!(out, "{subject}: skipped: {reason}")?,
            WorkloadResult::Failed { reason } => {
                failed = true;
                writeln!(out, "{subject}: failed: {reason}")?
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
