//! Approvals: a release whose `keel:` block asks for `approvals: N`, or a workload labelled
//! `keel.sh/approvals: N`, moves to a target only after N distinct approvals; one rejection
//! ends it; `approvalDeadline` hours expire it. Both kinds of [`Subject`] share this code. Each
//! approval is a ConfigMap in the subject's namespace, so every replica sees the same state and
//! it survives restarts; votes are written with the object's resourceVersion (optimistic
//! concurrency: two voters at once both count).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde::Serialize;

pub use crate::subject::Subject;

/// Labels every approval ConfigMap carries.
pub const MANAGED_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "keelson");
/// The subject an approval is for, to find its other requests: a release's name, or
/// `kind.name` for a workload (see [`subject_label`]).
pub const RELEASE_LABEL: &str = "keelson.sh/approval-for";
/// Keel's default deadline, in hours.
pub const DEFAULT_DEADLINE_HOURS: u64 = 24;
/// How often a vote is retried when another writer changed the approval meanwhile.
const VOTE_ATTEMPTS: usize = 8;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    Expired,
    /// A newer target replaced it before it was decided.
    Superseded,
}

impl State {
    fn parse(text: &str) -> Self {
        match text {
            "approved" => State::Approved,
            "rejected" => State::Rejected,
            "expired" => State::Expired,
            "superseded" => State::Superseded,
            _ => State::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::Superseded => "superseded",
        }
    }
}

/// One approval, as `keelson approvals -o json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// `namespace/name` of its ConfigMap.
    pub id: String,
    /// `Release`, or the workload's kind (`Deployment`, …).
    pub kind: String,
    /// The release's name; empty for a workload.
    pub release: String,
    /// The release's or the workload's name.
    pub name: String,
    /// `ns/release` or `deployment/ns/name`: what people read.
    pub subject: String,
    pub namespace: String,
    pub image: String,
    pub current: String,
    pub target: String,
    pub votes: Vec<String>,
    pub required: u64,
    /// RFC 3339.
    pub deadline: String,
    pub state: State,
    /// The planned revision's manifest changes, when known.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    #[serde(skip)]
    resource_version: Option<String>,
}

/// Failures, naming the approval.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("approval {id}: {message}")]
    Api { id: String, message: String },
    #[error("approval {0} not found")]
    NotFound(String),
    #[error("approval {id} is {state}, not pending")]
    Decided { id: String, state: &'static str },
    #[error("{0:?} is not an approval id (NAMESPACE/NAME, as `keelson approvals` lists them)")]
    BadId(String),
    #[error("approval {0}: other voters kept changing it; try again")]
    Busy(String),
}

fn api_error(id: &str, err: &kube::Error) -> Error {
    Error::Api {
        id: id.to_string(),
        message: crate::cluster::api_error_text(err),
    }
}

fn short_hash(text: &str, bytes: usize) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(text.as_bytes());
    hash.iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The ConfigMap name of the approval for `subject` moving to `target`: stable, so planning the
/// same move again finds it, and within the 63 characters of a label-safe name. A release's
/// name is what it was before workloads had approvals, so open requests carry over.
pub fn object_name(subject: &Subject, target: &str) -> String {
    let (key, readable) = match subject {
        Subject::Release { name, .. } => (name.clone(), name.clone()),
        Subject::Workload { kind, name, .. } => (
            format!("{kind}/{name}"),
            format!("{}-{name}", kind.to_ascii_lowercase()),
        ),
    };
    let hex = short_hash(&format!("{key}\n{target}"), 5);
    let mut prefix: String = format!("keelson-approval-{readable}");
    prefix.truncate(52);
    format!("{}-{hex}", prefix.trim_end_matches(['-', '.']))
}

/// The value of [`RELEASE_LABEL`]: a release's name (at most 53 characters, Helm's limit), or
/// `kind.name` for a workload, shortened with a hash when over the 63 characters a label value
/// may hold (workload names may be longer). Requests are matched on their data afterwards, so
/// two subjects sharing a value never mix.
pub fn subject_label(subject: &Subject) -> String {
    let value = match subject {
        Subject::Release { name, .. } => name.clone(),
        Subject::Workload { kind, name, .. } => format!("{}.{name}", kind.to_ascii_lowercase()),
    };
    if value.len() <= 63 {
        return value;
    }
    let mut prefix = value.clone();
    prefix.truncate(52);
    format!(
        "{}-{}",
        prefix.trim_end_matches(['-', '.']),
        short_hash(&value, 5)
    )
}

/// The label selector of every approval request's ConfigMap.
pub fn selector() -> String {
    format!("{}={},{RELEASE_LABEL}", MANAGED_LABEL.0, MANAGED_LABEL.1)
}

/// Reads an approval request back from its ConfigMap (missing fields read as empty).
pub fn from_config_map(cm: &ConfigMap) -> Approval {
    let data = cm.data.clone().unwrap_or_default();
    let get = |key: &str| data.get(key).cloned().unwrap_or_default();
    let namespace = cm.metadata.namespace.clone().unwrap_or_default();
    let name = cm.metadata.name.clone().unwrap_or_default();
    // Requests made before workloads had approvals carry neither `kind` nor `name`.
    let kind = Some(get("kind"))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| crate::subject::RELEASE_KIND.to_string());
    let release = get("release");
    let subject_name = Some(get("name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| release.clone());
    let subject = if kind == crate::subject::RELEASE_KIND {
        Subject::release(&namespace, &subject_name)
    } else {
        Subject::workload(&kind, &namespace, &subject_name)
    };
    Approval {
        id: format!("{namespace}/{name}"),
        kind,
        release,
        name: subject_name,
        subject: subject.label(),
        namespace,
        image: get("image"),
        current: get("current"),
        target: get("target"),
        votes: serde_json::from_str(&get("votes")).unwrap_or_default(),
        required: get("required").parse().unwrap_or(1),
        deadline: get("deadline"),
        state: State::parse(&get("state")),
        diff: get("diff"),
        resource_version: cm.metadata.resource_version.clone(),
    }
}

fn to_config_map(approval: &Approval) -> ConfigMap {
    let name = approval
        .id
        .split_once('/')
        .map_or(approval.id.as_str(), |(_, n)| n)
        .to_string();
    let data: BTreeMap<String, String> = [
        ("kind", approval.kind.clone()),
        ("release", approval.release.clone()),
        ("name", approval.name.clone()),
        ("image", approval.image.clone()),
        ("current", approval.current.clone()),
        ("target", approval.target.clone()),
        (
            "votes",
            serde_json::to_string(&approval.votes).unwrap_or_else(|_| "[]".into()),
        ),
        ("required", approval.required.to_string()),
        ("deadline", approval.deadline.clone()),
        ("state", approval.state.as_str().to_string()),
        ("diff", approval.diff.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(approval.namespace.clone()),
            labels: Some(
                [
                    (MANAGED_LABEL.0.to_string(), MANAGED_LABEL.1.to_string()),
                    (RELEASE_LABEL.to_string(), subject_label(&approval.of())),
                ]
                .into(),
            ),
            resource_version: approval.resource_version.clone(),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

impl Approval {
    /// What the approval is for.
    pub fn of(&self) -> Subject {
        if self.kind == crate::subject::RELEASE_KIND {
            Subject::release(&self.namespace, &self.name)
        } else {
            Subject::workload(&self.kind, &self.namespace, &self.name)
        }
    }
}

/// A planned move that may need approvals: what the request shows and asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The moving repositories (comma-separated when several move together).
    pub image: &'a str,
    pub current: &'a str,
    pub target: &'a str,
    pub required: u64,
    /// Hours until the request expires (Keel's default 24).
    pub deadline_hours: Option<u64>,
    /// The planned manifest changes, when known.
    pub diff: &'a str,
}

fn expired(approval: &Approval, now: jiff::Timestamp) -> bool {
    approval
        .deadline
        .parse::<jiff::Timestamp>()
        .is_ok_and(|deadline| deadline <= now)
}

/// What the gate says about a planned move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Enough approvals: write it.
    Approved,
    /// Hold, with the reason `check` shows.
    Hold(String),
    /// Hold: this call opened the request (people are told once).
    Opened(String),
    /// Hold: this call found the request past its deadline and closed it.
    Expired(String),
}

impl Gate {
    /// The reason to hold, unless approved.
    pub fn hold_reason(&self) -> Option<&str> {
        match self {
            Gate::Approved => None,
            Gate::Hold(reason) | Gate::Opened(reason) | Gate::Expired(reason) => Some(reason),
        }
    }
}

/// The approvals of one cluster.
#[derive(Clone)]
pub struct Approvals {
    client: kube::Client,
}

impl Approvals {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    fn api(&self, namespace: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Decides whether `subject` may move from `request.current` to `request.target`, opening
    /// the approval request when there is none (unless `dry_run`). A newer target supersedes an
    /// older pending request; a rejected or expired target is never asked for again.
    pub async fn gate(
        &self,
        subject: &Subject,
        request: Request<'_>,
        dry_run: bool,
    ) -> Result<Gate, Error> {
        let Request {
            image,
            current,
            target,
            required,
            deadline_hours,
            diff,
        } = request;
        let namespace = subject.namespace();
        let name = object_name(subject, target);
        let id = format!("{namespace}/{name}");
        let api = self.api(namespace);
        let now = jiff::Timestamp::now();
        match api.get_opt(&name).await.map_err(|e| api_error(&id, &e))? {
            Some(cm) => {
                let mut approval = from_config_map(&cm);
                match approval.state {
                    State::Approved => Ok(Gate::Approved),
                    State::Rejected => Ok(Gate::Hold(format!(
                        "{target} was rejected (approval {id}); waiting for a newer tag"
                    ))),
                    State::Expired | State::Superseded => Ok(Gate::Hold(format!(
                        "the approval for {target} {} ({id}); waiting for a newer tag",
                        if approval.state == State::Expired {
                            "expired"
                        } else {
                            "was superseded"
                        }
                    ))),
                    State::Pending if expired(&approval, now) => {
                        if !dry_run {
                            approval.state = State::Expired;
                            api.replace(&name, &PostParams::default(), &to_config_map(&approval))
                                .await
                                .map_err(|e| api_error(&id, &e))?;
                        }
                        let reason = format!(
                            "the approval for {target} expired ({id}); waiting for a newer tag"
                        );
                        Ok(if dry_run {
                            Gate::Hold(reason)
                        } else {
                            Gate::Expired(reason)
                        })
                    }
                    State::Pending if approval.votes.len() as u64 >= approval.required => {
                        Ok(Gate::Approved)
                    }
                    State::Pending => Ok(Gate::Hold(format!(
                        "approval required: {} of {} approvals for {target} (keelson approve {id})",
                        approval.votes.len(),
                        approval.required
                    ))),
                }
            }
            None if dry_run => Ok(Gate::Hold(format!(
                "approval required: {required} approvals for {target}; the request opens at the next reconcile"
            ))),
            None => {
                self.supersede(subject, &name).await?;
                let hours = deadline_hours.unwrap_or(DEFAULT_DEADLINE_HOURS);
                let deadline = now
                    .checked_add(jiff::SignedDuration::from_hours(hours as i64))
                    .unwrap_or(now);
                let approval = Approval {
                    id: id.clone(),
                    kind: subject.kind().to_string(),
                    release: subject.release_name().unwrap_or_default().to_string(),
                    name: subject.name().to_string(),
                    subject: subject.label(),
                    namespace: namespace.to_string(),
                    image: image.to_string(),
                    current: current.to_string(),
                    target: target.to_string(),
                    votes: Vec::new(),
                    required,
                    deadline: deadline.to_string(),
                    state: State::Pending,
                    diff: diff.to_string(),
                    resource_version: None,
                };
                match api
                    .create(&PostParams::default(), &to_config_map(&approval))
                    .await
                {
                    Ok(_) => {}
                    // Another planner opened it at the same moment: the same request.
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(err) => return Err(api_error(&id, &err)),
                }
                Ok(Gate::Opened(format!(
                    "approval required: 0 of {required} approvals for {target} (keelson approve {id})"
                )))
            }
        }
    }

    /// Marks the subject's other pending approvals superseded.
    async fn supersede(&self, subject: &Subject, keep: &str) -> Result<(), Error> {
        let api = self.api(subject.namespace());
        let selector = format!("{RELEASE_LABEL}={}", subject_label(subject));
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| api_error(&subject.label(), &e))?;
        for cm in list.items {
            let mut approval = from_config_map(&cm);
            if approval.state != State::Pending
                || cm.metadata.name.as_deref() == Some(keep)
                || approval.of() != *subject
            {
                continue;
            }
            approval.state = State::Superseded;
            let name = cm.metadata.name.clone().unwrap_or_default();
            // A vote landing meanwhile wins: the next plan sees it.
            let _ = api
                .replace(&name, &PostParams::default(), &to_config_map(&approval))
                .await;
        }
        Ok(())
    }

    /// Approvals in `namespace` (all namespaces: `None`), newest deadlines last.
    pub async fn list(&self, namespace: Option<&str>) -> Result<Vec<Approval>, Error> {
        let api: Api<ConfigMap> = match namespace {
            Some(ns) => self.api(ns),
            None => Api::all(self.client.clone()),
        };
        let list = api
            .list(&ListParams::default().labels(&selector()))
            .await
            .map_err(|e| api_error(namespace.unwrap_or("*"), &e))?;
        let mut approvals: Vec<Approval> = list.items.iter().map(from_config_map).collect();
        let now = jiff::Timestamp::now();
        for approval in &mut approvals {
            if approval.state == State::Pending && expired(approval, now) {
                approval.state = State::Expired;
            }
        }
        approvals.sort_by(|a, b| {
            (&a.namespace, &a.subject, &a.deadline).cmp(&(&b.namespace, &b.subject, &b.deadline))
        });
        Ok(approvals)
    }

    /// Adds `voter`'s approval (or rejection) to the pending approval `id`, retrying when
    /// another vote changed it meanwhile; a voter counts once.
    pub async fn vote(&self, id: &str, voter: &str, approve: bool) -> Result<Approval, Error> {
        let (namespace, name) = id
            .split_once('/')
            .filter(|(ns, n)| !ns.is_empty() && n.starts_with("keelson-approval-"))
            .ok_or_else(|| Error::BadId(id.to_string()))?;
        let api = self.api(namespace);
        for _ in 0..VOTE_ATTEMPTS {
            let cm = api
                .get_opt(name)
                .await
                .map_err(|e| api_error(id, &e))?
                .ok_or_else(|| Error::NotFound(id.to_string()))?;
            let mut approval = from_config_map(&cm);
            if approval.state == State::Pending && expired(&approval, jiff::Timestamp::now()) {
                approval.state = State::Expired;
            }
            if approval.state != State::Pending {
                return Err(Error::Decided {
                    id: id.to_string(),
                    state: approval.state.as_str(),
                });
            }
            if approve {
                if !approval.votes.iter().any(|v| v == voter) {
                    approval.votes.push(voter.to_string());
                }
                if approval.votes.len() as u64 >= approval.required {
                    approval.state = State::Approved;
                }
            } else {
                approval.state = State::Rejected;
            }
            match api
                .replace(name, &PostParams::default(), &to_config_map(&approval))
                .await
            {
                Ok(_) => return Ok(approval),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(err) => return Err(api_error(id, &err)),
            }
        }
        Err(Error::Busy(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_and_distinct() {
        let web = Subject::release("apps", "web");
        let a = object_name(&web, "r/app:1.1.0");
        assert_eq!(a, object_name(&web, "r/app:1.1.0"));
        assert_ne!(a, object_name(&web, "r/app:1.2.0"));
        assert!(
            a.starts_with("keelson-approval-web-") && a.len() <= 63,
            "{a}"
        );
        let long = object_name(&Subject::release("apps", &"x".repeat(60)), "t");
        assert!(long.len() <= 63, "{long}");
        // A workload's request never shares a name with a release's, even a look-alike one.
        let deployment = Subject::workload("Deployment", "apps", "web");
        let b = object_name(&deployment, "r/app:1.1.0");
        assert!(b.starts_with("keelson-approval-deployment-web-"), "{b}");
        assert_ne!(
            b,
            object_name(&Subject::release("apps", "deployment-web"), "r/app:1.1.0")
        );
        assert_ne!(
            b,
            object_name(
                &Subject::workload("StatefulSet", "apps", "web"),
                "r/app:1.1.0"
            )
        );
    }

    #[test]
    fn subject_labels_fit_a_label_value() {
        assert_eq!(subject_label(&Subject::release("apps", "web")), "web");
        assert_eq!(
            subject_label(&Subject::workload("DaemonSet", "apps", "agent")),
            "daemonset.agent"
        );
        let long = Subject::workload("Deployment", "apps", &"y".repeat(200));
        let value = subject_label(&long);
        assert!(value.len() <= 63, "{value}");
        assert_ne!(
            value,
            subject_label(&Subject::workload(
                "Deployment",
                "apps",
                &("y".repeat(199) + "z")
            ))
        );
    }

    fn sample(subject: &Subject) -> Approval {
        Approval {
            id: "apps/keelson-approval-web-0011223344".into(),
            kind: subject.kind().into(),
            release: subject.release_name().unwrap_or_default().into(),
            name: subject.name().into(),
            subject: subject.label(),
            namespace: "apps".into(),
            image: "r/app".into(),
            current: "r/app:1.0.0".into(),
            target: "r/app:1.1.0".into(),
            votes: vec!["ana".into()],
            required: 2,
            deadline: "2026-12-07T00:00:00Z".into(),
            state: State::Pending,
            diff: String::new(),
            resource_version: Some("7".into()),
        }
    }

    #[test]
    fn config_maps_round_trip() {
        let approval = sample(&Subject::release("apps", "web"));
        let back = from_config_map(&to_config_map(&approval));
        assert_eq!(back.id, approval.id);
        assert_eq!(back.votes, approval.votes);
        assert_eq!(back.required, 2);
        assert_eq!(back.state, State::Pending);
        assert_eq!(back.of(), Subject::release("apps", "web"));
        assert!(expired(
            &back,
            "2026-12-08T00:00:00Z".parse().expect("time")
        ));
        assert!(!expired(
            &back,
            "2026-12-06T00:00:00Z".parse().expect("time")
        ));

        let workload = Subject::workload("Deployment", "apps", "ithome");
        let cm = to_config_map(&sample(&workload));
        assert_eq!(
            cm.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RELEASE_LABEL))
                .map(String::as_str),
            Some("deployment.ithome")
        );
        let back = from_config_map(&cm);
        assert_eq!(back.of(), workload);
        assert_eq!(back.kind, "Deployment");
        assert_eq!(back.release, "");
        assert_eq!(back.subject, "deployment/apps/ithome");
    }

    #[test]
    fn requests_from_before_workloads_read_as_releases() {
        let mut cm = to_config_map(&sample(&Subject::release("apps", "web")));
        if let Some(data) = cm.data.as_mut() {
            data.remove("kind");
            data.remove("name");
        }
        let back = from_config_map(&cm);
        assert_eq!(back.of(), Subject::release("apps", "web"));
        assert_eq!(back.name, "web");
        assert_eq!(back.subject, "apps/web");
    }
}
