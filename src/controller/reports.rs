//! OpenReports (`--openreports`): the ClusterReport of each policy, written after its status
//! with the same discipline: built from the status as written, server-side apply with the
//! operator's field manager, owned by the policy, and only when its content differs from what is
//! stored. What is stored is remembered per policy; it is read (one GET) when not known yet (after
//! a start or a change of leadership) and again once per resync interval, so that a report
//! deleted or changed by someone else is put back. Nothing is done while the API server does not
//! serve ClusterReports (their CRD is not installed; discovery tells when it appears).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::Api;
use kube::ResourceExt;
use tokio::time::Instant;

use super::error::{within, Call, Error};
use super::Context;
use crate::crd::v1alpha1::SupportReport;
use crate::k8s::openreports::{self, ClusterReport, MANAGED_BY};

/// What the operator knows of a policy's stored report.
#[derive(Debug, Clone)]
enum Known {
    /// The report as written or read, and when it was last read or written.
    Ours(Box<ClusterReport>, Instant),
    /// A ClusterReport of that name that another producer wrote: left alone.
    Foreign(Instant),
}

/// The reports of every policy.
#[derive(Debug, Default)]
pub(super) struct Reports {
    enabled: bool,
    known: Mutex<HashMap<String, Known>>,
}

/// Whether the report of a reconcile is written.
pub(super) enum Synced {
    /// Written, unchanged, or not wanted.
    Done,
    /// Held back: the Lease is about to lapse.
    Deferred,
}

impl Reports {
    pub(super) fn new(enabled: bool) -> Self {
        Reports { enabled, known: Mutex::default() }
    }

    /// Whether `--openreports` is set.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every stored report (leadership lost, the CRD gone).
    pub(super) fn forget_all(&self) {
        self.known().clear();
    }

    /// Forgets the reports of policies `keep` rejects.
    pub(super) fn retain(&self, keep: impl Fn(&String) -> bool) {
        self.known().retain(|p, _| keep(p));
    }
}

/// Writes the ClusterReport of the policy `name` (uid `uid`) whose status is `status`, if it
/// differs from what is stored.
pub(super) async fn sync(
    ctx: &Context,
    name: &str,
    uid: &str,
    status: &SupportReport,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Synced, Error> {
    let reports = &ctx.reports;
    if !reports.enabled() || !ctx.cluster.read().unwrap_or_else(|e| e.into_inner()).cluster_reports {
        return Ok(Synced::Done);
    }
    let api: Api<ClusterReport> = Api::all(ctx.client.clone());
    let fresh = |at: &Instant| at.elapsed() < ctx.resync;
    let remembered = reports.known().get(name).cloned();
    let stored = match remembered {
        Some(Known::Ours(report, at)) if fresh(&at) => Some(*report),
        Some(Known::Foreign(at)) if fresh(&at) => return Ok(Synced::Done),
        _ => {
            let Some(budget) = super::reconcile::budget(ctx) else { return Ok(Synced::Deferred) };
            let read = within(Call::ReadReport, budget, openreports::get(&api, name)).await?;
            if read.as_ref().is_some_and(|r| !ours(r, uid)) {
                tracing::warn!(
                    report = name,
                    "a ClusterReport of this name belongs to another producer; not writing it"
                );
                reports.known().insert(name.to_string(), Known::Foreign(Instant::now()));
                return Ok(Synced::Done);
            }
            read
        }
    };
    let desired = openreports::build(name, uid, status, stored.as_ref(), now);
    if stored.as_ref().is_some_and(|s| openreports::same_content(s, &desired)) {
        reports.known().insert(name.to_string(), Known::Ours(Box::new(desired), Instant::now()));
        return Ok(Synced::Done);
    }
    let Some(budget) = super::reconcile::budget(ctx) else { return Ok(Synced::Deferred) };
    match within(Call::ApplyReport, budget, openreports::apply(&api, &desired)).await {
        Ok(()) => {
            reports.known().insert(name.to_string(), Known::Ours(Box::new(desired), Instant::now()));
            Ok(Synced::Done)
        }
        Err(Error::Api { source: kube::Error::Api(e), .. }) if e.code == 404 => {
            // The CRD went away since discovery last looked: wait until it serves them again.
            tracing::warn!("ClusterReports are no longer served; OpenReports paused until discovery finds them");
            ctx.cluster.write().unwrap_or_else(|e| e.into_inner()).cluster_reports = false;
            reports.forget_all();
            Ok(Synced::Done)
        }
        Err(e) => Err(e),
    }
}

/// Whether a stored report is this operator's for the policy `uid` (or unowned and labelled as
/// this operator's, e.g. after the policy was recreated).
fn ours(report: &ClusterReport, uid: &str) -> bool {
    let owned = report.owner_references().iter().any(|o| o.uid == uid);
    let labelled = report.labels().get(MANAGED_BY.0).is_some_and(|v| v == MANAGED_BY.1);
    owned || labelled
}
