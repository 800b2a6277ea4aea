//! Runs a release's hooks for an event the way Helm does: by weight then name, each hook's
//! resource recreated (`before-hook-creation`, Helm's default policy), Jobs and Pods waited for
//! until they finish, and `hook-succeeded` / `hook-failed` deletions honoured.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, DynamicObject, PostParams};
use serde_json::Value;

use super::{Applier, Error, ReleaseTarget, Result, parse_manifest};

/// One hook as a release record stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    pub name: String,
    pub manifest: String,
    pub weight: i64,
    pub delete_policies: Vec<String>,
}

/// How a hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    Succeeded,
    Failed,
}

impl HookPhase {
    /// The phase as Helm records it in `last_run.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Succeeded => "Succeeded",
            HookPhase::Failed => "Failed",
        }
    }
}

/// One hook's run, for the record's `last_run`.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub name: String,
    pub started_at: jiff::Zoned,
    pub completed_at: jiff::Zoned,
    pub phase: HookPhase,
}

const BEFORE_CREATION: &str = "before-hook-creation";
const ON_SUCCESS: &str = "hook-succeeded";
const ON_FAILURE: &str = "hook-failed";
const POLL: Duration = Duration::from_millis(250);

impl Applier {
    /// Runs `hooks` in Helm's order; stops at the first failure. Returns the runs so far and
    /// the error that stopped them, if any.
    pub async fn run_hooks(
        &self,
        target: &ReleaseTarget,
        hooks: &[HookSpec],
        timeout: Duration,
    ) -> (Vec<HookRun>, Result<()>) {
        let mut ordered: Vec<&HookSpec> = hooks.iter().collect();
        ordered.sort_by(|a, b| a.weight.cmp(&b.weight).then_with(|| a.name.cmp(&b.name)));
        let mut runs = Vec::with_capacity(ordered.len());
        for hook in ordered {
            let started_at = jiff::Zoned::now();
            let result = self.run_hook(target, hook, timeout).await;
            let phase = match &result {
                Ok(()) => HookPhase::Succeeded,
                Err(_) => HookPhase::Failed,
            };
            runs.push(HookRun {
                name: hook.name.clone(),
                started_at,
                completed_at: jiff::Zoned::now(),
                phase,
            });
            if let Err(err) = result {
                return (runs, Err(err));
            }
        }
        (runs, Ok(()))
    }

    async fn run_hook(
        &self,
        target: &ReleaseTarget,
        hook: &HookSpec,
        timeout: Duration,
    ) -> Result<()> {
        let policies: Vec<&str> = if hook.delete_policies.is_empty() {
            vec![BEFORE_CREATION]
        } else {
            hook.delete_policies.iter().map(String::as_str).collect()
        };
        for document in parse_manifest(&target.name, "hook", &hook.manifest)? {
            let (api, namespace) = self.api(target, &document).await?;
            let request_error = |verb: &'static str, source: kube::Error| Error::Request {
                release: target.name.clone(),
                verb,
                kind: document.kind.clone(),
                namespace: namespace.clone(),
                name: document.name.clone(),
                source: Box::new(source),
            };
            if policies.contains(&BEFORE_CREATION) {
                self.delete_and_wait(&api, &document.name, timeout)
                    .await
                    .map_err(|source| request_error("delete", source))?;
            }
            let object: DynamicObject = serde_json::from_value(document.body.clone())
                .map_err(|err| request_error("create", kube::Error::SerdeError(err)))?;
            self.count();
            api.create(&PostParams::default(), &object)
                .await
                .map_err(|source| request_error("create", source))?;
            let outcome = self
                .wait_for_hook(&api, &document.kind, &document.name, timeout)
                .await;
            let failed = !matches!(outcome, Ok(true));
            let delete = if failed {
                policies.contains(&ON_FAILURE)
            } else {
                policies.contains(&ON_SUCCESS)
            };
            if delete {
                self.count();
                let _ = api
                    .delete(&document.name, &DeleteParams::background())
                    .await;
            }
            match outcome {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Error::Hook {
                        release: target.name.clone(),
                        hook: hook.name.clone(),
                        reason: format!("{} {} failed", document.kind, document.name),
                    });
                }
                Err(reason) => {
                    return Err(Error::Hook {
                        release: target.name.clone(),
                        hook: hook.name.clone(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    async fn delete_and_wait(
        &self,
        api: &kube::Api<DynamicObject>,
        name: &str,
        timeout: Duration,
    ) -> std::result::Result<(), kube::Error> {
        self.count();
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(err) => return Err(err),
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.count();
            if api.get_opt(name).await?.is_none() || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `Ok(true)` when the hook finished well, `Ok(false)` when it failed, `Err` on timeout.
    /// Only Jobs and Pods run to completion; every other kind is done once created.
    async fn wait_for_hook(
        &self,
        api: &kube::Api<DynamicObject>,
        kind: &str,
        name: &str,
        timeout: Duration,
    ) -> std::result::Result<bool, String> {
        if kind != "Job" && kind != "Pod" {
            return Ok(true);
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.count();
            let live = api.get_opt(name).await.map_err(|err| {
                format!(
                    "cannot read {kind} {name}: {}",
                    crate::cluster::error_chain(&err)
                )
            })?;
            let status = live
                .and_then(|object| serde_json::to_value(object).ok())
                .map(|value| value["status"].clone())
                .unwrap_or(Value::Null);
            if let Some(done) = finished(kind, &status) {
                return Ok(done);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{kind} {name} did not finish within {}s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Whether a Job or Pod status says it finished, and how.
fn finished(kind: &str, status: &Value) -> Option<bool> {
    if kind == "Pod" {
        return match status["phase"].as_str() {
            Some("Succeeded") => Some(true),
            Some("Failed") => Some(false),
            _ => None,
        };
    }
    for condition in status["conditions"].as_array().into_iter().flatten() {
        if condition["status"] != "True" {
            continue;
        }
        match condition["type"].as_str() {
            Some("Complete") => return Some(true),
            Some("Failed") => return Some(false),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_and_pod_completion_is_read_from_status() {
        let complete = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        let failed = json!({"conditions": [{"type": "Failed", "status": "True"}]});
        assert_eq!(finished("Job", &complete), Some(true));
        assert_eq!(finished("Job", &failed), Some(false));
        assert_eq!(finished("Job", &json!({"active": 1})), None);
        assert_eq!(finished("Pod", &json!({"phase": "Succeeded"})), Some(true));
        assert_eq!(finished("Pod", &json!({"phase": "Pending"})), None);
    }
}
