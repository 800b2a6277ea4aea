//! `keelson approvals`, `keelson approve` and `keelson reject`: the approval requests of
//! releases whose `keel:` block asks for approvals and of workloads labelled
//! `keel.sh/approvals`, and votes on them.

use std::io::Write;
use std::process::ExitCode;

use crate::approvals::Approvals;
use crate::cluster::ClusterArgs;

/// Output of `keelson approvals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ApprovalsOutput {
    #[default]
    Table,
    Json,
}

/// Arguments of `keelson approvals`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Namespace scope (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, env = "HELM_NAMESPACE")]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ApprovalsOutput::Table)]
    pub output: ApprovalsOutput,
}

/// Arguments of `keelson approve` and `keelson reject`.
#[derive(Debug, Clone, clap::Args)]
pub struct VoteArgs {
    /// The approval's id (NAMESPACE/NAME), as `keelson approvals` lists it.
    pub id: String,
    /// Who votes (default: $USER): each voter counts once.
    #[arg(long)]
    pub voter: Option<String>,
}

pub async fn list(args: ListArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
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
    let approvals = Approvals::new(client).list(namespace.as_deref()).await?;
    let mut out = std::io::stdout().lock();
    match args.output {
        ApprovalsOutput::Json => writeln!(out, "{}", serde_json::to_string(&approvals)?)?,
        ApprovalsOutput::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "KIND".to_string(),
                "FOR".to_string(),
                "CURRENT".to_string(),
                "TARGET".to_string(),
                "VOTES".to_string(),
                "STATE".to_string(),
                "DEADLINE".to_string(),
            ]];
            for a in &approvals {
                rows.push([
                    a.id.clone(),
                    a.kind.clone(),
                    a.subject.clone(),
                    a.current.clone(),
                    a.target.clone(),
                    format!("{}/{}", a.votes.len(), a.required),
                    a.state.as_str().to_string(),
                    a.deadline.clone(),
                ]);
            }
            out.write_all(super::update::table(&rows).as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn vote(
    args: VoteArgs,
    cluster: &ClusterArgs,
    approve: bool,
) -> anyhow::Result<ExitCode> {
    let client = cluster.client().await?;
    let voter = args
        .voter
        .clone()
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "anonymous".to_string());
    let notify = crate::notify::Config::from_env().map_err(|err| anyhow::anyhow!(err))?;
    let approval = Approvals::new(client.clone())
        .vote(&args.id, &voter, approve)
        .await?;
    // Told here as `keelson run` tells votes cast through its API (same KEELSON_NOTIFY_*).
    let kind = match approval.state {
        crate::approvals::State::Approved => Some(crate::notify::Kind::ApprovalApproved),
        crate::approvals::State::Rejected => Some(crate::notify::Kind::ApprovalRejected),
        _ => None,
    };
    if let Some(kind) = kind {
        let subject = approval.of();
        // A workload's own `keel.sh/notify` channels, and the Event on the workload, as the
        // controller does; a workload that cannot be read is still told about, without them.
        let workload = match &subject {
            crate::subject::Subject::Workload {
                kind,
                namespace,
                name,
            } => match crate::workloads::Kind::parse(kind) {
                Some(kind) => crate::workloads::get(&client, kind, namespace, name)
                    .await
                    .unwrap_or_else(|reason| {
                        eprintln!("warning: {reason}");
                        None
                    }),
                None => None,
            },
            crate::subject::Subject::Release { .. } => None,
        };
        let message = crate::notify::Notification {
            kind,
            subject,
            images: vec![(approval.current.clone(), approval.target.clone())],
            revision: None,
            reason: Some(format!("votes: {}", approval.votes.join(", "))),
            release_notes: Vec::new(),
            channels: workload
                .as_ref()
                .map(crate::workloads::Workload::notify_channels)
                .unwrap_or_default(),
        };
        let metrics = std::sync::Arc::new(crate::controller::metrics::Metrics::default());
        if let Some(workload) = &workload {
            let events = crate::notify::Notifier::events_only(metrics.clone(), client);
            events.event(&message, workload.object_reference()).await;
        }
        crate::notify::send_now(&notify, &message, &metrics).await;
    }
    println!(
        "{}: {} ({} of {} approvals) for {} → {}",
        approval.id,
        approval.state.as_str(),
        approval.votes.len(),
        approval.required,
        approval.current,
        approval.target
    );
    Ok(ExitCode::SUCCESS)
}
