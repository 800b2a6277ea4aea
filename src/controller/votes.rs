//! Watches approval requests (ConfigMaps) so a vote cast anywhere — `keelson approve` on a
//! laptop, `kubectl edit` — plans its release or workload at once, as a vote through the API
//! or the dashboard does, instead of at the next poll.

use std::collections::HashMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tracing::{debug, warn};

use crate::approvals::{self, Approval, State};
use crate::subject::Subject;

use super::releases;
use super::workloads;

/// What decides whether a request changed in a way that can move its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    votes: usize,
    state: State,
}

impl Seen {
    fn of(approval: &Approval) -> Self {
        Self {
            votes: approval.votes.len(),
            state: approval.state,
        }
    }
}

/// Whether a request now seen as `now` (before: `before`, unknown when new) should plan its
/// subject: a vote more, or a request approved or rejected. Requests keelson opens (no votes)
/// or marks superseded or expired move nothing.
fn moves_subject(before: Option<&Seen>, now: &Seen) -> bool {
    let decided = matches!(now.state, State::Approved | State::Rejected);
    match before {
        None => now.votes > 0 || decided,
        Some(before) => now.votes > before.votes || (decided && before.state != now.state),
    }
}

/// Watches the approval ConfigMaps in `namespace` (all: `None`) until the watch ends, telling
/// the controller which release or workload to plan on `releases_changed` or
/// `workloads_changed`.
pub async fn watch(
    client: kube::Client,
    namespace: Option<String>,
    releases_changed: releases::Changed,
    workloads_changed: workloads::Changed,
) {
    let api: kube::Api<ConfigMap> = match &namespace {
        Some(namespace) => kube::Api::namespaced(client, namespace),
        None => kube::Api::all(client),
    };
    let config = watcher::Config::default().labels(&approvals::selector());
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut seen: HashMap<(String, String), Seen> = HashMap::new();
    let mut listing: Option<HashMap<(String, String), Seen>> = None;
    // The first listing plans nothing: the controller plans every release and workload once
    // it has synced anyway.
    let mut listed_once = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                warn!(namespace = namespace.as_deref().unwrap_or("*"), error = %err, "watching approval requests failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => listing = Some(HashMap::new()),
            Event::InitApply(cm) => {
                // A (re-)list: remember, and plan only what changed while the watch was away.
                let approval = approvals::from_config_map(&cm);
                let key = (approval.namespace.clone(), approval.id.clone());
                let now = Seen::of(&approval);
                if listed_once && moves_subject(seen.get(&key), &now) {
                    plan(&approval, &releases_changed, &workloads_changed);
                }
                if let Some(listing) = listing.as_mut() {
                    listing.insert(key, now);
                }
            }
            Event::InitDone => {
                if let Some(listed) = listing.take() {
                    seen = listed;
                }
                listed_once = true;
            }
            Event::Apply(cm) => {
                let approval = approvals::from_config_map(&cm);
                let key = (approval.namespace.clone(), approval.id.clone());
                let now = Seen::of(&approval);
                if moves_subject(seen.get(&key), &now) {
                    plan(&approval, &releases_changed, &workloads_changed);
                }
                seen.insert(key, now);
            }
            Event::Delete(cm) => {
                let approval = approvals::from_config_map(&cm);
                seen.remove(&(approval.namespace.clone(), approval.id.clone()));
            }
        }
    }
}

fn plan(
    approval: &Approval,
    releases_changed: &releases::Changed,
    workloads_changed: &workloads::Changed,
) {
    debug!(approval = %approval.id, votes = approval.votes.len(), state = approval.state.as_str(), "approval request changed; planning its subject");
    match approval.of() {
        Subject::Release { namespace, name } => {
            let _ = releases_changed.send(((namespace, name), false));
        }
        Subject::Workload {
            kind,
            namespace,
            name,
        } => {
            if let Some(kind) = crate::workloads::Kind::parse(&kind) {
                let _ = workloads_changed.send(((kind, namespace, name), false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(votes: usize, state: State) -> Seen {
        Seen { votes, state }
    }

    #[test]
    fn votes_and_decisions_move_the_subject_keelsons_own_writes_do_not() {
        // keelson opens a request: nothing to plan.
        assert!(!moves_subject(None, &seen(0, State::Pending)));
        // A vote (CLI, kubectl, API) or a decision.
        assert!(moves_subject(
            Some(&seen(0, State::Pending)),
            &seen(1, State::Pending)
        ));
        assert!(moves_subject(
            Some(&seen(1, State::Pending)),
            &seen(2, State::Approved)
        ));
        assert!(moves_subject(
            Some(&seen(0, State::Pending)),
            &seen(1, State::Rejected)
        ));
        // Seen first with votes (created while the watch was away).
        assert!(moves_subject(None, &seen(1, State::Pending)));
        // keelson's own bookkeeping.
        assert!(!moves_subject(
            Some(&seen(1, State::Pending)),
            &seen(1, State::Superseded)
        ));
        assert!(!moves_subject(
            Some(&seen(1, State::Pending)),
            &seen(1, State::Expired)
        ));
        assert!(!moves_subject(
            Some(&seen(2, State::Approved)),
            &seen(2, State::Approved)
        ));
    }
}
