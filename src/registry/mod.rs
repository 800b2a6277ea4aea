//! Talks to container registries: image references, tags, digests, auth, politeness and caps.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keelson::registry::Error> {
//! use keelson::registry::{ImageRef, RegistryClient, RegistryConfig};
//! keelson::cluster::install_crypto_provider();
//! let client = RegistryClient::new(RegistryConfig::default())?;
//! let image = ImageRef::parse("nginx:1.25")?;
//! let tags = client.list_tags(&image).await?;
//! let digest = client.digest(&image, "1.25").await?;
//! # let _ = (tags, digest); Ok(()) }
//! ```

mod args;
pub mod auth;
mod client;
pub mod reference;

use std::time::Duration;

pub use args::RegistryArgs;
pub use auth::{AuthEntry, CredentialError, Credentials};
pub use client::{
    Limits, MANIFEST_ACCEPT, RegistryClient, RegistryConfig, RequestCounts, RequestKind,
};
pub use reference::{ImageRef, ReferenceError};

/// Everything that can go wrong talking to a registry; each names the image, URL or realm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("cannot build the HTTP client")]
    BuildClient(#[source] reqwest::Error),
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("request to {url} timed out")]
    Timeout { url: String },
    #[error("registry answered {status} for {image} ({url}): {detail}")]
    Status {
        image: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("not authorized to pull {image} ({url}): {detail}")]
    Unauthorized {
        image: String,
        url: String,
        detail: String,
    },
    #[error("repository {image} not found ({url})")]
    RepositoryNotFound { image: String, url: String },
    #[error("manifest {image}:{reference} not found")]
    ManifestNotFound { image: String, reference: String },
    #[error("registry keeps answering {status} for {url} after {attempts} attempt(s){}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        url: String,
        status: u16,
        attempts: u32,
        retry_after: Option<Duration>,
    },
    #[error("response from {url} is larger than the {limit}-byte limit")]
    BodyTooLarge { url: String, limit: usize },
    #[error("{image} lists more than {limit} tags; refusing to read more")]
    TooManyTags { image: String, limit: usize },
    #[error("{image} has more than {limit} pages of tags; refusing to read more")]
    TooManyPages { image: String, limit: usize },
    #[error("tag list pagination of {image} loops back to {url}")]
    PaginationLoop { image: String, url: String },
    #[error("malformed JSON from {url}: {reason}")]
    MalformedJson { url: String, reason: String },
    #[error("malformed Link header from {url}: {header:?}")]
    MalformedLink { url: String, header: String },
    #[error("Link header of {url} points to another host: {next}")]
    CrossHostLink { url: String, next: String },
    #[error("malformed redirect from {url}: {reason}")]
    MalformedRedirect { url: String, reason: String },
    #[error("more than {limit} redirects starting at {url}")]
    TooManyRedirects { url: String, limit: usize },
    #[error(
        "refusing plain HTTP to {host} ({url}): it is not loopback; pass --insecure-registry {host} if it really has no TLS"
    )]
    InsecureNotAllowed { url: String, host: String },
    #[error("malformed WWW-Authenticate challenge from {url}: {reason}: {header:?}")]
    MalformedChallenge {
        url: String,
        header: String,
        reason: String,
    },
    #[error("token server {realm} answered {status}: {detail}")]
    TokenRequest {
        realm: String,
        status: u16,
        detail: String,
    },
    #[error("unusable token from {realm}: {reason}")]
    MalformedToken { realm: String, reason: String },
    #[error("malformed Docker-Content-Digest {value:?} from {url}")]
    MalformedDigest { url: String, value: String },
    #[error("manifest from {url} has digest {computed} but the registry says {header}")]
    DigestMismatch {
        url: String,
        header: String,
        computed: String,
    },
    #[error("cannot build an HTTP header from {what}")]
    InvalidHeader { what: String },
    #[error("the registry client is shutting down")]
    Closed,
}
