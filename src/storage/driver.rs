//! Reads and writes release records as Kubernetes Secrets or ConfigMaps, with the names, labels
//! and label queries Helm itself uses, so helm and keelson see the same records.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, ObjectList, PostParams, Preconditions};
use kube::{Api, Client};

use super::codec::{self, CodecError};
use super::record::Release;
use super::wire;

/// What a LIST asks for: protobuf, else JSON.
const LIST_ACCEPT: &str = "application/vnd.kubernetes.protobuf, application/json";

/// The Secret type Helm 3 and 4 give release records.
pub const SECRET_TYPE: &str = "helm.sh/release.v1";
/// The one data key of a record.
pub const RELEASE_KEY: &str = "release";
/// Kubernetes refuses Secrets and ConfigMaps whose data exceeds 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Labels Helm manages itself; every other label on a record belongs to the user.
pub const SYSTEM_LABELS: [&str; 6] = [
    "name",
    "owner",
    "status",
    "version",
    "createdAt",
    "modifiedAt",
];

/// Where Helm keeps release records (`HELM_DRIVER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DriverKind {
    /// Secrets (Helm's default).
    #[default]
    #[value(alias = "secrets")]
    Secret,
    /// ConfigMaps.
    #[value(name = "configmap", alias = "configmaps")]
    ConfigMap,
}

impl DriverKind {
    fn object_kind(self) -> &'static str {
        match self {
            DriverKind::Secret => "Secret",
            DriverKind::ConfigMap => "ConfigMap",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            DriverKind::Secret => "secret",
            DriverKind::ConfigMap => "configmap",
        })
    }
}

impl FromStr for DriverKind {
    type Err = DriverError;

    /// Accepts the spellings `HELM_DRIVER` accepts for the drivers keelson supports.
    fn from_str(s: &str) -> Result<Self, DriverError> {
        match s.to_ascii_lowercase().as_str() {
            "" | "secret" | "secrets" => Ok(DriverKind::Secret),
            "configmap" | "configmaps" => Ok(DriverKind::ConfigMap),
            _ => Err(DriverError::UnsupportedDriver(s.to_string())),
        }
    }
}

/// The object name Helm gives revision `version` of release `name`.
pub fn record_name(name: &str, version: i64) -> String {
    format!("sh.helm.release.v1.{name}.v{version}")
}

/// A decoded record together with what the apiserver told us about the object holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRelease {
    pub release: Release,
    /// The user's own labels (Helm's system labels removed); carried to the next revision.
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
    /// The Secret / ConfigMap name.
    pub object_name: String,
    /// The object's resourceVersion, the precondition of [`Driver::update`].
    pub resource_version: Option<String>,
}

/// A record that could not be used, and why (reported as a warning naming the object).
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedRecord {
    /// `Secret ns/name` or `ConfigMap ns/name`.
    pub object: String,
    pub reason: String,
}

/// The records a label query found, and the ones it had to skip.
#[derive(Debug, Default)]
pub struct Listing {
    pub records: Vec<StoredRelease>,
    pub skipped: Vec<SkippedRecord>,
}

/// Failures of the driver, each naming the record involved.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("unsupported storage driver {0:?} (keelson supports secret and configmap)")]
    UnsupportedDriver(String),
    #[error(
        "release {name:?} in namespace {namespace:?}: revision {version} not found ({object} {object_name})"
    )]
    NotFound {
        name: String,
        namespace: String,
        version: i64,
        object: &'static str,
        object_name: String,
    },
    #[error(
        "{object} {namespace}/{object_name} already exists: another writer created revision {version} of release {name:?} first"
    )]
    AlreadyExists {
        name: String,
        namespace: String,
        version: i64,
        object: &'static str,
        object_name: String,
    },
    #[error(
        "{object} {namespace}/{object_name} was changed by another writer since it was read (resourceVersion {resource_version}); not overwriting it"
    )]
    Conflict {
        namespace: String,
        object: &'static str,
        object_name: String,
        resource_version: String,
    },
    #[error("cannot read the list of {object}s {scope}: {reason}")]
    MalformedList {
        object: &'static str,
        scope: String,
        reason: String,
    },
    #[error(
        "{object} {namespace}/{object_name} cannot be decoded: {reason}; refusing to use or overwrite it"
    )]
    Corrupt {
        namespace: String,
        object: &'static str,
        object_name: String,
        reason: String,
    },
    #[error(
        "release {name:?} revision {version}: encoded record is {size} bytes, over the {MAX_RECORD_BYTES}-byte limit of a {object}; nothing was written"
    )]
    TooLarge {
        name: String,
        version: i64,
        size: usize,
        object: &'static str,
    },
    #[error("release {name:?} revision {version}: cannot encode the record")]
    Encode {
        name: String,
        version: i64,
        #[source]
        source: CodecError,
    },
    #[error(
        "release {name:?} revision {version}: {what} refused: the record has no resourceVersion (it was not read from the cluster)"
    )]
    NoResourceVersion {
        name: String,
        version: i64,
        what: &'static str,
    },
    #[error("cannot {action} {object}s in {scope}")]
    Api {
        action: &'static str,
        object: &'static str,
        scope: String,
        #[source]
        source: kube::Error,
    },
}

/// Secret or ConfigMap storage over the Kubernetes API. Reads take a namespace or `None` for
/// all namespaces (`-A`); writes go to the namespace of the record.
#[derive(Clone)]
pub struct Driver {
    client: Client,
    kind: DriverKind,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Driver").field("kind", &self.kind).finish()
    }
}

/// How fresh a list must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A quorum read from etcd, as Helm does.
    Consistent,
    /// Whatever the apiserver's watch cache holds.
    Cached,
}

/// The records of one release that a label query found, newest first, not yet decoded.
pub struct ReleaseRecords {
    pub namespace: String,
    /// The release name, from the records' `name` label.
    pub name: String,
    newest_first: Vec<RawRecord>,
}

impl ReleaseRecords {
    /// The `status` labels of the records, newest first. Decoding checks that each agrees
    /// with its record, so they tell which releases a status filter can leave undecoded.
    pub fn status_labels(&self) -> impl Iterator<Item = &str> {
        self.newest_first.iter().filter_map(|raw| {
            raw.meta
                .labels
                .as_ref()
                .and_then(|l| l.get("status"))
                .map(String::as_str)
        })
    }
}

/// What a label query found, grouped per release and not yet decoded.
pub struct Undecoded {
    kind: DriverKind,
    pub releases: Vec<ReleaseRecords>,
    /// Records whose labels place them in no release; decoded only to say what is wrong.
    unplaceable: Vec<RawRecord>,
}

impl Undecoded {
    /// Decodes every release's newest decodable revision, warning about the rest.
    pub fn decode_all(self) -> Listing {
        let Undecoded {
            kind,
            releases,
            unplaceable,
        } = self;
        let mut listing = decode_releases(kind, releases);
        listing
            .skipped
            .extend(report_unplaceable(kind, unplaceable));
        listing
    }

    /// Splits off the records with no release, warning about each; what stays is decoded per
    /// release with [`decode_releases_map`].
    pub fn into_releases(self) -> (DriverKind, Vec<ReleaseRecords>) {
        report_unplaceable(self.kind, self.unplaceable);
        (self.kind, self.releases)
    }
}

/// Decodes the newest decodable revision of each release (older ones only when a newer one
/// is corrupt), in parallel, warning once per skipped record.
pub fn decode_releases(kind: DriverKind, releases: Vec<ReleaseRecords>) -> Listing {
    let (records, skipped) = decode_releases_map(kind, releases, &Some);
    Listing { records, skipped }
}

/// [`decode_releases`], keeping of each release only what `map` makes of its record (`None`:
/// nothing). `map` runs on the decoding threads.
pub fn decode_releases_map<T: Send>(
    kind: DriverKind,
    releases: Vec<ReleaseRecords>,
    map: &(dyn Fn(StoredRelease) -> Option<T> + Sync),
) -> (Vec<T>, Vec<SkippedRecord>) {
    let groups = releases.into_iter().map(|r| r.newest_first).collect();
    let (kept, skipped) = collect_groups(decode_groups_map(kind, groups, map));
    (kept.into_iter().flatten().collect(), skipped)
}

/// Records whose labels place them in no release are never listed. Decoding them only says
/// what is wrong: decoding checks the `name` and `version` labels against the record, so it
/// names the fault.
fn report_unplaceable(kind: DriverKind, raws: Vec<RawRecord>) -> Vec<SkippedRecord> {
    let groups = raws.into_iter().map(|raw| vec![raw]).collect();
    collect_groups(decode_groups(kind, groups)).1
}

/// The payload and metadata common to both object kinds.
struct RawRecord {
    meta: ObjectMeta,
    payload: Option<Vec<u8>>,
    /// For Secrets: whether the type is Helm's (ConfigMaps have no type).
    type_ok: bool,
}

impl Driver {
    pub fn new(client: Client, kind: DriverKind) -> Self {
        Self { client, kind }
    }

    pub fn kind(&self) -> DriverKind {
        self.kind
    }

    fn scope(namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("namespace {ns:?}"),
            None => "all namespaces".to_string(),
        }
    }

    fn secrets(&self, namespace: Option<&str>) -> Api<Secret> {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    fn config_maps(&self, namespace: Option<&str>) -> Api<ConfigMap> {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    fn api_error(
        &self,
        action: &'static str,
        namespace: Option<&str>,
        source: kube::Error,
    ) -> DriverError {
        DriverError::Api {
            action,
            object: self.kind.object_kind(),
            scope: Self::scope(namespace),
            source,
        }
    }

    /// Lists the raw objects matching a label selector (Helm's queries: `owner=helm`,
    /// `name=X,owner=helm`, `name=X,owner=helm,status=deployed`).
    /// Lists the records matching `selector` in one request, asking for protobuf (see
    /// [`super::wire`]) and reading JSON when the apiserver answers with that instead.
    async fn list_raw(
        &self,
        namespace: Option<&str>,
        selector: &str,
        read: Read,
    ) -> Result<Vec<RawRecord>, DriverError> {
        let params = match read {
            Read::Consistent => ListParams::default().labels(selector),
            Read::Cached => ListParams::default().labels(selector).match_any(),
        };
        let url = match self.kind {
            DriverKind::Secret => self.secrets(namespace).resource_url().to_string(),
            DriverKind::ConfigMap => self.config_maps(namespace).resource_url().to_string(),
        };
        let api_error = |source| self.api_error("list", namespace, source);
        let mut request = kube::core::Request::new(url)
            .list(&params)
            .map_err(|e| api_error(kube::Error::BuildRequest(e)))?;
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static(LIST_ACCEPT),
        );
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await
            .map_err(api_error)?;
        let status = response.status();
        let protobuf = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(wire::PROTOBUF));
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| api_error(kube::Error::Service(e.into())))?
            .to_bytes();
        if !status.is_success() {
            return Err(api_error(kube::Error::Api(
                error_status(status, &body).boxed(),
            )));
        }
        let malformed = |reason: String| DriverError::MalformedList {
            object: self.kind.object_kind(),
            scope: Self::scope(namespace),
            reason,
        };
        if protobuf {
            let kind = match self.kind {
                DriverKind::Secret => wire::ObjectKind::Secret,
                DriverKind::ConfigMap => wire::ObjectKind::ConfigMap,
            };
            let objects = wire::decode_list(&body, kind, RELEASE_KEY)
                .map_err(|e| malformed(e.to_string()))?;
            return Ok(objects
                .into_iter()
                .map(|object| raw_from_listed(self.kind, object))
                .collect());
        }
        match self.kind {
            DriverKind::Secret => {
                let list: ObjectList<Secret> =
                    serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
                Ok(list.items.into_iter().map(raw_from_secret).collect())
            }
            DriverKind::ConfigMap => {
                let list: ObjectList<ConfigMap> =
                    serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
                Ok(list.items.into_iter().map(raw_from_config_map).collect())
            }
        }
    }

    /// Every record matching `selector`, decoded; undecodable ones are skipped with a warning.
    pub async fn query(
        &self,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Listing, DriverError> {
        let raws = self.list_raw(namespace, selector, Read::Consistent).await?;
        let groups = raws.into_iter().map(|raw| vec![raw]).collect();
        let (records, skipped) = collect_groups(decode_groups(self.kind, groups));
        Ok(Listing { records, skipped })
    }

    /// The newest decodable revision of every release matching `selector`, decoding only what
    /// it must: records are ordered by their `version` label and decoded newest first, so older
    /// revisions are decoded only when a newer one turns out to be corrupt.
    pub async fn latest(
        &self,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Listing, DriverError> {
        Ok(self
            .newest_with(namespace, selector, Read::Consistent)
            .await?
            .decode_all())
    }

    /// The records matching `selector` from the apiserver's watch cache (`resourceVersion=0`:
    /// much cheaper for the apiserver, possibly a moment stale), grouped per release and not yet
    /// decoded, so a caller that shows only some releases (`keelson list` prints 256 by default,
    /// as helm does) decodes only those. For display only, never for decisions that write.
    pub async fn newest_cached(
        &self,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Undecoded, DriverError> {
        self.newest_with(namespace, selector, Read::Cached).await
    }

    async fn newest_with(
        &self,
        namespace: Option<&str>,
        selector: &str,
        read: Read,
    ) -> Result<Undecoded, DriverError> {
        let raws = self.list_raw(namespace, selector, read).await?;
        let mut unplaceable = Vec::new();
        let mut groups: BTreeMap<(String, String), Vec<(i64, RawRecord)>> = BTreeMap::new();
        for raw in raws {
            let labels = raw.meta.labels.as_ref();
            let name = labels.and_then(|l| l.get("name")).cloned();
            let version = labels
                .and_then(|l| l.get("version"))
                .and_then(|v| v.parse::<i64>().ok());
            match (name, version) {
                (Some(name), Some(version)) => {
                    let namespace = raw.meta.namespace.clone().unwrap_or_default();
                    groups
                        .entry((namespace, name))
                        .or_default()
                        .push((version, raw));
                }
                // Without usable labels the record cannot be placed in any history; decoding
                // it still says what is wrong with it.
                _ => unplaceable.push(raw),
            }
        }
        let releases = groups
            .into_iter()
            .map(|((namespace, name), mut revisions)| {
                revisions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
                ReleaseRecords {
                    namespace,
                    name,
                    newest_first: revisions.into_iter().map(|(_, raw)| raw).collect(),
                }
            })
            .collect();
        Ok(Undecoded {
            kind: self.kind,
            releases,
            unplaceable,
        })
    }

    /// One revision by name; a record that cannot be decoded is an error naming the object.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
        version: i64,
    ) -> Result<StoredRelease, DriverError> {
        Ok(self.get_annotated(namespace, name, version).await?.0)
    }

    /// [`Driver::get`], with the annotations of the object holding the record (where keelson
    /// notes who holds a pending record).
    pub async fn get_annotated(
        &self,
        namespace: &str,
        name: &str,
        version: i64,
    ) -> Result<(StoredRelease, BTreeMap<String, String>), DriverError> {
        let object_name = record_name(name, version);
        let raw = match self.kind {
            DriverKind::Secret => self
                .secrets(Some(namespace))
                .get_opt(&object_name)
                .await
                .map_err(|e| self.api_error("get", Some(namespace), e))?
                .map(raw_from_secret),
            DriverKind::ConfigMap => self
                .config_maps(Some(namespace))
                .get_opt(&object_name)
                .await
                .map_err(|e| self.api_error("get", Some(namespace), e))?
                .map(raw_from_config_map),
        };
        let Some(raw) = raw else {
            return Err(DriverError::NotFound {
                name: name.to_string(),
                namespace: namespace.to_string(),
                version,
                object: self.kind.object_kind(),
                object_name,
            });
        };
        let annotations = raw.meta.annotations.clone().unwrap_or_default();
        let stored = decode_raw(self.kind, raw).map_err(|skipped| DriverError::Corrupt {
            namespace: namespace.to_string(),
            object: self.kind.object_kind(),
            object_name: object_name.clone(),
            reason: skipped.reason,
        })?;
        Ok((stored, annotations))
    }

    /// Creates the record of a new revision; fails with [`DriverError::AlreadyExists`] when
    /// that revision exists already (Helm's lock against concurrent upgrades).
    pub async fn create(
        &self,
        namespace: &str,
        release: &Release,
        labels: &BTreeMap<String, String>,
    ) -> Result<StoredRelease, DriverError> {
        self.create_with(namespace, release, labels, &BTreeMap::new(), false)
            .await
    }

    /// [`Driver::create`] with annotations on the object (Helm reads none, so they change
    /// nothing helm sees; [`Driver::update`] drops them). With `dry_run` the apiserver checks
    /// everything a create checks (size, RBAC, admission, an existing revision) and stores
    /// nothing.
    pub async fn create_with(
        &self,
        namespace: &str,
        release: &Release,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        dry_run: bool,
    ) -> Result<StoredRelease, DriverError> {
        let now = unix_now();
        let (namespace, object_name, mut meta, payload) =
            self.prepare(namespace, release, labels, ("createdAt", now), None)?;
        if !annotations.is_empty() {
            meta.annotations = Some(annotations.clone());
        }
        let params = PostParams {
            dry_run,
            ..PostParams::default()
        };
        let created_meta = match self.kind {
            DriverKind::Secret => {
                let secret = secret_object(meta, payload);
                self.secrets(Some(&namespace))
                    .create(&params, &secret)
                    .await
                    .map(|s| s.metadata)
            }
            DriverKind::ConfigMap => {
                let cm = config_map_object(meta, payload);
                self.config_maps(Some(&namespace))
                    .create(&params, &cm)
                    .await
                    .map(|c| c.metadata)
            }
        };
        let created_meta = created_meta.map_err(|e| match e {
            kube::Error::Api(status) if status.is_already_exists() => DriverError::AlreadyExists {
                name: release.name().to_string(),
                namespace: namespace.clone(),
                version: release.version(),
                object: self.kind.object_kind(),
                object_name: object_name.clone(),
            },
            other => self.api_error("create", Some(&namespace), other),
        })?;
        Ok(StoredRelease {
            release: release.clone(),
            labels: custom_labels(labels),
            namespace,
            object_name,
            resource_version: created_meta.resource_version,
        })
    }

    /// Rewrites a record that was read from the cluster, only if nobody changed it since
    /// (stricter than Helm, which overwrites unconditionally). The object is replaced whole, as
    /// Helm's Update does: annotations a pending record carried are gone once it is finished.
    pub async fn update(&self, stored: &StoredRelease) -> Result<StoredRelease, DriverError> {
        let release = &stored.release;
        let Some(resource_version) = stored.resource_version.clone() else {
            return Err(DriverError::NoResourceVersion {
                name: release.name().to_string(),
                version: release.version(),
                what: "update",
            });
        };
        let now = unix_now();
        let (namespace, object_name, meta, payload) = self.prepare(
            &stored.namespace,
            release,
            &stored.labels,
            ("modifiedAt", now),
            Some(resource_version.clone()),
        )?;
        let conflict = || DriverError::Conflict {
            namespace: namespace.clone(),
            object: self.kind.object_kind(),
            object_name: object_name.clone(),
            resource_version: resource_version.clone(),
        };
        let result = match self.kind {
            DriverKind::Secret => {
                // Like Helm's Update, the labels are rebuilt: `createdAt` gives way to `modifiedAt`.
                let secret = secret_object(meta, payload);
                self.secrets(Some(&namespace))
                    .replace(&object_name, &PostParams::default(), &secret)
                    .await
                    .map(|s| s.metadata)
            }
            DriverKind::ConfigMap => {
                let cm = config_map_object(meta, payload);
                self.config_maps(Some(&namespace))
                    .replace(&object_name, &PostParams::default(), &cm)
                    .await
                    .map(|c| c.metadata)
            }
        };
        let meta = result.map_err(|e| match e {
            kube::Error::Api(status) if status.is_conflict() => conflict(),
            kube::Error::Api(status) if status.is_not_found() => DriverError::NotFound {
                name: release.name().to_string(),
                namespace: namespace.clone(),
                version: release.version(),
                object: self.kind.object_kind(),
                object_name: object_name.clone(),
            },
            other => self.api_error("update", Some(&namespace), other),
        })?;
        Ok(StoredRelease {
            release: release.clone(),
            labels: stored.labels.clone(),
            namespace,
            object_name,
            resource_version: meta.resource_version,
        })
    }

    /// Deletes a decoded record, only if it is unchanged since it was read.
    pub async fn delete(&self, stored: &StoredRelease) -> Result<(), DriverError> {
        let params = DeleteParams {
            preconditions: stored.resource_version.clone().map(|rv| Preconditions {
                resource_version: Some(rv),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let namespace = stored.namespace.as_str();
        let result = match self.kind {
            DriverKind::Secret => self
                .secrets(Some(namespace))
                .delete(&stored.object_name, &params)
                .await
                .map(|_| ()),
            DriverKind::ConfigMap => self
                .config_maps(Some(namespace))
                .delete(&stored.object_name, &params)
                .await
                .map(|_| ()),
        };
        result.map_err(|e| match e {
            kube::Error::Api(status) if status.is_conflict() => DriverError::Conflict {
                namespace: namespace.to_string(),
                object: self.kind.object_kind(),
                object_name: stored.object_name.clone(),
                resource_version: stored.resource_version.clone().unwrap_or_default(),
            },
            kube::Error::Api(status) if status.is_not_found() => DriverError::NotFound {
                name: stored.release.name().to_string(),
                namespace: namespace.to_string(),
                version: stored.release.version(),
                object: self.kind.object_kind(),
                object_name: stored.object_name.clone(),
            },
            other => self.api_error("delete", Some(namespace), other),
        })
    }

    /// Encodes a release and builds the metadata of its object; refuses oversize records
    /// before anything is sent.
    fn prepare(
        &self,
        namespace: &str,
        release: &Release,
        labels: &BTreeMap<String, String>,
        stamp: (&str, String),
        resource_version: Option<String>,
    ) -> Result<(String, String, ObjectMeta, String), DriverError> {
        let namespace = namespace.to_string();
        let object_name = record_name(release.name(), release.version());
        let payload = codec::encode_release(release).map_err(|source| DriverError::Encode {
            name: release.name().to_string(),
            version: release.version(),
            source,
        })?;
        if payload.len() > MAX_RECORD_BYTES {
            return Err(DriverError::TooLarge {
                name: release.name().to_string(),
                version: release.version(),
                size: payload.len(),
                object: self.kind.object_kind(),
            });
        }
        let mut all_labels = custom_labels(labels);
        all_labels.insert(stamp.0.to_string(), stamp.1);
        all_labels.insert("name".to_string(), release.name().to_string());
        all_labels.insert("owner".to_string(), "helm".to_string());
        all_labels.insert("status".to_string(), release.status().to_string());
        all_labels.insert("version".to_string(), release.version().to_string());
        let meta = ObjectMeta {
            name: Some(object_name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(all_labels),
            resource_version,
            ..ObjectMeta::default()
        };
        Ok((namespace, object_name, meta, payload))
    }
}

/// Decodes groups of candidate records (newest first) on all cores; each group yields its
/// first decodable record, if any, and the ones it had to skip. Order is preserved.
fn decode_groups(
    kind: DriverKind,
    groups: Vec<Vec<RawRecord>>,
) -> Vec<(Option<StoredRelease>, Vec<SkippedRecord>)> {
    decode_groups_map(kind, groups, &|record| record)
}

/// [`decode_groups`], turning each decoded record into what the caller keeps of it on the
/// decoding thread, so that work (and freeing the record) is spread over the cores too.
fn decode_groups_map<T: Send>(
    kind: DriverKind,
    groups: Vec<Vec<RawRecord>>,
    map: &(dyn Fn(StoredRelease) -> T + Sync),
) -> Vec<(Option<T>, Vec<SkippedRecord>)> {
    let decode_group = |group: Vec<RawRecord>| {
        let mut skipped = Vec::new();
        for raw in group {
            match decode_raw(kind, raw) {
                Ok(record) => return (Some(map(record)), skipped),
                Err(skip) => skipped.push(skip),
            }
        }
        (None, skipped)
    };
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, 8);
    if threads == 1 || groups.len() < 32 {
        return groups.into_iter().map(decode_group).collect();
    }
    let chunk_len = groups.len().div_ceil(threads);
    let mut chunks: Vec<Vec<Vec<RawRecord>>> = Vec::with_capacity(threads);
    let mut rest = groups.into_iter();
    loop {
        let chunk: Vec<_> = rest.by_ref().take(chunk_len).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || chunk.into_iter().map(decode_group).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(decoded) => decoded,
                // Decoding does not panic on any input; if a thread died anyway, say so
                // rather than lose the records silently.
                Err(_) => vec![(
                    None,
                    vec![SkippedRecord {
                        object: format!("{}s", kind.object_kind()),
                        reason: "a decoding thread panicked".to_string(),
                    }],
                )],
            })
            .collect()
    })
}

/// Flattens decoded groups into what was kept and what was skipped, warning once per skipped
/// record.
fn collect_groups<T>(
    decoded: Vec<(Option<T>, Vec<SkippedRecord>)>,
) -> (Vec<T>, Vec<SkippedRecord>) {
    let mut kept = Vec::new();
    let mut all_skipped = Vec::new();
    for (record, skipped) in decoded {
        for skip in skipped {
            tracing::warn!(object = %skip.object, reason = %skip.reason, "skipping release record");
            all_skipped.push(skip);
        }
        kept.extend(record);
    }
    (kept, all_skipped)
}

/// One record object as a watch delivers it.
#[derive(Debug, Clone)]
pub enum RecordObject {
    Secret(Secret),
    ConfigMap(ConfigMap),
}

impl RecordObject {
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            RecordObject::Secret(secret) => &secret.metadata,
            RecordObject::ConfigMap(cm) => &cm.metadata,
        }
    }
}

/// Decodes one watched object with the same checks as a listing (labels agree with the
/// record, Helm's Secret type); the error names the object.
pub fn decode_object(object: RecordObject) -> Result<StoredRelease, SkippedRecord> {
    match object {
        RecordObject::Secret(secret) => decode_raw(DriverKind::Secret, raw_from_secret(secret)),
        RecordObject::ConfigMap(cm) => decode_raw(DriverKind::ConfigMap, raw_from_config_map(cm)),
    }
}

/// Decodes and checks one object; the error names the object and says what is wrong.
fn decode_raw(kind: DriverKind, raw: RawRecord) -> Result<StoredRelease, SkippedRecord> {
    let namespace = raw.meta.namespace.clone().unwrap_or_default();
    let object_name = raw.meta.name.clone().unwrap_or_default();
    let skipped = |reason: String| SkippedRecord {
        object: format!("{} {namespace}/{object_name}", kind.object_kind()),
        reason,
    };
    if !raw.type_ok {
        return Err(skipped(format!("type is not {SECRET_TYPE}")));
    }
    let Some(payload) = raw.payload else {
        return Err(skipped(format!("has no {RELEASE_KEY:?} data key")));
    };
    let release = codec::decode_release(&payload).map_err(|e| skipped(e.to_string()))?;
    let labels = raw.meta.labels.unwrap_or_default();
    check_labels(&release, &labels, &namespace, &object_name).map_err(skipped)?;
    Ok(StoredRelease {
        release,
        labels: custom_labels(&labels),
        namespace,
        object_name,
        resource_version: raw.meta.resource_version,
    })
}

/// Checks that labels, object name and JSON agree, as Helm relies on: labels select records,
/// JSON decides status and version.
fn check_labels(
    release: &Release,
    labels: &BTreeMap<String, String>,
    namespace: &str,
    object_name: &str,
) -> Result<(), String> {
    let expect = |key: &str, want: &str| -> Result<(), String> {
        match labels.get(key) {
            None => Err(format!("label {key:?} is missing")),
            Some(have) if have != want => Err(format!(
                "label {key}={have:?} contradicts the record's {key} {want:?}"
            )),
            Some(_) => Ok(()),
        }
    };
    if release.name().is_empty() {
        return Err("the record has no release name".to_string());
    }
    if release.info.is_none() {
        return Err("the record has no info".to_string());
    }
    expect("owner", "helm")?;
    expect("name", release.name())?;
    expect("version", &release.version().to_string())?;
    expect("status", release.status().as_str())?;
    let want_name = record_name(release.name(), release.version());
    if object_name != want_name {
        return Err(format!(
            "object name contradicts the record (expected {want_name})"
        ));
    }
    if let Some(ns) = release.namespace.as_deref()
        && !ns.is_empty()
        && ns != namespace
    {
        return Err(format!(
            "the record's namespace {ns:?} contradicts the object's namespace"
        ));
    }
    Ok(())
}

/// The labels that are the user's, not Helm's.
pub fn custom_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !SYSTEM_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn unix_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string()
}

fn raw_from_listed(kind: DriverKind, object: wire::ListedObject) -> RawRecord {
    RawRecord {
        meta: ObjectMeta {
            name: object.name,
            namespace: object.namespace,
            resource_version: object.resource_version,
            labels: object.labels,
            ..ObjectMeta::default()
        },
        payload: object.payload,
        type_ok: kind == DriverKind::ConfigMap
            || object.secret_type.as_deref() == Some(SECRET_TYPE),
    }
}

/// The Status of an error response, read from protobuf or JSON; other bodies (a proxy's
/// HTML, plain text) become the message, as kube does.
fn error_status(code: http::StatusCode, body: &[u8]) -> kube::core::Status {
    if let Some(status) = wire::decode_status(body) {
        let reason = if status.reason.is_empty() {
            code.canonical_reason().unwrap_or_default().to_string()
        } else {
            status.reason
        };
        return kube::core::Status::failure(&status.message, &reason).with_code(
            if status.code == 0 {
                code.as_u16()
            } else {
                status.code
            },
        );
    }
    if let Ok(status) = serde_json::from_slice::<kube::core::Status>(body) {
        return status;
    }
    let text = String::from_utf8_lossy(body);
    kube::core::Status::failure(text.trim(), code.canonical_reason().unwrap_or_default())
        .with_code(code.as_u16())
}

fn raw_from_secret(secret: Secret) -> RawRecord {
    let type_ok = secret.type_.as_deref() == Some(SECRET_TYPE);
    let payload = secret
        .data
        .and_then(|mut data| data.remove(RELEASE_KEY))
        .map(|bytes| bytes.0);
    RawRecord {
        meta: secret.metadata,
        payload,
        type_ok,
    }
}

fn raw_from_config_map(cm: ConfigMap) -> RawRecord {
    let payload = cm
        .data
        .and_then(|mut data| data.remove(RELEASE_KEY))
        .map(String::into_bytes);
    RawRecord {
        meta: cm.metadata,
        payload,
        type_ok: true,
    }
}

fn secret_object(meta: ObjectMeta, payload: String) -> Secret {
    Secret {
        metadata: meta,
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            RELEASE_KEY.to_string(),
            ByteString(payload.into_bytes()),
        )])),
        ..Secret::default()
    }
}

fn config_map_object(meta: ObjectMeta, payload: String) -> ConfigMap {
    ConfigMap {
        metadata: meta,
        data: Some(BTreeMap::from([(RELEASE_KEY.to_string(), payload)])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(name: &str, version: i64, status: &str) -> Release {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": version, "namespace": "ns",
            "info": {"status": status}
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_must_agree_with_the_record() {
        let rel = release("web", 3, "deployed");
        let good = labels(&[
            ("owner", "helm"),
            ("name", "web"),
            ("version", "3"),
            ("status", "deployed"),
        ]);
        assert!(check_labels(&rel, &good, "ns", "sh.helm.release.v1.web.v3").is_ok());

        let mut missing = good.clone();
        missing.remove("status");
        let err = check_labels(&rel, &missing, "ns", "sh.helm.release.v1.web.v3").unwrap_err();
        assert!(err.contains("\"status\" is missing"), "{err}");

        let mut contradicting = good.clone();
        contradicting.insert("status".into(), "superseded".into());
        let err =
            check_labels(&rel, &contradicting, "ns", "sh.helm.release.v1.web.v3").unwrap_err();
        assert!(err.contains("contradicts"), "{err}");

        let err = check_labels(&rel, &good, "ns", "sh.helm.release.v1.web.v4").unwrap_err();
        assert!(err.contains("object name"), "{err}");

        let err = check_labels(&rel, &good, "other", "sh.helm.release.v1.web.v3").unwrap_err();
        assert!(err.contains("namespace"), "{err}");
    }

    fn fixture_secret() -> Secret {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/records/secret-demo-helm3-v1.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn parallel_decoding_keeps_order_and_falls_back_past_corrupt_records() {
        let good = fixture_secret();
        let mut corrupt = good.clone();
        corrupt.data = Some(BTreeMap::from([(
            RELEASE_KEY.to_string(),
            ByteString(b"%%%".to_vec()),
        )]));
        let groups: Vec<Vec<RawRecord>> = (0..100)
            .map(|i| match i % 3 {
                0 => vec![raw_from_secret(good.clone())],
                1 => vec![
                    raw_from_secret(corrupt.clone()),
                    raw_from_secret(good.clone()),
                ],
                _ => vec![raw_from_secret(corrupt.clone())],
            })
            .collect();
        let decoded = decode_groups(DriverKind::Secret, groups);
        assert_eq!(decoded.len(), 100);
        for (i, (record, skipped)) in decoded.iter().enumerate() {
            match i % 3 {
                0 => assert!(record.is_some() && skipped.is_empty(), "{i}"),
                1 => assert!(record.is_some() && skipped.len() == 1, "{i}"),
                _ => assert!(record.is_none() && skipped.len() == 1, "{i}"),
            }
        }
        let (records, skipped) = collect_groups(decoded);
        assert_eq!(records.len(), 67);
        assert_eq!(skipped.len(), 66);
        assert!(skipped[0].object.starts_with("Secret "));
    }

    #[test]
    fn driver_names_like_helm_driver() {
        assert_eq!("".parse::<DriverKind>().unwrap(), DriverKind::Secret);
        assert_eq!("Secrets".parse::<DriverKind>().unwrap(), DriverKind::Secret);
        assert_eq!(
            "configmap".parse::<DriverKind>().unwrap(),
            DriverKind::ConfigMap
        );
        assert!("sql".parse::<DriverKind>().is_err());
    }

    #[test]
    fn system_labels_are_not_custom() {
        let all = labels(&[
            ("owner", "helm"),
            ("name", "web"),
            ("team", "a"),
            ("createdAt", "1"),
        ]);
        assert_eq!(custom_labels(&all), labels(&[("team", "a")]));
    }
}
