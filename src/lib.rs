//! support-operator: makes managed-Kubernetes support policies visible and alertable.
//!
//! `policy` is the pure engine; `snapshot` the value it reads; `calendar` the release data;
//! `crd` the API types. The operator (`controller`, `k8s`) and the `check` command are thin
//! shells around them.

pub mod calendar;
pub mod check;
pub mod cli;
pub mod crd;
pub mod k8s;
pub mod policy;
pub mod snapshot;
pub mod time;

/// Runs the operator until SIGTERM (implemented in the controller issue).
pub fn run(_args: cli::RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("the operator is not built yet")
}
