//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! take the Lease when it is free or expired, renew it well within its duration, step down when
//! renewals fail for a whole duration, and hand it back on shutdown.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tracing::{info, warn};

/// The Lease annotation where the leader says where it takes webhooks, so a standby that
/// receives one can hand it on.
pub const ADDRESS_ANNOTATION: &str = "keelson.sh/webhook-address";

/// Which Lease, held under which name, for how long.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's `holderIdentity` (pod name plus a random suffix).
    pub identity: String,
    pub duration: Duration,
    /// `host:port` where this replica serves webhooks, published while it leads.
    pub address: Option<String>,
}

impl LeaseConfig {
    /// How often the holder renews: a third of the duration, as client-go's defaults do
    /// (15 s lease, 10 s renew deadline, 2 s retry).
    pub fn renew_every(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(500))
    }
}

/// Whether `lease` is held by someone whose term has not run out at `now`.
fn held_by_other(lease: &Lease, identity: &str, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return false;
    };
    if holder == identity {
        return false;
    }
    let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    match renewed {
        Some(renewed) => renewed + jiff::SignedDuration::from_secs(seconds) > now,
        None => false,
    }
}

/// Renews (or takes) `lease` as ours; `Ok(None)` when another writer changed it first.
async fn renew(
    api: &Api<Lease>,
    config: &LeaseConfig,
    mut lease: Lease,
) -> Result<Option<Lease>, kube::Error> {
    let now = jiff::Timestamp::now();
    let seconds = i32::try_from(config.duration.as_secs())
        .unwrap_or(15)
        .max(1);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let ours = spec.holder_identity.as_deref() == Some(config.identity.as_str());
    if !ours {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(config.identity.clone());
    }
    spec.lease_duration_seconds = Some(seconds);
    spec.renew_time = Some(MicroTime(now));
    let annotations = lease
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    match &config.address {
        Some(address) => {
            annotations.insert(ADDRESS_ANNOTATION.to_string(), address.clone());
        }
        None => {
            annotations.remove(ADDRESS_ANNOTATION);
        }
    }
    // The object's resourceVersion makes this a compare-and-swap: of two replicas taking an
    // expired Lease at once, one gets 409 and stays a follower.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(renewed) => Ok(Some(renewed)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(err) => Err(err),
    }
}

/// One attempt to take or keep the Lease. `Ok(true)`: we hold it now. `last` is the Lease as
/// our previous renewal left it: a leader renews from it with one UPDATE, and reads the Lease
/// again only when someone else changed it.
async fn try_hold(
    api: &Api<Lease>,
    config: &LeaseConfig,
    last: &mut Option<Lease>,
) -> Result<bool, kube::Error> {
    if let Some(cached) = last.take()
        && let Some(renewed) = renew(api, config, cached).await?
    {
        *last = Some(renewed);
        return Ok(true);
    }
    let now = jiff::Timestamp::now();
    let seconds = i32::try_from(config.duration.as_secs())
        .unwrap_or(15)
        .max(1);
    match api.get_opt(&config.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    annotations: config
                        .address
                        .as_ref()
                        .map(|a| [(ADDRESS_ANNOTATION.to_string(), a.clone())].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    *last = Some(created);
                    Ok(true)
                }
                // Another replica created it first.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            }
        }
        Some(lease) => {
            if held_by_other(&lease, &config.identity, now) {
                return Ok(false);
            }
            match renew(api, config, lease).await? {
                Some(renewed) => {
                    *last = Some(renewed);
                    Ok(true)
                }
                None => Ok(false),
            }
        }
    }
}

/// Keeps trying to lead until `shutdown` turns true; publishes leadership on `leading`. On
/// shutdown, a leader hands the Lease back (holder cleared) so a standby takes over at once.
pub async fn run(
    api: Api<Lease>,
    config: LeaseConfig,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_renewed: Option<tokio::time::Instant> = None;
    let mut last: Option<Lease> = None;
    loop {
        let attempt =
            tokio::time::timeout(config.renew_every(), try_hold(&api, &config, &mut last)).await;
        let now = tokio::time::Instant::now();
        let was_leading = *leading.borrow();
        let is_leading = match attempt {
            Ok(Ok(true)) => {
                last_renewed = Some(now);
                true
            }
            Ok(Ok(false)) => false,
            Ok(Err(err)) => {
                warn!(lease = %config.name, error = %crate::cluster::api_error_text(&err), "cannot renew the leader Lease");
                // Keep leading through short outages, but never past our own term.
                was_leading && last_renewed.is_some_and(|t| now - t < config.duration)
            }
            Err(_) => {
                warn!(lease = %config.name, "renewing the leader Lease timed out");
                was_leading && last_renewed.is_some_and(|t| now - t < config.duration)
            }
        };
        if is_leading != was_leading {
            if is_leading {
                info!(lease = %config.name, identity = %config.identity, "became the leader");
            } else {
                warn!(lease = %config.name, identity = %config.identity, "lost the leader Lease; no more writes");
            }
            let _ = leading.send(is_leading);
        }
        let wait = if is_leading {
            config.renew_every()
        } else {
            Duration::from_secs(2).min(config.renew_every())
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    if *leading.borrow() {
        let _ = leading.send(false);
        release(&api, &config).await;
    }
}

/// Clears our holder identity so another replica need not wait for the Lease to expire.
pub async fn release(api: &Api<Lease>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => info!(lease = %config.name, "handed back the leader Lease"),
        Err(err) => {
            warn!(lease = %config.name, error = %crate::cluster::api_error_text(&err), "cannot hand back the leader Lease")
        }
    }
}

/// Where the current leader takes webhooks, if it is alive and said so.
pub async fn leader_address(api: &Api<Lease>, name: &str) -> Option<String> {
    let lease = api.get_opt(name).await.ok().flatten()?;
    // Held (by anyone: no identity is empty) and not expired.
    if !held_by_other(&lease, "", jiff::Timestamp::now()) {
        return None;
    }
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(ADDRESS_ANNOTATION)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> Lease {
        let now = jiff::Timestamp::now();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(
                    now - jiff::SignedDuration::from_secs(renewed_secs_ago),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_is_free_when_empty_ours_or_expired() {
        let now = jiff::Timestamp::now();
        assert!(held_by_other(&lease(Some("b"), 1, 15), "a", now));
        assert!(!held_by_other(&lease(Some("a"), 1, 15), "a", now));
        assert!(!held_by_other(&lease(Some("b"), 20, 15), "a", now));
        assert!(!held_by_other(&lease(None, 1, 15), "a", now));
        assert!(!held_by_other(&lease(Some(""), 1, 15), "a", now));
    }
}
