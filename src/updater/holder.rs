//! Who holds a pending record: the writer's identity and the Lease that proves it alive, stored
//! as annotations on the record's Secret/ConfigMap (annotations, not labels: Helm 4 reads a
//! record's non-system labels into the release, and nothing reads its annotations). Crash
//! repair touches a pending record only when its holder is gone.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use tracing::warn;

/// The writer's identity (a Lease holderIdentity).
pub const HOLDER_ANNOTATION: &str = "keelson.sh/holder";
/// `namespace/name` of the holder's Lease.
pub const HOLDER_LEASE_ANNOTATION: &str = "keelson.sh/holder-lease";
/// When the record was created (RFC 3339).
pub const HELD_SINCE_ANNOTATION: &str = "keelson.sh/held-since";
/// The description the revision gets once deployed, so repair can finish it with the same
/// words (the record itself says "keelson: preparing upgrade" until then).
pub const DESCRIPTION_ANNOTATION: &str = "keelson.sh/description";

/// How long the Lease of a `reconcile --once` run lives without renewal.
pub const RUN_LEASE_SECONDS: i32 = 15;
/// How often that Lease is renewed: three chances before it expires.
const RUN_LEASE_RENEW: Duration = Duration::from_secs(5);
/// Name prefix of the Leases `reconcile --once` runs create.
pub const RUN_LEASE_PREFIX: &str = "keelson-writer-";

/// Who is writing: stored on the pending record so crash repair can tell a live writer's
/// in-flight record from an abandoned one.
#[derive(Debug, Clone)]
pub struct Holder {
    /// e.g. the controller's Lease holderIdentity
    pub identity: String,
    /// the coordination.k8s.io/v1 Lease that proves it alive
    pub lease_namespace: String,
    pub lease_name: String,
}

impl Holder {
    /// The annotations of a pending record this holder writes now.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (HOLDER_ANNOTATION.to_string(), self.identity.clone()),
            (
                HOLDER_LEASE_ANNOTATION.to_string(),
                format!("{}/{}", self.lease_namespace, self.lease_name),
            ),
            (
                HELD_SINCE_ANNOTATION.to_string(),
                jiff::Timestamp::now().to_string(),
            ),
        ])
    }

    /// The holder a record names, if it names one completely.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Holder> {
        let identity = annotations.get(HOLDER_ANNOTATION)?;
        let (namespace, name) = annotations.get(HOLDER_LEASE_ANNOTATION)?.split_once('/')?;
        Some(Holder {
            identity: identity.clone(),
            lease_namespace: namespace.to_string(),
            lease_name: name.to_string(),
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} (Lease {}/{})",
            self.identity, self.lease_namespace, self.lease_name
        )
    }
}

/// What a pending record's holder annotations say about its writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderState {
    /// The holder's Lease is held by it and not expired: the record is in flight.
    Alive(String),
    /// Lease missing, expired or held by another identity: the record is abandoned.
    Gone { reason: String, expired: bool },
}

/// Whether `holder` is alive now: its Lease exists, names it, and `renewTime +
/// leaseDurationSeconds` is in the future.
pub async fn holder_state(
    client: &kube::Client,
    holder: &Holder,
) -> Result<HolderState, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &holder.lease_namespace);
    let Some(lease) = api.get_opt(&holder.lease_name).await? else {
        return Ok(HolderState::Gone {
            reason: format!("{}: the Lease no longer exists", holder.describe()),
            expired: false,
        });
    };
    let spec = lease.spec.unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(holder.identity.as_str()) {
        return Ok(HolderState::Gone {
            reason: format!(
                "{}: the Lease is now held by {:?}",
                holder.describe(),
                spec.holder_identity.unwrap_or_default()
            ),
            expired: false,
        });
    }
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let expires = renewed.and_then(|t| {
        t.checked_add(jiff::SignedDuration::from_secs(duration))
            .ok()
    });
    match expires {
        Some(expires) if expires > jiff::Timestamp::now() => Ok(HolderState::Alive(format!(
            "{}, renewed until {expires}",
            holder.describe()
        ))),
        Some(expires) => Ok(HolderState::Gone {
            reason: format!("{}: the Lease expired at {expires}", holder.describe()),
            expired: true,
        }),
        None => Ok(HolderState::Gone {
            reason: format!("{}: the Lease was never renewed", holder.describe()),
            expired: true,
        }),
    }
}

/// Records created by this process and not yet finished, by `namespace/object name`. A
/// record held by this process's own identity but not listed here was left by an earlier
/// incarnation (a restarted controller keeps its identity) and is abandoned.
static IN_FLIGHT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn in_flight_set<T>(f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
    let mut guard = match IN_FLIGHT.lock() {
        Ok(guard) => guard,
        // The set is plain data; a panic elsewhere cannot leave it half-updated.
        Err(poisoned) => poisoned.into_inner(),
    };
    f(guard.get_or_insert_with(HashSet::new))
}

/// Marks a record as in flight in this process until dropped.
pub(crate) struct InFlight(String);

impl InFlight {
    pub(crate) fn new(namespace: &str, object_name: &str) -> Self {
        let key = format!("{namespace}/{object_name}");
        in_flight_set(|set| set.insert(key.clone()));
        InFlight(key)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight_set(|set| set.remove(&self.0));
    }
}

pub(crate) fn is_in_flight(namespace: &str, object_name: &str) -> bool {
    in_flight_set(|set| set.contains(&format!("{namespace}/{object_name}")))
}

/// Failures of a run's own Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "cannot create Lease {namespace}/{name}, which marks this run as alive while it writes (keelson needs create, patch, delete and list on leases.coordination.k8s.io in namespace {namespace:?}, the kubeconfig context's namespace)"
    )]
    Create {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete Lease {namespace}/{name} at the end of the run")]
    Delete {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The short-lived Lease a `reconcile --once` run holds while it writes, renewed in the
/// background and deleted at the end. A run killed with -9 leaves it to expire, which is how
/// the next run knows the pending record it left is abandoned.
pub struct RunLease {
    holder: Holder,
    api: Api<Lease>,
    renewer: tokio::task::JoinHandle<()>,
}

impl RunLease {
    /// Creates `keelson-writer-<random hex>` in the client's default namespace.
    pub async fn acquire(client: &kube::Client) -> Result<RunLease, LeaseError> {
        let namespace = client.default_namespace().to_string();
        let name = format!("{RUN_LEASE_PREFIX}{:016x}", random_u64());
        let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        let now = MicroTime(jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "keelson".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(RUN_LEASE_SECONDS),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                ..LeaseSpec::default()
            }),
        };
        api.create(&PostParams::default(), &lease)
            .await
            .map_err(|source| LeaseError::Create {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        let renewer = tokio::spawn(renew(api.clone(), name.clone()));
        sweep_expired_run_leases(&api).await;
        Ok(RunLease {
            holder: Holder {
                identity: name.clone(),
                lease_namespace: namespace,
                lease_name: name,
            },
            api,
            renewer,
        })
    }

    pub fn holder(&self) -> Holder {
        self.holder.clone()
    }

    /// Stops renewing and deletes the Lease.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.renewer.abort();
        match self
            .api
            .delete(&self.holder.lease_name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(LeaseError::Delete {
                namespace: self.holder.lease_namespace.clone(),
                name: self.holder.lease_name.clone(),
                source,
            }),
        }
    }
}

async fn renew(api: Api<Lease>, name: String) {
    loop {
        tokio::time::sleep(RUN_LEASE_RENEW).await;
        let patch = serde_json::json!({
            "spec": {"renewTime": MicroTime(jiff::Timestamp::now())}
        });
        if let Err(err) = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            warn!(lease = %name, error = %err, "cannot renew this run's Lease; another run may take over its pending records once it expires");
        }
    }
}

/// Deletes the run Leases in this namespace that expired (their runs were killed), so they do
/// not pile up: a run killed before it wrote a pending record leaves nothing that would lead
/// repair to its Lease. Best effort: without `list` on Leases they stay.
async fn sweep_expired_run_leases(api: &Api<Lease>) {
    let params = kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=keelson");
    let leases = match api.list(&params).await {
        Ok(list) => list.items,
        Err(err) => {
            tracing::debug!(error = %err, "cannot list run Leases to delete expired ones");
            return;
        }
    };
    let now = jiff::Timestamp::now();
    for lease in leases {
        let Some(name) = lease.metadata.name.clone() else {
            continue;
        };
        let spec = lease.spec.unwrap_or_default();
        let expires = spec.renew_time.map(|t| t.0).and_then(|t| {
            t.checked_add(jiff::SignedDuration::from_secs(i64::from(
                spec.lease_duration_seconds.unwrap_or(0),
            )))
            .ok()
        });
        if !name.starts_with(RUN_LEASE_PREFIX) || expires.is_none_or(|e| e > now) {
            continue;
        }
        let params = DeleteParams {
            preconditions: lease
                .metadata
                .resource_version
                .map(|rv| kube::api::Preconditions {
                    resource_version: Some(rv),
                    uid: None,
                }),
            ..DeleteParams::default()
        };
        if let Err(err) = api.delete(&name, &params).await {
            tracing::debug!(lease = %name, error = %err, "cannot delete an expired run Lease");
        }
    }
}

/// Deletes a run Lease found expired (its run was killed), so they do not pile up.
pub async fn delete_expired_run_lease(client: &kube::Client, holder: &Holder) {
    if !holder.lease_name.starts_with(RUN_LEASE_PREFIX) {
        return;
    }
    let api: Api<Lease> = Api::namespaced(client.clone(), &holder.lease_namespace);
    if let Err(err) = api
        .delete(&holder.lease_name, &DeleteParams::default())
        .await
        && !matches!(&err, kube::Error::Api(status) if status.code == 404)
    {
        warn!(lease = %holder.lease_name, error = %err, "cannot delete an expired run Lease");
    }
}

/// 64 random bits from the standard library's per-process hash seed, time and pid: enough to
/// keep concurrent runs' Lease names apart without a dependency on a random number crate.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_round_trip() {
        let holder = Holder {
            identity: "pod-a".into(),
            lease_namespace: "keelson".into(),
            lease_name: "keelson-leader".into(),
        };
        let annotations = holder.annotations();
        assert_eq!(
            annotations[HOLDER_LEASE_ANNOTATION],
            "keelson/keelson-leader"
        );
        assert!(
            annotations[HELD_SINCE_ANNOTATION]
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        let back = Holder::from_annotations(&annotations).expect("holder");
        assert_eq!(
            (back.identity.as_str(), back.lease_name.as_str()),
            ("pod-a", "keelson-leader")
        );
        assert!(Holder::from_annotations(&BTreeMap::new()).is_none());
    }

    #[test]
    fn in_flight_records_are_forgotten_when_dropped() {
        let guard = InFlight::new("ns", "sh.helm.release.v1.x.v2");
        assert!(is_in_flight("ns", "sh.helm.release.v1.x.v2"));
        drop(guard);
        assert!(!is_in_flight("ns", "sh.helm.release.v1.x.v2"));
    }
}
