//! keelson keeps Helm releases on the newest container images their owners allow.
//!
//! The data flow, one module per box (see docs/architecture.md):
//! release record → [`storage`] → coalesced values ([`values`]) → [`keel`] block →
//! [`registry`] → [`policy`] → new values → [`render`] → [`apply`] → new revision ([`updater`]),
//! driven by the [`controller`] and the [`cli`].

pub mod apply;
pub mod approvals;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod failpoint;
pub mod keel;
pub mod logging;
pub mod notify;
pub mod policy;
pub mod registry;
pub mod render;
pub mod storage;
pub mod subcharts;
pub mod subject;
pub mod updater;
pub mod values;
pub mod workloads;
