//! Connects to the cluster the way kubectl does: `--kubeconfig`, `KUBECONFIG`, `--context`,
//! and the in-cluster service account when running in a pod.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Cluster connection flags shared by every command that talks to the apiserver.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long = "context", global = true, value_name = "NAME")]
    pub context: Option<String>,
}

/// Errors while building a cluster client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use kubeconfig{}", context.as_deref().map(|c| format!(" context {c:?}")).unwrap_or_default())]
    Kubeconfig {
        context: Option<String>,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no cluster configuration found (set KUBECONFIG or --kubeconfig, or run in a pod)")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot create a Kubernetes client")]
    Client(#[source] kube::Error),
}

impl ClusterArgs {
    /// Resolves the client configuration as kubectl would.
    pub async fn config(&self) -> Result<Config, Error> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        if let Some(path) = &self.kubeconfig {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| Error::ReadKubeconfig {
                    path: path.clone(),
                    source,
                })?;
            return Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    context: self.context.clone(),
                    source,
                });
        }
        if self.context.is_some() {
            return Config::from_kubeconfig(&options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    context: self.context.clone(),
                    source,
                });
        }
        Config::infer().await.map_err(Error::Infer)
    }

    /// Builds a client for the resolved configuration. Requests carry the user agent
    /// `keelson/<version>`, so audit logs and apiserver metrics can tell keelson apart.
    pub async fn client(&self) -> Result<Client, Error> {
        let mut config = self.config().await?;
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("keelson/", env!("CARGO_PKG_VERSION"))),
        ));
        client_for(config).map_err(Error::Client)
    }
}

/// A client like `Client::try_from(config)` builds, except that its sockets set `TCP_NODELAY`.
///
/// kube 5's own connector leaves Nagle's algorithm on (kube-rs issue #2056). After the TLS
/// handshake the client's Finished message is still unacknowledged when the request is written,
/// so Nagle holds the request back until the apiserver's delayed ACK arrives: 40 ms on Linux,
/// measured here as most of a short `keelson list`. Only the connector differs from kube's
/// stack (TLS from the kubeconfig, timeouts, base URI, retries, auth, extra headers). Set-ups
/// this stack does not reproduce (proxies, client certificates from exec plugins, whose expiry
/// kube tracks) keep kube's builder.
fn client_for(config: Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    if config.proxy_url.is_some() || config.auth_info.exec.is_some() {
        return Client::try_from(config);
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}

/// Installs the process-wide rustls crypto provider (ring) that kube and reqwest share.
/// Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error and its causes joined with `: `, the way every keelson message shows errors. An
/// apiserver answer (`kube::Error::Api`, also boxed) prints once as its message and code,
/// `secrets "x" not found (404 NotFound)`, never as kube's debug dump of the Status; the chain
/// stops there because the Status is its only further cause.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = Some(err);
    while let Some(cause) = current {
        let kube_error = cause
            .downcast_ref::<kube::Error>()
            .or_else(|| cause.downcast_ref::<Box<kube::Error>>().map(|b| &**b));
        if let Some(kube::Error::Api(status)) = kube_error {
            parts.push(api_status_text(status));
            break;
        }
        if let Some(status) = cause.downcast_ref::<kube::core::Status>() {
            parts.push(api_status_text(status));
            break;
        }
        parts.push(cause.to_string());
        current = cause.source();
    }
    parts.join(": ")
}

/// An apiserver Status as `message (code reason)`.
pub fn api_status_text(status: &kube::core::Status) -> String {
    let mut text = status.message.clone();
    if text.is_empty() {
        text = "the apiserver gave no message".to_string();
    }
    match (status.code, status.reason.is_empty()) {
        (0, true) => text,
        (0, false) => format!("{text} ({})", status.reason),
        (code, true) => format!("{text} ({code})"),
        (code, false) => format!("{text} ({code} {})", status.reason),
    }
}

/// A kube client error as users should read it: an apiserver's answer as its message and code,
/// anything else as its own text.
pub fn api_error_text(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => api_status_text(status),
        other => other.to_string(),
    }
}
