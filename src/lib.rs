//! support-operator: makes managed-Kubernetes support policies visible and alertable.
//!
//! `policy` is the pure engine; `snapshot` the value it reads; `calendar` the release data;
//! `crd` the API types. The operator and the `check` command are thin shells around them.

pub mod calendar;
pub mod crd;
pub mod policy;
pub mod snapshot;
pub mod time;
