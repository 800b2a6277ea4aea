//! Registry flags shared by every command that talks to registries (`--pull-secret`,
//! `--insecure-registry`), turned into a [`RegistryConfig`].

use std::path::PathBuf;

use super::{Credentials, Error, RegistryConfig};

/// Registry flags; flatten into any command that lists tags or resolves digests.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Registry credentials: a Kubernetes pull Secret (kubernetes.io/dockerconfigjson or
    /// kubernetes.io/dockercfg, YAML or JSON) or a docker config.json. Repeatable.
    #[arg(long = "pull-secret", value_name = "FILE")]
    pub pull_secrets: Vec<PathBuf>,
    /// A registry that may use plain HTTP or a self-signed certificate. Repeatable.
    /// Loopback registries (127.0.0.0/8, localhost, ::1) never need this.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

impl RegistryArgs {
    /// The client configuration these flags describe, on top of the defaults.
    pub fn config(&self) -> Result<RegistryConfig, Error> {
        let mut credentials = Credentials::none();
        for path in &self.pull_secrets {
            credentials.merge(Credentials::from_file(path)?);
        }
        Ok(RegistryConfig {
            insecure_registries: self.insecure_registries.clone(),
            credentials,
            ..RegistryConfig::default()
        })
    }
}
