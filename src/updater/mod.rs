//! The updater: plans image changes for each release from its `keel:` block and writes the new
//! Helm revision — changed values, re-rendered (or patched) manifest, resources applied, record
//! `pending-upgrade` → `deployed` — so `helm history` shows it and `helm rollback` undoes it.

pub mod patch_mode;
pub mod plan;
pub mod render;
pub mod rollback;
mod write;

pub use plan::{ImagePlan, TagCache, TagKey, ValueChange};
pub use write::{Outcome, ReleaseOutcome, RenderMode, Updater, UpdaterConfig};

/// Who is writing: stored on the pending record so crash repair can tell a live writer's
/// in-flight record from an abandoned one.
#[derive(Debug, Clone)]
pub struct Holder {
    /// The Lease's `holderIdentity` while this writer lives.
    pub identity: String,
    /// The `coordination.k8s.io/v1` Lease that proves it alive.
    pub lease_namespace: String,
    pub lease_name: String,
}
