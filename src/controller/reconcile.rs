//! One reconcile: gather from the caches, evaluate, write what changed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use rand::Rng;

use super::{requeue_at, Context, Error};
use crate::crd::v1alpha1::{SupportPolicy, SupportReport, SupportStatus, Verdict};
use crate::k8s::status;
use crate::policy::{self, evaluate, report, Evaluation, Policy, PolicyError};

/// Evaluates one policy and writes its status if it changed.
#[tracing::instrument(skip_all, fields(policy = %obj.name_any()))]
pub(super) async fn reconcile(obj: Arc<DeserializeGuard<SupportPolicy>>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Nothing is evaluated from half-filled caches.
    if ctx.ready.clone().wait_for(|ready| *ready).await.is_err() {
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.reconcile_duration.start_timer();
    ctx.prune_written();
    ctx.metrics.prune();
    let name = obj.name_any();
    let now = ctx.clock.now();
    let generation = obj.meta().generation;

    // A policy that cannot be read or resolved is reported as invalid; nothing else is evaluated.
    let evaluation = match &obj.0 {
        Err(invalid) => {
            ctx.metrics.skipped_objects.with_label_values(&["SupportPolicy"]).inc();
            evaluate::invalid(vec![PolicyError {
                field: "spec".into(),
                reason: format!("cannot be read: {}", invalid.error),
            }])
        }
        Ok(p) => match Policy::resolve(&p.spec) {
            Ok(resolved) => {
                let leases: Vec<(String, String)> =
                    resolved.leases().into_iter().map(|l| (l.namespace, l.name)).collect();
                policy::evaluate_resolved(&resolved, &ctx.snapshot(&leases), now)
            }
            Err(errors) => evaluate::invalid(errors),
        },
    };

    if ctx.leadership.is_leader() {
        write(&obj, &name, generation, &evaluation, &ctx, now).await?;
        ctx.metrics.record(&name, &evaluation);
    }
    ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&name);

    if evaluation.verdict == Verdict::Unknown {
        // Nothing to retry: the next change of the policy triggers a reconcile.
        return Ok(Action::await_change());
    }
    Ok(requeue_at(evaluation.next_change, now, ctx.resync))
}

/// Writes the SupportStatus of `name`: the object when missing, the status when it changed,
/// an Event when the verdict changed.
async fn write(
    obj: &DeserializeGuard<SupportPolicy>,
    name: &str,
    generation: Option<i64>,
    evaluation: &Evaluation,
    ctx: &Context,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    let api: Api<SupportStatus> = Api::all(ctx.client.clone());
    let cached = ctx.statuses.get(&ObjectRef::new(name));
    let cached_ok = cached.as_ref().and_then(|c| c.0.as_ref().ok());
    let owner = owner_reference(obj);
    let owned = cached_ok.is_some_and(|c| {
        c.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| Some(&r.uid) == owner.as_ref().map(|o| &o.uid)))
    });
    if !owned {
        let policy = SupportPolicy {
            metadata: obj.meta().clone(),
            spec: obj.0.as_ref().map(|p| p.spec.clone()).unwrap_or_default(),
        };
        status::apply_object(&api, &policy).await?;
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
    let next = report::report(evaluation, base, generation, now);
    let unchanged = previous.as_ref() == Some(&next) || last_written.as_ref() == Some(&next);
    if unchanged {
        return Ok(());
    }
    let rv = status::apply_status(&api, name, &next).await?;
    ctx.metrics.status_writes.inc();
    ctx.written.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), (rv, next.clone()));

    let before = base.and_then(|b| b.verdict);
    if before != next.verdict {
        publish_event(obj, ctx, before, &next).await;
    }
    Ok(())
}

fn owner_reference(obj: &DeserializeGuard<SupportPolicy>) -> Option<OwnerReference> {
    let meta = obj.meta();
    Some(OwnerReference {
        api_version: SupportPolicy::api_version(&()).into_owned(),
        kind: SupportPolicy::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
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
        note: Some(note.chars().take(1024).collect()),
        action: "Evaluate".into(),
        secondary: None,
    };
    let reference = obj.object_ref(&());
    if let Err(e) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(error = %e, "cannot record the verdict event");
        ctx.metrics.reconcile_errors.with_label_values(&["api"]).inc();
    }
}

/// API errors: exponential backoff with jitter per policy (1 s doubling to 5 min, ±25 %).
pub(super) fn error_policy(obj: Arc<DeserializeGuard<SupportPolicy>>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = obj.name_any();
    ctx.metrics.reconcile_errors.with_label_values(&[error.category()]).inc();
    let attempt = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(name.clone()).or_default();
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(attempt, rand::rng().random_range(0.75..1.25));
    tracing::warn!(policy = %name, error = %error, category = error.category(), attempt, retry_in = ?delay, "reconcile failed");
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
}
