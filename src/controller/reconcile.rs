//! One reconcile: gather from the caches, evaluate, write what changed.

use std::sync::Arc;
use std::time::Duration;

use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use rand::Rng;

use super::error::{within, Call, Error};
use super::reports::{self, Synced};
use super::{requeue_at, Context};
use crate::crd::v1alpha1::{SupportPolicy, SupportReport, SupportStatus, Verdict};
use crate::k8s::status;
use crate::policy::{self, evaluate, report, Evaluation, Policy, PolicyError};
use crate::text::cut_to_bytes;

/// The name of the controller's work in `/healthz`.
pub(super) const LOOP: &str = "controller";

/// The longest an API write of a reconcile may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Retry of a write held back because the Lease is about to lapse.
const DEFERRED: Duration = Duration::from_secs(1);

/// The API limit of an Event's `note`, in bytes.
const NOTE_LIMIT: usize = 1024;

/// Whether the writes of a reconcile happened.
enum Written {
    /// The status as written (or already stored), and the policy's uid.
    Done(Box<SupportReport>, String),
    /// Held back: less than the safety margin of the Lease is left.
    Deferred,
}

/// Evaluates one policy and writes its status if it changed.
#[tracing::instrument(skip_all, fields(policy = %obj.name_any()))]
pub(super) async fn reconcile(obj: Arc<DeserializeGuard<SupportPolicy>>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Nothing is evaluated from half-filled caches, nor once the operator stops.
    let (mut ready, mut stopping) = (ctx.ready.clone(), ctx.stopping.clone());
    tokio::select! {
        r = ready.wait_for(|ready| *ready) => if r.is_err() { return Ok(Action::await_change()) },
        _ = stopping.wait_for(|stop| *stop) => return Ok(Action::await_change()),
    }
    // A policy that cannot be read or resolved is reported as invalid; nothing else is evaluated.
    let resolved = match &obj.0 {
        Err(invalid) => {
            ctx.metrics.skipped_objects.with_label_values(&["SupportPolicy"]).inc();
            Err(vec![PolicyError { field: "spec".into(), reason: format!("cannot be read: {}", invalid.error) }])
        }
        Ok(p) => Policy::resolve(&p.spec),
    };
    let leases: Vec<(String, String)> = match &resolved {
        Ok(p) => p.leases().into_iter().map(|l| (l.namespace, l.name)).collect(),
        Err(_) => Vec::new(),
    };
    if resolved.as_ref().is_ok_and(|p| !ctx.nodes.holds(&p.node_keys())) {
        // It reads node labels the cache does not hold yet: the relist under way reads them,
        // and its end triggers a reconcile.
        return Ok(Action::await_change());
    }
    // The duration covers gather, evaluate and write.
    let timer = ctx.metrics.reconcile_duration.start_timer();
    let Some(snapshot) = ctx.snapshot(&leases) else {
        // The Leases it names are not read yet: their first list triggers a reconcile.
        timer.stop_and_discard();
        return Ok(Action::await_change());
    };

    let _busy = ctx.health.busy(LOOP);
    ctx.prune_written();
    ctx.metrics.prune();
    let name = obj.name_any();
    let now = ctx.clock.now();
    let evaluation = match resolved {
        Ok(resolved) => policy::evaluate_resolved(&resolved, &snapshot, now),
        Err(errors) => evaluate::invalid(errors),
    };

    if ctx.leadership.is_leader() {
        let (status, uid) = match write(&obj, &name, &evaluation, &ctx, now).await? {
            Written::Done(status, uid) => (status, uid),
            Written::Deferred => return Ok(Action::requeue(DEFERRED)),
        };
        if let Synced::Deferred = reports::sync(&ctx, &name, &uid, &status, now).await? {
            return Ok(Action::requeue(DEFERRED));
        }
        // Recorded only while still the leader, atomically with the end of leadership clearing
        // every series: a replica that lost the Lease during the write keeps none.
        ctx.leadership.while_leader(|| ctx.metrics.record(&name, &evaluation));
    }
    ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);

    let (verdict, next_change) = (evaluation.verdict, evaluation.next_change);
    drop((evaluation, snapshot));
    timer.observe_duration();
    // Housekeeping, not part of the reconcile's measured duration.
    super::memory::release_free_pages();
    if verdict == Verdict::Unknown {
        // Nothing to retry: the next change of the policy triggers a reconcile.
        return Ok(Action::await_change());
    }
    Ok(requeue_at(next_change, now, ctx.resync))
}

/// The time a write starting now may take, if one may start.
pub(super) fn budget(ctx: &Context) -> Option<Duration> {
    ctx.leadership.write_budget().map(|left| left.min(WRITE_TIMEOUT))
}

/// Writes the SupportStatus of `name`: the object when missing, the status when it changed,
/// an Event when the verdict changed.
async fn write(
    obj: &DeserializeGuard<SupportPolicy>,
    name: &str,
    evaluation: &Evaluation,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Written, Error> {
    let api: Api<SupportStatus> = Api::all(ctx.client.clone());
    let cached = ctx.statuses.get(&ObjectRef::new(name));
    let cached_ok = cached.as_ref().and_then(|c| c.0.as_ref().ok());
    let Some(uid) = obj.meta().uid.clone() else {
        return Err(Error::Internal(format!(
            "SupportPolicy {name} has no uid: its SupportStatus cannot name its owner"
        )));
    };
    let owned = cached_ok.is_some_and(|c| c.owner_references().iter().any(|r| r.uid == uid));
    if !owned {
        let Some(budget) = budget(ctx) else { return Ok(Written::Deferred) };
        let policy = SupportPolicy {
            metadata: obj.meta().clone(),
            spec: obj.0.as_ref().map(|p| p.spec.clone()).unwrap_or_default(),
        };
        within(Call::ApplyObject, budget, status::apply_object(&api, &policy)).await?;
    }

    let previous: Option<SupportReport> = cached_ok.and_then(|c| c.status.clone());
    let last_written = {
        let mut written = ctx.written.lock().unwrap_or_else(|e| e.into_inner());
        // Once the cache shows our write, it is the truth again: a later change by someone
        // else is then seen as a difference and overwritten.
        let cached_rv = cached_ok.and_then(|c| c.metadata.resource_version.clone());
        if written.get(name).is_some_and(|(rv, _)| rv.is_some() && *rv == cached_rv) {
            written.remove(name);
        }
        written.get(name).map(|(_, r)| r.clone())
    };
    let base = last_written.as_ref().or(previous.as_ref());
    let next = report::report(evaluation, base, obj.meta().generation, now);
    let unchanged = previous.as_ref() == Some(&next) || last_written.as_ref() == Some(&next);
    if unchanged {
        return Ok(Written::Done(Box::new(next), uid));
    }
    let Some(budget) = budget(ctx) else { return Ok(Written::Deferred) };
    let rv = within(Call::ApplyStatus, budget, status::apply_status(&api, name, &next)).await?;
    ctx.metrics.status_writes.inc();
    ctx.written.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), (rv, next.clone()));

    // The verdict before is the one this replica wrote, if it remembers one: a status someone
    // else changed and that is now put back is not a change of the verdict.
    let remembered = ctx.verdicts.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), next.verdict);
    let before = remembered.unwrap_or_else(|| base.and_then(|b| b.verdict));
    if before != next.verdict {
        publish_event(obj, ctx, before, &next).await;
    }
    Ok(Written::Done(Box::new(next), uid))
}

async fn publish_event(
    obj: &DeserializeGuard<SupportPolicy>,
    ctx: &Context,
    before: Option<Verdict>,
    next: &SupportReport,
) {
    let after = next.verdict.unwrap_or(Verdict::Unknown);
    // Verdicts are ordered Supported < AtRisk < Unsupported < Unknown.
    let worse = before.map_or(after != Verdict::Supported, |b| after > b);
    let headline = next
        .findings
        .first()
        .map(|f| format!(": {} {} ({}): {}", f.severity.as_str(), f.rule, f.subject, f.message))
        .unwrap_or_default();
    let note = match before {
        Some(b) => format!("Verdict changed from {} to {}{headline}", b.as_str(), after.as_str()),
        None => format!("Verdict is {}{headline}", after.as_str()),
    };
    let event = Event {
        type_: if worse { EventType::Warning } else { EventType::Normal },
        reason: format!("Verdict{}", after.as_str()),
        note: Some(cut_to_bytes(&note, NOTE_LIMIT)),
        action: "Evaluate".into(),
        secondary: None,
    };
    let reference = obj.object_ref(&());
    let Some(budget) = budget(ctx) else { return };
    if let Err(e) = within(Call::PublishEvent, budget, ctx.recorder.publish(&event, &reference)).await {
        tracing::warn!(error = %e, "cannot record the verdict event");
        ctx.metrics.reconcile_errors.with_label_values(&[e.category().as_str()]).inc();
    }
}

/// API errors: exponential backoff with jitter per policy (1 s doubling to 5 min, ±25 %).
pub(super) fn error_policy(obj: Arc<DeserializeGuard<SupportPolicy>>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = obj.name_any();
    let category = error.category().as_str();
    ctx.metrics.reconcile_errors.with_label_values(&[category]).inc();
    let attempt = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(name.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(attempt, rand::rng().random_range(0.75..1.25));
    tracing::warn!(policy = %name, error = %error, category, attempt, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The delay before retry `attempt` (1-based), scaled by `jitter`.
pub(super) fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << attempt.saturating_sub(1).min(9));
    base.min(Duration::from_secs(300)).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_with_jitter() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 1.0), Duration::from_secs(300));
        assert_eq!(backoff(2, 1.25), Duration::from_millis(2500));
    }

    #[test]
    fn event_notes_are_cut_in_bytes_at_a_character_boundary() {
        assert_eq!(cut_to_bytes("short", NOTE_LIMIT), "short");
        // 1,020 ASCII bytes then multi-byte characters: 1,024 characters are far more than 1 KiB.
        let note = format!("{}{}", "a".repeat(1020), "×…ä".repeat(100));
        let cut = cut_to_bytes(&note, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
        assert!(cut.ends_with('…') && cut.starts_with(&"a".repeat(1020)));
        for limit in 0..12 {
            let cut = cut_to_bytes("€€€€€", limit);
            assert!(cut.len() <= limit.max('…'.len_utf8()), "{limit}: {cut:?}");
        }
        assert_eq!(cut_to_bytes("€€€€€", 9), "€€…");
    }
}
