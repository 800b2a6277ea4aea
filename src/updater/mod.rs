//! The updater: plans image changes for each release from its `keel:` block and writes the new
//! Helm revision — changed values, re-rendered (or patched) manifest, resources applied, record
//! `pending-upgrade` → `deployed` — so `helm history` shows it and `helm rollback` undoes it.

pub mod backoff;
pub mod diff;
pub mod holder;
mod lookup;
pub mod patch_mode;
pub mod plan;
pub mod render;
mod repair;
pub mod rollback;
mod write;

pub use holder::{Holder, RunLease};
pub use plan::{ImagePlan, TagCache, TagKey, ValueChange};
pub use write::{Outcome, ReleaseOutcome, RenderMode, Updater, UpdaterConfig};
