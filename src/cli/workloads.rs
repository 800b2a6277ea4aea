//! `keelson workloads`: the Deployments, StatefulSets, DaemonSets and CronJobs that carry
//! Keel's `keel.sh/policy`, with their policy and images, or why keelson leaves them alone.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::cluster::ClusterArgs;
use crate::workloads::{self, Kind, Workload};

/// How `keelson workloads` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WorkloadsOutput {
    #[default]
    Table,
    Json,
}

/// Flags of `keelson workloads`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadsArgs {
    /// Namespace scope (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Label selector on the workloads.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = WorkloadsOutput::Table)]
    pub output: WorkloadsOutput,
}

/// One row of `keelson workloads`.
#[derive(Debug, Clone, Serialize)]
pub struct ListedWorkload {
    pub kind: Kind,
    pub name: String,
    pub namespace: String,
    pub policy: Option<String>,
    pub trigger: Option<String>,
    pub schedule: Option<String>,
    /// `container=image` of each tracked container.
    pub images: Vec<String>,
    /// Why keelson does not patch it (Helm-owned, bad labels), when so.
    pub reason: Option<String>,
}

/// The row for one workload.
pub fn listed(workload: &Workload) -> ListedWorkload {
    let mut row = ListedWorkload {
        kind: workload.kind,
        name: workload.name.clone(),
        namespace: workload.namespace.clone(),
        policy: None,
        trigger: None,
        schedule: None,
        images: Vec::new(),
        reason: None,
    };
    match &workload.settings {
        Ok(Some(settings)) => {
            row.policy = Some(settings.policy.clone());
            row.trigger = Some(settings.trigger.to_string());
            row.schedule = Some(settings.poll_schedule().to_string());
            row.images = workload
                .containers
                .iter()
                .filter(|c| settings.tracks(&c.name, c.init))
                .map(|c| format!("{}={}", c.name, c.image))
                .collect();
        }
        Ok(None) => {}
        Err(err) => row.reason = Some(format!("not tracked: {err}")),
    }
    if let Some(release) = &workload.helm_release {
        row.reason = Some(format!("updated through its release {release}"));
    }
    row
}

pub async fn run(args: WorkloadsArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    let client = cluster.client().await?;
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
        )
    };
    let (found, problems) =
        workloads::list(&client, namespace.as_deref(), args.selector.as_deref()).await;
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    let rows: Vec<ListedWorkload> = found.iter().map(listed).collect();
    let mut out = std::io::stdout().lock();
    match args.output {
        WorkloadsOutput::Json => writeln!(out, "{}", serde_json::to_string(&rows)?)?,
        WorkloadsOutput::Table => {
            let mut table = vec![[
                "KIND".to_string(),
                "NAME".to_string(),
                "NAMESPACE".to_string(),
                "POLICY".to_string(),
                "TRIGGER".to_string(),
                "IMAGES".to_string(),
                "NOTE".to_string(),
            ]];
            for row in rows {
                table.push([
                    row.kind.to_string(),
                    row.name,
                    row.namespace,
                    row.policy.unwrap_or_else(|| "-".into()),
                    row.trigger.unwrap_or_else(|| "-".into()),
                    if row.images.is_empty() {
                        "-".into()
                    } else {
                        row.images.join(",")
                    },
                    row.reason.unwrap_or_default(),
                ]);
            }
            out.write_all(super::update::table(&table).as_bytes())?;
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
