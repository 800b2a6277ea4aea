//! `keelson run`: the controller as a long-running process (what the chart installs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::apply::Applier;
use crate::cluster::ClusterArgs;
use crate::controller::http::{self, WebhookAuth};
use crate::controller::leader::{self, LeaseConfig};
use crate::controller::metrics::Metrics;
use crate::controller::releases::{self, Releases, WatchScope};
use crate::controller::workloads as controller_workloads;
use crate::controller::{Controller, Signals};
use crate::keel::Schedule;
use crate::registry::{RegistryArgs, RegistryClient};
use crate::storage::{DEFAULT_HISTORY_MAX, Driver, DriverKind, Storage};
use crate::updater::{Updater, UpdaterConfig};

/// Arguments of `keelson run`. Each flag has a `KEELSON_*` variable for the chart; secrets
/// (the webhook token) only come from the environment or a file, never from a flag.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the HTTP server (webhooks, /metrics, /healthz, /readyz).
    #[arg(long, env = "KEELSON_LISTEN", default_value = "0.0.0.0:9300")]
    pub listen: SocketAddr,
    /// Namespaces to watch (repeatable; default: the kubeconfig context's namespace).
    #[arg(
        short = 'n',
        long = "namespace",
        env = "KEELSON_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Watch every namespace.
    #[arg(short = 'A', long, env = "KEELSON_ALL_NAMESPACES", conflicts_with_all = ["namespaces", "namespace_selector"])]
    pub all_namespaces: bool,
    /// Watch the namespaces whose labels match this selector (e.g. keelson=enabled).
    #[arg(
        long,
        env = "KEELSON_NAMESPACE_SELECTOR",
        conflicts_with = "namespaces"
    )]
    pub namespace_selector: Option<String>,
    /// Label selector on the release records, ANDed with owner=helm.
    #[arg(short = 'l', long, env = "KEELSON_SELECTOR")]
    pub selector: Option<String>,
    /// Where Helm keeps release records (like HELM_DRIVER).
    #[arg(long, value_enum, env = "KEELSON_DRIVER", ignore_case = true, default_value_t = DriverKind::Secret)]
    pub driver: DriverKind,
    /// The poll schedule of releases whose keel block sets none (and of workloads without
    /// `keel.sh/pollSchedule`).
    #[arg(long, env = "KEELSON_DEFAULT_SCHEDULE", default_value = crate::keel::DEFAULT_POLL_SCHEDULE)]
    pub default_schedule: String,
    /// Revisions kept per release, like helm's --history-max (0 = unlimited).
    #[arg(long, env = "KEELSON_HISTORY_MAX", default_value_t = DEFAULT_HISTORY_MAX)]
    pub history_max: usize,
    /// Run the chart's pre-/post-upgrade hooks around each image update.
    #[arg(long, env = "KEELSON_RUN_HOOKS")]
    pub run_hooks: bool,
    /// How long each hook Job or Pod may run when --run-hooks is set, in seconds.
    #[arg(
        long,
        env = "KEELSON_HOOK_TIMEOUT",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    pub hook_timeout: u64,
    /// Updates written at the same time, at most.
    #[arg(long, env = "KEELSON_MAX_CONCURRENT_UPDATES", default_value_t = 4)]
    pub max_concurrent_updates: usize,
    /// How long one release's render may take, in seconds, before that release fails alone.
    #[arg(
        long,
        env = "KEELSON_RENDER_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub render_timeout: u64,
    /// A file holding the webhook token (else $KEELSON_WEBHOOK_TOKEN).
    #[arg(long, env = "KEELSON_WEBHOOK_TOKEN_FILE", value_name = "FILE")]
    pub webhook_token_file: Option<PathBuf>,
    /// Accept webhooks without credentials, as Keel does. Anyone who can reach the port can
    /// then make keelson check (never choose) tags.
    #[arg(long, env = "KEELSON_ALLOW_UNAUTHENTICATED_WEBHOOKS")]
    pub allow_unauthenticated_webhooks: bool,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else the context's).
    #[arg(long, env = "KEELSON_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "KEELSON_LEADER_ELECTION_LEASE",
        default_value = "keelson-leader"
    )]
    pub leader_election_lease: String,
    /// Seconds a leader's Lease lasts without renewal.
    #[arg(
        long,
        env = "KEELSON_LEASE_DURATION",
        default_value_t = 15,
        value_name = "SECONDS"
    )]
    pub lease_duration: u64,
    /// `host:port` where other replicas reach this one's webhooks while it leads (default:
    /// $POD_IP with the --listen port, else the --listen address when it names one host).
    #[arg(long, env = "KEELSON_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// How long SIGTERM waits for the update in flight, in seconds.
    #[arg(
        long,
        env = "KEELSON_SHUTDOWN_GRACE",
        default_value_t = 25,
        value_name = "SECONDS"
    )]
    pub shutdown_grace: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub subcharts: crate::subcharts::SubchartArgs,
}

/// A random hex string (for the Lease identity).
fn random_suffix() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn webhook_token(args: &RunArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.webhook_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the webhook token file {}", path.display()))?;
        let token = text.trim().to_string();
        if token.is_empty() {
            anyhow::bail!("the webhook token file {} is empty", path.display());
        }
        return Ok(Some(token));
    }
    Ok(std::env::var("KEELSON_WEBHOOK_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// glibc gives every thread that allocates its own 64 MiB heap arena; a long-running process
/// whose blocking pool decodes records on a few threads then holds several mostly empty arenas
/// (measured: 84 MiB resident for 1,000 releases against 47 MiB with one arena). Two arenas
/// keep the memory of an idle controller small at no measurable cost to its speed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before the controller starts
    // its threads, and a refused value (return 0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs the controller until SIGTERM: then stops taking work, lets the update in flight
/// finish, hands back the Lease and exits 0.
pub async fn run(args: RunArgs, cluster: &ClusterArgs) -> anyhow::Result<ExitCode> {
    limit_malloc_arenas();
    // Everything that can be wrong with the arguments is found before touching the cluster.
    let default_schedule = Schedule::parse(&args.default_schedule)
        .map_err(|err| anyhow::anyhow!("--default-schedule: {err}"))?;
    let token = webhook_token(&args)?;
    if token.is_none() && !args.allow_unauthenticated_webhooks {
        warn!(
            "no webhook token (KEELSON_WEBHOOK_TOKEN or --webhook-token-file): every webhook is answered 401"
        );
    }
    let notify_config = crate::notify::Config::from_env().map_err(|err| anyhow::anyhow!(err))?;
    let registry_config = args.registry.config()?;
    let registry = RegistryClient::new(registry_config.clone())
        .context("cannot set up the registry client")?;
    let client = cluster.client().await?;
    let default_namespace = client.default_namespace().to_string();

    let lease_namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| {
            std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| default_namespace.clone());
    let identity = format!(
        "{}-{}",
        std::env::var("POD_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "keelson".to_string()),
        random_suffix()
    );
    // Where a standby hands webhooks on: the flag, else the pod's IP (the chart passes it),
    // else the listen address when it names one host.
    let advertise = args
        .advertise_address
        .clone()
        .or_else(|| {
            std::env::var("POD_IP")
                .ok()
                .filter(|ip| !ip.is_empty())
                .map(|ip| {
                    SocketAddr::new(ip.parse().unwrap_or(args.listen.ip()), args.listen.port())
                        .to_string()
                })
        })
        .or_else(|| (!args.listen.ip().is_unspecified()).then(|| args.listen.to_string()));
    let lease = LeaseConfig {
        namespace: lease_namespace,
        name: args.leader_election_lease.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_duration.max(2)),
        address: advertise,
    };

    let subcharts = crate::subcharts::SubchartFetcher::new(
        args.subcharts.sources(Some(&client)).await?,
        &registry_config,
    )?;
    let updater = Updater {
        storage: Storage::new(Driver::new(client.clone(), args.driver)),
        registry,
        applier: Applier::new(client.clone()),
        client: client.clone(),
        registry_config,
        config: UpdaterConfig {
            history_max: args.history_max,
            dry_run: false,
            retry_failed: false,
            run_hooks: args.run_hooks,
            hook_timeout: Duration::from_secs(args.hook_timeout),
            render_timeout: Duration::from_secs(args.render_timeout.max(1)),
            holder: Some(crate::updater::Holder {
                identity: identity.clone(),
                lease_namespace: lease.namespace.clone(),
                lease_name: lease.name.clone(),
            }),
        },
        capabilities: Default::default(),
        subcharts,
        pull_clients: Default::default(),
    };

    let metrics = Arc::new(Metrics::default());
    let releases = Arc::new(Releases::new(default_schedule, metrics.clone()));
    let workload_store = Arc::new(controller_workloads::Workloads::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (leading_tx, leading_rx) = watch::channel(false);
    let (synced_tx, synced_rx) = watch::channel(false);
    let controller = Controller::new(
        updater,
        releases.clone(),
        workload_store.clone(),
        metrics.clone(),
        Signals {
            leading: leading_rx.clone(),
            synced: synced_rx,
            stopping: stop_rx.clone(),
        },
        args.max_concurrent_updates,
        Some((
            kube::Api::namespaced(client.clone(), &lease.namespace),
            lease.name.clone(),
        )),
        crate::notify::Notifier::start(notify_config, metrics.clone(), Some(client.clone())),
    );

    let listener = http::bind(args.listen).await?;
    let selector = match args.selector.as_deref().map(str::trim) {
        Some(extra) if !extra.is_empty() => format!("owner=helm,{extra}"),
        _ => "owner=helm".to_string(),
    };

    // Watches report changed releases here; the controller plans them at once.
    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel();
    let (workload_tx, mut workload_rx) = mpsc::unbounded_channel();
    let mut watches = Vec::new();
    // Each namespace (or all of them) gets the release-record watch and the workload watches
    // in one task, so a namespace leaving the selector stops both.
    let start_watch = {
        let (client, releases, selector, changed_tx) = (
            client.clone(),
            releases.clone(),
            selector.clone(),
            changed_tx.clone(),
        );
        let (workload_store, workload_tx) = (workload_store.clone(), workload_tx.clone());
        let kind = args.driver;
        move |namespace: Option<String>, synced: watch::Sender<bool>| {
            let records = releases::watch(
                client.clone(),
                kind,
                WatchScope {
                    namespace: namespace.clone(),
                    selector: selector.clone(),
                },
                releases.clone(),
                changed_tx.clone(),
                synced,
            );
            let guard = namespace
                .clone()
                .map(|namespace| controller_workloads::NamespaceGuard {
                    workloads: workload_store.clone(),
                    namespace,
                });
            let workloads = controller_workloads::watch(
                client.clone(),
                namespace.clone(),
                workload_store.clone(),
                workload_tx.clone(),
            );
            let votes = crate::controller::votes::watch(
                client.clone(),
                namespace,
                changed_tx.clone(),
                workload_tx.clone(),
            );
            tokio::spawn(async move {
                let _guard = guard;
                futures::join!(records, workloads, votes);
            })
        }
    };
    let scope_text;
    if let Some(namespace_selector) = args.namespace_selector.clone() {
        scope_text = format!("namespaces matching {namespace_selector:?}");
        let start = start_watch.clone();
        watches.push(tokio::spawn(releases::watch_namespaces(
            client.clone(),
            namespace_selector,
            move |namespace| start(Some(namespace), watch::Sender::new(false)),
            synced_tx,
            releases.clone(),
            changed_tx.clone(),
        )));
    } else {
        let scopes: Vec<Option<String>> = if args.all_namespaces {
            vec![None]
        } else if args.namespaces.is_empty() {
            vec![Some(default_namespace.clone())]
        } else {
            args.namespaces.iter().cloned().map(Some).collect()
        };
        scope_text = scopes
            .iter()
            .map(|s| s.clone().unwrap_or_else(|| "all namespaces".to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut receivers = Vec::new();
        for namespace in scopes {
            let (tx, rx) = watch::channel(false);
            receivers.push(rx);
            watches.push(start_watch(namespace, tx));
        }
        // Ready once every watch has listed.
        tokio::spawn(async move {
            for mut rx in receivers {
                let _ = rx.wait_for(|synced| *synced).await;
            }
            let _ = synced_tx.send(true);
        });
    }
    info!(scope = %scope_text, identity = %identity, lease = %format!("{}/{}", lease.namespace, lease.name), "keelson controller starting");

    {
        let controller = controller.clone();
        tokio::spawn(async move {
            while let Some((key, settings_changed)) = workload_rx.recv().await {
                controller.workload_changed(key, settings_changed);
            }
        });
    }
    {
        let controller = controller.clone();
        tokio::spawn(async move {
            while let Some((key, settings_changed)) = changed_rx.recv().await {
                controller.release_changed(key, settings_changed);
            }
        });
    }
    let leader_task = {
        let metrics = metrics.clone();
        let mut leading = leading_rx.clone();
        tokio::spawn(async move {
            loop {
                metrics.set_gauge(
                    "keelson_leader",
                    &[],
                    if *leading.borrow() { 1.0 } else { 0.0 },
                );
                if leading.changed().await.is_err() {
                    break;
                }
            }
        });
        let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &lease.namespace);
        tokio::spawn(leader::run(api, lease.clone(), leading_tx, stop_rx.clone()))
    };
    let scheduler = tokio::spawn(controller.clone().run_scheduler());
    let server = tokio::spawn(http::serve(
        listener,
        controller.clone(),
        WebhookAuth {
            token,
            allow_unauthenticated: args.allow_unauthenticated_webhooks,
        },
        stop_rx.clone(),
    ));

    termination().await;
    info!("shutting down: no new work; waiting for the update in flight");
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    if !controller
        .drained(Duration::from_secs(args.shutdown_grace))
        .await
    {
        warn!(
            "an update was still running at the end of the grace period; its pending record is repaired by the next leader"
        );
    }
    // The leader task hands the Lease back once it sees the stop.
    let _ = tokio::time::timeout(Duration::from_secs(5), leader_task).await;
    server.abort();
    for watch in watches {
        watch.abort();
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}
