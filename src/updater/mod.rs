//! The updater: plans image changes for each release from its `keel:` block and writes the new
//! Helm revision (values, manifest, apply, record).

pub mod patch_mode;
pub mod rollback;
