//! Failpoints for crash tests: `KEELSON_FAILPOINT=<step>` makes the process abort (as `kill -9`
//! would end it: no destructors, no Lease cleanup) when it reaches that step of writing a
//! revision; `KEELSON_FAILPOINT=<step>:sleep=<ms>` pauses there instead, so a test can let
//! another writer run in between. The variable is read once; unset, a step costs one load.
//! The steps are described in docs/write-protocol.md.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable naming the step.
pub const VARIABLE: &str = "KEELSON_FAILPOINT";

/// The steps of an update, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Planned and rendered, nothing written yet.
    BeforePending,
    /// Old revisions pruned for `--history-max`; the pending record not yet created.
    AfterPrune,
    /// The `pending-upgrade` record exists; nothing applied.
    AfterPending,
    /// The first changed document was applied, the others not yet.
    MidApply,
    /// The previous revision is `superseded`; the new one is still pending.
    AfterSupersede,
    /// The new revision is `deployed`.
    AfterDeploy,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::BeforePending,
        Step::AfterPrune,
        Step::AfterPending,
        Step::MidApply,
        Step::AfterSupersede,
        Step::AfterDeploy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::BeforePending => "before-pending",
            Step::AfterPrune => "after-prune",
            Step::AfterPending => "after-pending",
            Step::MidApply => "mid-apply",
            Step::AfterSupersede => "after-supersede",
            Step::AfterDeploy => "after-deploy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Abort,
    Sleep(Duration),
}

fn configured() -> Option<(Step, Action)> {
    static CONFIGURED: OnceLock<Option<(Step, Action)>> = OnceLock::new();
    *CONFIGURED.get_or_init(|| {
        let text = std::env::var(VARIABLE).ok()?;
        let parsed = parse(&text);
        if parsed.is_none() && !text.is_empty() {
            tracing::warn!("{VARIABLE}={text:?} names no step; ignored");
        }
        parsed
    })
}

fn parse(text: &str) -> Option<(Step, Action)> {
    let (name, action) = match text.split_once(':') {
        Some((name, action)) => (name, Some(action)),
        None => (text, None),
    };
    let step = Step::ALL.into_iter().find(|s| s.name() == name.trim())?;
    let action = match action {
        None => Action::Abort,
        Some(action) => {
            let ms = action.trim().strip_prefix("sleep=")?.parse::<u64>().ok()?;
            Action::Sleep(Duration::from_millis(ms))
        }
    };
    Some((step, action))
}

/// Aborts (or pauses) here when `KEELSON_FAILPOINT` names `step`.
pub async fn hit(step: Step) {
    let Some((wanted, action)) = configured() else {
        return;
    };
    if wanted != step {
        return;
    }
    match action {
        Action::Abort => {
            eprintln!("keelson: failpoint {}: aborting", step.name());
            std::process::abort();
        }
        Action::Sleep(duration) => {
            eprintln!(
                "keelson: failpoint {}: sleeping {} ms",
                step.name(),
                duration.as_millis()
            );
            tokio::time::sleep(duration).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_actions_parse() {
        assert_eq!(
            parse("after-supersede"),
            Some((Step::AfterSupersede, Action::Abort))
        );
        assert_eq!(
            parse("before-pending:sleep=250"),
            Some((
                Step::BeforePending,
                Action::Sleep(Duration::from_millis(250))
            ))
        );
        assert_eq!(parse("after-lunch"), None);
        assert_eq!(parse("mid-apply:nap=1"), None);
    }
}
