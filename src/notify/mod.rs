//! Tells people what keelson did: messages to Slack, Mattermost, Microsoft Teams, Discord and
//! generic JSON webhooks, delivered in the background from a bounded queue with retries, and
//! Kubernetes Events on the release's record. A dead or slow receiver never holds up an update.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::controller::metrics::Metrics;

/// How important a message is; receivers get those at or above the minimum level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Success,
    Warn,
    Error,
}

impl Level {
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "info" => Level::Info,
            "success" => Level::Success,
            "warn" | "warning" => Level::Warn,
            "error" => Level::Error,
            other => {
                return Err(format!(
                    "{other:?} is not a level (debug, info, success, warn, error)"
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Success => "success",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The colour chat services show beside the message.
    fn colour(self) -> &'static str {
        match self {
            Level::Debug | Level::Info => "#439FE0",
            Level::Success => "#36a64f",
            Level::Warn => "#ECB22E",
            Level::Error => "#E01E5A",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    UpdatePlanned,
    UpdateApplied,
    UpdateFailed,
    ApprovalRequested,
    ApprovalApproved,
    ApprovalRejected,
    ApprovalExpired,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UpdatePlanned => "update-planned",
            Kind::UpdateApplied => "update-applied",
            Kind::UpdateFailed => "update-failed",
            Kind::ApprovalRequested => "approval-requested",
            Kind::ApprovalApproved => "approval-approved",
            Kind::ApprovalRejected => "approval-rejected",
            Kind::ApprovalExpired => "approval-expired",
        }
    }

    /// The level a message of this kind carries.
    pub fn level(self) -> Level {
        match self {
            Kind::UpdatePlanned => Level::Info,
            Kind::UpdateApplied | Kind::ApprovalApproved => Level::Success,
            Kind::ApprovalRequested | Kind::ApprovalRejected | Kind::ApprovalExpired => Level::Warn,
            Kind::UpdateFailed => Level::Error,
        }
    }

    /// The Kubernetes Event reason (CamelCase, as kube's conventions want).
    pub fn reason(self) -> &'static str {
        match self {
            Kind::UpdatePlanned => "UpdatePlanned",
            Kind::UpdateApplied => "Updated",
            Kind::UpdateFailed => "UpdateFailed",
            Kind::ApprovalRequested => "ApprovalRequested",
            Kind::ApprovalApproved => "Approved",
            Kind::ApprovalRejected => "Rejected",
            Kind::ApprovalExpired => "ApprovalExpired",
        }
    }
}

/// One message about one release or workload.
#[derive(Debug, Clone)]
pub struct Notification {
    pub kind: Kind,
    pub subject: crate::subject::Subject,
    /// `old → new` per image.
    pub images: Vec<(String, String)>,
    pub revision: Option<i64>,
    pub reason: Option<String>,
    pub release_notes: Vec<String>,
    /// The block's `notificationChannels` (a workload's `keel.sh/notify`): Slack/Mattermost
    /// channels instead of the default.
    pub channels: Vec<String>,
}

impl Notification {
    pub fn title(&self) -> String {
        let subject = self.subject.label();
        match self.kind {
            Kind::UpdatePlanned => format!("Update planned for {subject}"),
            Kind::UpdateApplied => match self.revision {
                Some(revision) => format!("{subject} updated (revision {revision})"),
                None => format!("{subject} updated"),
            },
            Kind::UpdateFailed => format!("Update of {subject} failed"),
            Kind::ApprovalRequested => format!("Approval requested for {subject}"),
            Kind::ApprovalApproved => format!("Update of {subject} approved"),
            Kind::ApprovalRejected => format!("Update of {subject} rejected"),
            Kind::ApprovalExpired => format!("Approval for {subject} expired"),
        }
    }

    pub fn message(&self) -> String {
        let mut lines: Vec<String> = self
            .images
            .iter()
            .map(|(old, new)| format!("{old} → {new}"))
            .collect();
        if let Some(reason) = &self.reason {
            lines.push(format!("Reason: {reason}"));
        }
        for note in &self.release_notes {
            lines.push(format!("Release notes: {note}"));
        }
        lines.join("\n")
    }
}

/// A receiver kind and how its messages look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    Slack,
    Mattermost,
    Teams,
    Discord,
    Webhook,
}

impl SenderKind {
    pub const ALL: [SenderKind; 5] = [
        SenderKind::Slack,
        SenderKind::Mattermost,
        SenderKind::Teams,
        SenderKind::Discord,
        SenderKind::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::Slack => "slack",
            SenderKind::Mattermost => "mattermost",
            SenderKind::Teams => "teams",
            SenderKind::Discord => "discord",
            SenderKind::Webhook => "webhook",
        }
    }

    /// `KEELSON_NOTIFY_SLACK_URL`, …
    pub fn variable(self) -> String {
        format!("KEELSON_NOTIFY_{}_URL", self.as_str().to_ascii_uppercase())
    }

    /// The bodies to POST for `n` (one per channel where the service takes a channel).
    pub fn bodies(self, n: &Notification) -> Vec<Value> {
        let level = n.kind.level();
        let fields = [
            (
                if n.subject.release_name().is_some() {
                    "Release"
                } else {
                    "Workload"
                },
                n.subject.label(),
            ),
            ("Event", n.kind.as_str().to_string()),
        ];
        match self {
            SenderKind::Slack | SenderKind::Mattermost => {
                let body = json!({
                    "text": n.title(),
                    "attachments": [{
                        "fallback": format!("{}: {}", n.title(), n.message()),
                        "color": level.colour(),
                        "title": n.title(),
                        "text": n.message(),
                        "fields": fields.iter().map(|(k, v)| json!({"title": k, "value": v, "short": true})).collect::<Vec<_>>(),
                    }],
                });
                if n.channels.is_empty() {
                    return vec![body];
                }
                n.channels
                    .iter()
                    .map(|channel| {
                        let mut body = body.clone();
                        body["channel"] = Value::String(channel.clone());
                        body
                    })
                    .collect()
            }
            SenderKind::Teams => vec![json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "themeColor": level.colour().trim_start_matches('#'),
                "summary": n.title(),
                "sections": [{
                    "activityTitle": n.title(),
                    "text": n.message().replace('\n', "<br>"),
                    "facts": fields.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                }],
            })],
            SenderKind::Discord => vec![json!({
                "content": n.title(),
                "embeds": [{
                    "title": n.title(),
                    "description": n.message(),
                    "color": u32::from_str_radix(level.colour().trim_start_matches('#'), 16).unwrap_or(0),
                    "fields": fields.iter().map(|(k, v)| json!({"name": k, "value": v, "inline": true})).collect::<Vec<_>>(),
                }],
            })],
            SenderKind::Webhook => vec![json!({
                "name": n.kind.as_str(),
                "level": level.as_str(),
                "title": n.title(),
                "message": n.message(),
                "release": n.subject.release_name(),
                "namespace": n.subject.namespace(),
                "kind": n.subject.kind(),
                "subject": n.subject.label(),
                "workload": match &n.subject {
                    crate::subject::Subject::Workload { name, .. } => Some(name),
                    crate::subject::Subject::Release { .. } => None,
                },
                "images": n.images.iter().map(|(old, new)| json!({"old": old, "new": new})).collect::<Vec<_>>(),
                "revision": n.revision,
                "reason": n.reason,
                "releaseNotes": n.release_notes,
                "channels": n.channels,
                "createdAt": jiff::Timestamp::now().to_string(),
            })],
        }
    }
}

/// One configured receiver. Its URL is a secret (Slack's carries the token): never logged.
#[derive(Clone)]
pub struct Sender {
    pub kind: SenderKind,
    url: String,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("kind", &self.kind)
            .field("url", &"<redacted>")
            .finish()
    }
}

/// Receivers and the minimum level, from the environment: `KEELSON_NOTIFY_<KIND>_URL` or
/// `KEELSON_NOTIFY_<KIND>_URL_FILE` (the chart mounts a Secret), `KEELSON_NOTIFY_LEVEL`.
#[derive(Debug, Clone)]
pub struct Config {
    pub senders: Vec<Sender>,
    pub min_level: Level,
    /// Messages waiting for delivery at most; more are dropped (and counted).
    pub queue: usize,
    /// Attempts per message and receiver.
    pub attempts: u32,
    pub timeout: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let mut senders = Vec::new();
        for kind in SenderKind::ALL {
            let variable = kind.variable();
            let url = match (
                std::env::var(&variable)
                    .ok()
                    .filter(|v| !v.trim().is_empty()),
                std::env::var(format!("{variable}_FILE"))
                    .ok()
                    .filter(|v| !v.trim().is_empty()),
            ) {
                (Some(url), _) => Some(url.trim().to_string()),
                (None, Some(path)) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|err| format!("cannot read {variable}_FILE {path}: {err}"))?
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
            if let Some(url) = url {
                // Checked here so a typo fails at start, not at the first update; the URL
                // itself is not repeated in the error (it may hold a token).
                if url::Url::parse(&url).is_err() {
                    return Err(format!("{variable} is not a URL"));
                }
                senders.push(Sender { kind, url });
            }
        }
        let min_level = match std::env::var("KEELSON_NOTIFY_LEVEL") {
            Ok(text) if !text.trim().is_empty() => {
                Level::parse(&text).map_err(|e| format!("KEELSON_NOTIFY_LEVEL: {e}"))?
            }
            _ => Level::Info,
        };
        Ok(Self {
            senders,
            min_level,
            queue: 1000,
            attempts: 4,
            timeout: Duration::from_secs(5),
        })
    }
}

/// Events say they come from the controller `keelson` (the pod, when run in one).
fn reporter() -> kube::runtime::events::Reporter {
    kube::runtime::events::Reporter {
        controller: "keelson".to_string(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

/// Queues messages for delivery; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Notification>>,
    metrics: Arc<Metrics>,
    events: Option<Arc<kube::runtime::events::Recorder>>,
}

impl Notifier {
    /// Starts delivery in the background. `client` (when given) also records Kubernetes Events.
    pub fn start(config: Config, metrics: Arc<Metrics>, client: Option<kube::Client>) -> Self {
        let events =
            client.map(|client| Arc::new(kube::runtime::events::Recorder::new(client, reporter())));
        if config.senders.is_empty() {
            return Self {
                queue: None,
                metrics,
                events,
            };
        }
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        tokio::spawn(deliver(rx, config, metrics.clone()));
        Self {
            queue: Some(tx),
            metrics,
            events,
        }
    }

    /// Records Kubernetes Events only (one-shot commands deliver messages with [`send_now`]).
    pub fn events_only(metrics: Arc<Metrics>, client: kube::Client) -> Self {
        Self {
            queue: None,
            metrics,
            events: Some(Arc::new(kube::runtime::events::Recorder::new(
                client,
                reporter(),
            ))),
        }
    }

    /// Queues `n` for every receiver; never waits. A full queue drops it (counted).
    pub fn send(&self, n: Notification) {
        let Some(queue) = &self.queue else {
            return;
        };
        if queue.try_send(n).is_err() {
            self.metrics.inc(
                "keelson_notifications_total",
                &[("sender", "all"), ("result", "dropped")],
            );
        }
    }

    /// Records a Kubernetes Event on `object` (the release's record, or the workload itself).
    pub async fn event(
        &self,
        n: &Notification,
        object: k8s_openapi::api::core::v1::ObjectReference,
    ) {
        let Some(recorder) = &self.events else {
            return;
        };
        use kube::runtime::events::{Event, EventType};
        let type_ = if n.kind.level() >= Level::Warn {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let mut note = n.title();
        let message = n.message();
        if !message.is_empty() {
            note.push_str(": ");
            note.push_str(&message.replace('\n', "; "));
        }
        // The apiserver caps an Event's note at 1 kB.
        if note.len() > 1000 {
            let mut cut = 997;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push('…');
        }
        let event = Event {
            type_,
            reason: n.kind.reason().to_string(),
            note: Some(note),
            action: n.kind.as_str().to_string(),
            secondary: None,
        };
        let result =
            tokio::time::timeout(Duration::from_secs(10), recorder.publish(&event, &object)).await;
        match result {
            Ok(Ok(())) => self
                .metrics
                .inc("keelson_events_total", &[("result", "recorded")]),
            Ok(Err(err)) => {
                warn!(subject = %n.subject, error = %crate::cluster::api_error_text(&err), "cannot record a Kubernetes Event");
                self.metrics
                    .inc("keelson_events_total", &[("result", "failed")]);
            }
            Err(_) => self
                .metrics
                .inc("keelson_events_total", &[("result", "failed")]),
        }
    }
}

/// Delivers `n` to every receiver now and waits (for one-shot commands such as
/// `keelson approve`, which exit right after).
pub async fn send_now(config: &Config, n: &Notification, metrics: &Metrics) {
    if n.kind.level() < config.min_level || config.senders.is_empty() {
        return;
    }
    let Ok(client) = reqwest::Client::builder().timeout(config.timeout).build() else {
        return;
    };
    for sender in &config.senders {
        for body in sender.kind.bodies(n) {
            post(&client, sender, &body, config.attempts.max(1), metrics).await;
        }
    }
}

/// The delivery loop: each message to each receiver at or above the minimum level, several
/// deliveries at once so a hanging receiver only ties up its own slot.
async fn deliver(mut rx: mpsc::Receiver<Notification>, config: Config, metrics: Arc<Metrics>) {
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(client) => client,
        Err(err) => {
            warn!(error = %err, "cannot build the notification HTTP client; notifications are off");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(8));
    while let Some(n) = rx.recv().await {
        if n.kind.level() < config.min_level {
            continue;
        }
        for sender in &config.senders {
            for body in sender.kind.bodies(&n) {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (client, sender, metrics) = (client.clone(), sender.clone(), metrics.clone());
                let attempts = config.attempts.max(1);
                tokio::spawn(async move {
                    let _slot = slot;
                    post(&client, &sender, &body, attempts, &metrics).await;
                });
            }
        }
    }
}

async fn post(
    client: &reqwest::Client,
    sender: &Sender,
    body: &Value,
    attempts: u32,
    metrics: &Metrics,
) {
    let kind = sender.kind.as_str();
    for attempt in 1..=attempts {
        let outcome = client.post(&sender.url).json(body).send().await;
        match outcome {
            Ok(response) if response.status().is_success() => {
                metrics.inc(
                    "keelson_notifications_total",
                    &[("sender", kind), ("result", "sent")],
                );
                return;
            }
            Ok(response) => {
                debug!(sender = kind, status = %response.status(), attempt, "notification refused");
            }
            // The error text of reqwest names the URL, which may hold a token: not logged.
            Err(_) => debug!(sender = kind, attempt, "notification not delivered"),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
        }
    }
    warn!(sender = kind, attempts, "giving up on a notification");
    metrics.inc(
        "keelson_notifications_total",
        &[("sender", kind), ("result", "failed")],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Notification {
        Notification {
            kind: Kind::UpdateApplied,
            subject: crate::subject::Subject::release("apps", "web"),
            images: vec![("r/app:1.0.0".into(), "r/app:1.1.0".into())],
            revision: Some(3),
            reason: None,
            release_notes: vec!["https://example.com/notes".into()],
            channels: vec!["#a".into(), "#b".into()],
        }
    }

    #[test]
    fn bodies_per_service() {
        let n = sample();
        let slack = SenderKind::Slack.bodies(&n);
        assert_eq!(slack.len(), 2, "one per channel");
        assert_eq!(slack[1]["channel"], "#b");
        assert_eq!(slack[0]["text"], "apps/web updated (revision 3)");
        assert!(
            slack[0]["attachments"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains(
                    "r/app:1.0.0 → r/app:1.1.0\nRelease notes: https://example.com/notes"
                ))
        );
        let teams = SenderKind::Teams.bodies(&n);
        assert_eq!(teams[0]["@type"], "MessageCard");
        let discord = SenderKind::Discord.bodies(&n);
        assert_eq!(discord[0]["embeds"][0]["color"], 0x36a64f);
        let webhook = SenderKind::Webhook.bodies(&n);
        assert_eq!(webhook[0]["name"], "update-applied");
        assert_eq!(webhook[0]["level"], "success");
        assert_eq!(webhook[0]["revision"], 3);
        assert_eq!(webhook[0]["images"][0]["new"], "r/app:1.1.0");
    }

    #[test]
    fn workload_messages_name_kind_namespace_and_name() {
        let n = Notification {
            kind: Kind::ApprovalRequested,
            subject: crate::subject::Subject::workload("Deployment", "default", "ithome"),
            revision: None,
            ..sample()
        };
        assert_eq!(
            n.title(),
            "Approval requested for deployment/default/ithome"
        );
        let webhook = &SenderKind::Webhook.bodies(&n)[0];
        assert_eq!(webhook["kind"], "Deployment");
        assert_eq!(webhook["workload"], "ithome");
        assert_eq!(webhook["subject"], "deployment/default/ithome");
        assert_eq!(webhook["release"], Value::Null);
        let slack = &SenderKind::Slack.bodies(&n)[0];
        assert_eq!(
            slack["attachments"][0]["fields"][0]["title"], "Workload",
            "{slack}"
        );
    }

    #[test]
    fn levels_order_and_parse() {
        assert!(
            Level::Error > Level::Warn
                && Level::Warn > Level::Success
                && Level::Info > Level::Debug
        );
        assert_eq!(Level::parse("WARNING"), Ok(Level::Warn));
        assert!(Level::parse("loud").is_err());
        let sender = Sender {
            kind: SenderKind::Slack,
            url: "https://hooks.slack.com/services/SECRET".into(),
        };
        assert!(!format!("{sender:?}").contains("SECRET"));
    }
}
