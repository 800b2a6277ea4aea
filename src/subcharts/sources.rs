//! Where subcharts come from and with which credentials: Helm's own `repositories.yaml` and
//! registry `config.json` (when keelson runs where helm runs), and Secrets named by flags (when
//! it runs in the cluster). See docs/subcharts.md.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
#[cfg(test)]
use serde_json::Value as Json;

use crate::registry::Credentials;

/// Flags of every command that may re-render a release with dependencies.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SubchartArgs {
    /// Where fetched dependency archives are kept between runs (default:
    /// $XDG_CACHE_HOME/keelson/charts, else ~/.cache/keelson/charts).
    #[arg(
        long = "chart-cache-dir",
        env = "KEELSON_CHART_CACHE_DIR",
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,
    /// Helm's repositories.yaml: credentials and TLS settings of HTTP chart repositories
    /// (default: helm's, $HELM_CONFIG_HOME or ~/.config/helm).
    #[arg(
        long = "repository-config",
        env = "HELM_REPOSITORY_CONFIG",
        value_name = "FILE"
    )]
    pub repository_config: Option<PathBuf>,
    /// Helm's registry config.json: credentials of OCI chart registries (default: helm's).
    #[arg(
        long = "registry-config",
        env = "HELM_REGISTRY_CONFIG",
        value_name = "FILE"
    )]
    pub registry_config: Option<PathBuf>,
    /// A Secret NAMESPACE/NAME with chart repository credentials: `url` with `username`,
    /// `password`, `ca.crt`, `tls.crt`/`tls.key`, `insecureSkipTLSVerify` for an HTTP
    /// repository, or a kubernetes.io/dockerconfigjson Secret for OCI registries. Repeatable.
    #[arg(
        long = "chart-repository-secret",
        env = "KEELSON_CHART_REPOSITORY_SECRETS",
        value_delimiter = ',',
        value_name = "NAMESPACE/NAME"
    )]
    pub repository_secrets: Vec<String>,
    /// Never fetch dependencies: releases of charts with dependencies are updated in patch mode.
    #[arg(long = "no-fetch-subcharts", env = "KEELSON_NO_FETCH_SUBCHARTS")]
    pub no_fetch: bool,
}

/// An HTTP chart repository's settings (one entry of `repositories.yaml`, or a Secret).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepositoryEntry {
    /// Helm's repository name (`@name` in Chart.yaml); empty for Secrets without one.
    pub name: String,
    pub url: String,
    pub username: String,
    pub password: String,
    /// PEM bundles, already read.
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// Send the credentials to archive URLs on other hosts too (Helm's `pass_credentials_all`).
    pub pass_credentials_all: bool,
    /// Where the entry was read, for messages.
    pub source: String,
    /// Why the entry cannot be used (a CA or key file it names cannot be read); reported when
    /// a dependency needs this repository, so one stale entry does not stop keelson.
    pub problem: Option<String>,
}

impl std::fmt::Debug for RepositoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryEntry")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

impl RepositoryEntry {
    /// Whether this entry covers `repository_url` (same URL, or a prefix of it at a `/`).
    pub fn covers(&self, repository_url: &str) -> bool {
        let own = self.url.trim_end_matches('/');
        let other = repository_url.trim_end_matches('/');
        !own.is_empty()
            && (own == other
                || other
                    .strip_prefix(own)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

/// Everything the fetcher knows about repositories before it fetches anything.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub repositories: Vec<RepositoryEntry>,
    /// Credentials for OCI chart registries (Helm's registry config, dockerconfigjson Secrets).
    pub registry_credentials: Credentials,
    pub cache_dir: Option<PathBuf>,
    pub disabled: bool,
}

impl Sources {
    /// The repository settings for a dependency's repository URL: Secrets first (they are
    /// named explicitly), then repositories.yaml; the longest matching URL wins.
    pub fn repository_for(&self, url: &str) -> Option<&RepositoryEntry> {
        self.repositories
            .iter()
            .filter(|entry| entry.covers(url))
            .max_by_key(|entry| {
                (
                    entry.url.trim_end_matches('/').len(),
                    entry.source.starts_with("Secret"),
                )
            })
    }

    /// `@name` / `alias:name` in Chart.yaml: the URL of the repositories.yaml entry `name`.
    pub fn named_repository(&self, name: &str) -> Option<&RepositoryEntry> {
        self.repositories.iter().find(|entry| entry.name == name)
    }
}

/// Helm's configuration directory: `$HELM_CONFIG_HOME`, else `$XDG_CONFIG_HOME/helm`, else
/// `~/.config/helm` (Linux defaults of helm's `helmpath`).
fn helm_config_home() -> Option<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("HELM_CONFIG_HOME")
        .or_else(|| from_env("XDG_CONFIG_HOME").map(|dir| dir.join("helm")))
        .or_else(|| from_env("HOME").map(|home| home.join(".config/helm")))
}

/// The default cache directory: `$XDG_CACHE_HOME/keelson/charts`, else `~/.cache/keelson/charts`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("XDG_CACHE_HOME")
        .map(|dir| dir.join("keelson/charts"))
        .or_else(|| from_env("HOME").map(|home| home.join(".cache/keelson/charts")))
}

impl SubchartArgs {
    /// Reads helm's files and the named Secrets. A file that does not exist is no
    /// configuration (as for helm); helm's files that cannot be parsed are logged and left out
    /// (they concern only the releases that need them); a named Secret that cannot be read is
    /// an error.
    pub async fn sources(&self, client: Option<&kube::Client>) -> anyhow::Result<Sources> {
        let mut sources = Sources {
            cache_dir: self.cache_dir.clone().or_else(default_cache_dir),
            disabled: self.no_fetch,
            ..Sources::default()
        };
        let config_home = helm_config_home();
        let repository_file = self
            .repository_config
            .clone()
            .or_else(|| config_home.as_ref().map(|d| d.join("repositories.yaml")));
        if let Some(path) = repository_file.filter(|p| p.exists()) {
            match read_repositories_yaml(&path) {
                Ok(entries) => sources.repositories = entries,
                Err(err) => tracing::warn!(error = %err, "ignoring helm's repositories file"),
            }
        }
        let registry_file = self
            .registry_config
            .clone()
            .or_else(|| config_home.as_ref().map(|d| d.join("registry/config.json")));
        if let Some(path) = registry_file.filter(|p| p.exists()) {
            match Credentials::from_file(&path) {
                Ok(credentials) => sources.registry_credentials = credentials,
                Err(err) => {
                    tracing::warn!(file = %path.display(), error = %err, "ignoring helm's registry config")
                }
            }
        }
        if !self.repository_secrets.is_empty() {
            let client = client.ok_or_else(|| {
                anyhow::anyhow!("--chart-repository-secret needs a cluster connection")
            })?;
            for reference in &self.repository_secrets {
                let (namespace, name) = reference.split_once('/').ok_or_else(|| {
                    anyhow::anyhow!(
                        "--chart-repository-secret {reference:?}: expected NAMESPACE/NAME"
                    )
                })?;
                let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
                let secret = api.get(name).await.map_err(|err| {
                    anyhow::anyhow!("cannot read chart repository Secret {reference}: {err}")
                })?;
                match secret.type_.as_deref() {
                    Some("kubernetes.io/dockerconfigjson" | "kubernetes.io/dockercfg") => {
                        let credentials = Credentials::from_secret(&secret)
                            .map_err(|err| anyhow::anyhow!("Secret {reference}: {err}"))?;
                        sources.registry_credentials.merge(credentials);
                    }
                    _ => sources
                        .repositories
                        .push(repository_from_secret(&secret, reference)?),
                }
            }
        }
        Ok(sources)
    }
}

#[derive(Deserialize)]
struct RepositoriesFile {
    #[serde(default)]
    repositories: Vec<RepositoryLine>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RepositoryLine {
    name: String,
    url: String,
    username: String,
    password: String,
    #[serde(rename = "certFile")]
    cert_file: String,
    #[serde(rename = "keyFile")]
    key_file: String,
    #[serde(rename = "caFile")]
    ca_file: String,
    insecure_skip_tls_verify: bool,
    pass_credentials_all: bool,
}

fn read_pem(
    path: &str,
    what: &str,
    source: &Path,
    problem: &mut Option<String>,
) -> Option<Vec<u8>> {
    if path.is_empty() {
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            *problem = Some(format!(
                "cannot read the {what} {path} named in {}: {err}",
                source.display()
            ));
            None
        }
    }
}

/// Parses helm's `repositories.yaml` (the files it names are read now).
pub fn read_repositories_yaml(path: &Path) -> anyhow::Result<Vec<RepositoryEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    let source = path.display().to_string();
    let document = gocompat::yaml::parse_first_document(&text, &source)
        .map_err(|err| anyhow::anyhow!("{source}: {err}"))?;
    if document.is_null() {
        return Ok(Vec::new());
    }
    let file: RepositoriesFile =
        serde_json::from_value(document).map_err(|err| anyhow::anyhow!("{source}: {err}"))?;
    file.repositories
        .into_iter()
        .map(|line| {
            let mut problem = None;
            Ok(RepositoryEntry {
                ca_pem: read_pem(&line.ca_file, "CA file", path, &mut problem),
                client_cert_pem: read_pem(&line.cert_file, "certificate", path, &mut problem),
                client_key_pem: read_pem(&line.key_file, "key", path, &mut problem),
                problem,
                name: line.name,
                url: line.url,
                username: line.username,
                password: line.password,
                insecure_skip_tls_verify: line.insecure_skip_tls_verify,
                pass_credentials_all: line.pass_credentials_all,
                source: source.clone(),
            })
        })
        .collect()
}

/// A chart repository Secret: `url` and optional `name`, `username`, `password`, `ca.crt`,
/// `tls.crt`, `tls.key`, `insecureSkipTLSVerify`, `passCredentialsAll` (data or stringData).
pub fn repository_from_secret(secret: &Secret, reference: &str) -> anyhow::Result<RepositoryEntry> {
    let value = |key: &str| -> Option<Vec<u8>> {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|b| b.0.clone())
            })
    };
    let text = |key: &str| {
        value(key)
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
            .unwrap_or_default()
    };
    let url = text("url");
    if url.is_empty() {
        anyhow::bail!("chart repository Secret {reference} has no `url` key");
    }
    let flag = |key: &str| matches!(text(key).as_str(), "true" | "True" | "TRUE" | "1");
    Ok(RepositoryEntry {
        name: text("name"),
        url,
        username: text("username"),
        password: value("password")
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default(),
        ca_pem: value("ca.crt"),
        client_cert_pem: value("tls.crt"),
        client_key_pem: value("tls.key"),
        insecure_skip_tls_verify: flag("insecureSkipTLSVerify"),
        pass_credentials_all: flag("passCredentialsAll"),
        source: format!("Secret {reference}"),
        problem: None,
    })
}

/// A Secret from its JSON form (`data` base64, as the apiserver sends it).
#[cfg(test)]
fn secret_from_json(value: Json) -> Secret {
    serde_json::from_value(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helm_repositories_file() {
        let dir = std::env::temp_dir().join(format!("keelson-repos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "PEM").unwrap_or_default();
        let file = dir.join("repositories.yaml");
        std::fs::write(
            &file,
            format!(
                "apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n- caFile: {}\n  certFile: \"\"\n  insecure_skip_tls_verify: false\n  keyFile: \"\"\n  name: private\n  pass_credentials_all: false\n  password: s3cret\n  url: https://charts.example/stable\n  username: me\n",
                ca.display()
            ),
        )
        .unwrap_or_default();
        let entries = read_repositories_yaml(&file).unwrap_or_default();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "private");
        assert_eq!(entries[0].username, "me");
        assert_eq!(entries[0].ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert!(!format!("{:?}", entries[0]).contains("s3cret"));
        let sources = Sources {
            repositories: entries,
            ..Sources::default()
        };
        assert!(
            sources
                .repository_for("https://charts.example/stable/")
                .is_some()
        );
        assert!(
            sources
                .repository_for("https://charts.example/stable-2")
                .is_none()
        );
        assert!(sources.named_repository("private").is_some());
        std::fs::write(
            &file,
            "repositories:\n- name: stale\n  url: https://stale.example\n  caFile: /nonexistent/ca.pem\n",
        )
        .unwrap_or_default();
        let stale = read_repositories_yaml(&file).unwrap_or_default();
        assert_eq!(stale.len(), 1);
        assert!(
            stale[0]
                .problem
                .as_deref()
                .is_some_and(|p| p.contains("/nonexistent/ca.pem")),
            "{stale:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap_or_default();
    }

    #[test]
    fn repository_secret_keys() {
        let secret = secret_from_json(json!({
            "metadata": {"name": "charts", "namespace": "keelson"},
            "stringData": {"url": "https://charts.example", "username": "u", "password": "p"},
            "data": {"ca.crt": "UEVN", "insecureSkipTLSVerify": "dHJ1ZQ=="}
        }));
        let entry = repository_from_secret(&secret, "keelson/charts").unwrap_or_default();
        assert_eq!(entry.url, "https://charts.example");
        assert_eq!(
            (entry.username.as_str(), entry.password.as_str()),
            ("u", "p")
        );
        assert_eq!(entry.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert!(entry.insecure_skip_tls_verify);
        let without_url = secret_from_json(json!({"metadata": {"name": "x"}}));
        assert!(repository_from_secret(&without_url, "ns/x").is_err());
    }
}
