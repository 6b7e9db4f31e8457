//! What a plan step says: what to do, by when, and which findings it prevents. Dates are
//! absolute, and `now` is only compared with them (never subtracted), so the words change only
//! at those instants.

use super::build::Draft;
use super::Input;
use crate::crd::v1alpha1::PlanAction;
use crate::policy::ids::Subject;
use crate::policy::outcome::{Due, Reason, Step};
use crate::text::name;
use crate::time::when;

/// Reasons named in a message; the rest are counted.
const REASONS_SHOWN: usize = 3;

/// The step of `d`, due `by`; `waiting` is the step whose date set it, when not its own.
pub(super) fn step(d: &Draft, by: Due, waiting: Option<&Draft>, input: &Input<'_>) -> Step {
    let mut reasons = d.reasons.clone();
    reasons.sort_by_key(|r| r.at);
    let prevents = reasons.first().cloned().unwrap_or(Reason {
        rule: crate::policy::rules::KUBELET_VERSION_SKEW,
        subject: d.subject.clone(),
        at: Due::Never,
    });
    let mut m = lead(d);
    match by {
        Due::At(t) if t > input.now => m.push_str(&format!(" before {}", when(t))),
        _ => m.push_str(" now"),
    }
    m.push('.');
    if !reasons.is_empty() {
        let shown: Vec<String> = reasons.iter().take(REASONS_SHOWN).map(|r| reason(r, input)).collect();
        let more = reasons.len().saturating_sub(REASONS_SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        m.push_str(&format!(" It clears {}{more}.", shown.join(", ")));
    }
    if let (Some(w), true) = (waiting, by < prevents.at) {
        m.push_str(&format!(" Its date is that of {}, which waits on it.", short(w)));
    }
    m.push_str(&notes(d, input));
    Step {
        action: d.action,
        subject: d.subject.clone(),
        from: d.from,
        to: d.to,
        by,
        prevents,
        redeploy: d.redeploy,
        message: m,
    }
}

fn pool(s: &Subject) -> String {
    name(s.name())
}

/// What to do.
fn lead(d: &Draft) -> String {
    let (from, to) = (minor(d.from), minor(d.to));
    match d.action {
        PlanAction::StartCluster => "Start the cluster".into(),
        PlanAction::StartNodes => match &d.subject {
            Subject::NodePool(p) => {
                format!("Start, repair or replace the nodes of pool '{}' that are not Ready", name(p))
            }
            s => format!("Start, repair or replace node {}", name(s.name())),
        },
        PlanAction::UpgradeControlPlane => format!("Upgrade the control plane from {from} to {to}"),
        PlanAction::UpgradeCluster => {
            format!("Upgrade the cluster (control plane and every node pool) from {from} directly to {to}")
        }
        PlanAction::UpgradeNodePool if d.to < d.from => {
            format!("Replace the nodes of pool '{}' with nodes at {to}", pool(&d.subject))
        }
        PlanAction::UpgradeNodePool => format!("Upgrade node pool '{}' from {from} to {to}", pool(&d.subject)),
        PlanAction::RefreshNodeImage if d.note.replace_nodes => {
            format!("Replace the nodes of pool '{}' (roll the pool) to refresh their node image", pool(&d.subject))
        }
        PlanAction::RefreshNodeImage => format!("Upgrade the node image of pool '{}'", pool(&d.subject)),
    }
}

/// A step as another step's message names it.
fn short(d: &Draft) -> String {
    match d.action {
        PlanAction::UpgradeControlPlane => format!("the control-plane upgrade to {}", minor(d.to)),
        PlanAction::UpgradeCluster => format!("the cluster upgrade to {}", minor(d.to)),
        PlanAction::UpgradeNodePool => format!("the upgrade of node pool '{}' to {}", pool(&d.subject), minor(d.to)),
        PlanAction::RefreshNodeImage => format!("the node image refresh of pool '{}'", pool(&d.subject)),
        PlanAction::StartNodes => format!("starting {}", d.subject),
        PlanAction::StartCluster => "starting the cluster".into(),
    }
}

fn minor(m: Option<crate::version::Minor>) -> String {
    m.map(|m| m.to_string()).unwrap_or_default()
}

/// `KubeletVersionEndOfSupport on NodePool/user (Unsupported since 2026-06-30)`.
fn reason(r: &Reason, input: &Input<'_>) -> String {
    let state = match r.at {
        Due::At(t) if t <= input.now => format!(" (Unsupported since {})", when(t)),
        Due::At(t) => format!(" (Unsupported from {})", when(t)),
        Due::Already => " (Unsupported now)".into(),
        Due::Never => String::new(),
    };
    format!("{} on {}/{}{state}", r.rule, r.subject.kind(), name(r.subject.name()))
}

/// What else the step needs said.
fn notes(d: &Draft, input: &Input<'_>) -> String {
    let mut m = String::new();
    if let Some((next, skew)) = d.note.ahead_of {
        m.push_str(&format!(
            " The pool moves before the control plane goes to {next}: a kubelet may be at most {skew} minors behind \
             it."
        ));
    }
    match d.action {
        PlanAction::UpgradeNodePool | PlanAction::UpgradeCluster if d.note.image => {
            m.push_str(if d.note.replace_nodes {
                " The upgrade replaces the nodes, so their node image is new too."
            } else {
                " The upgrade lays down a new node image too."
            })
        }
        PlanAction::StartCluster => {
            m.push_str(" A stopped cluster cannot be upgraded: the steps after this one need it running.")
        }
        _ => {}
    }
    if d.redeploy {
        m.push_str(&format!(
            " The incremental upgrade path is gone ({} has left the update servers), so go straight to {}; an \
             unhealthy cluster may need a redeploy.",
            minor(d.from),
            minor(d.to)
        ));
    }
    if d.note.newest_only {
        m.push_str(&format!(
            " No released minor stays supported for the whole {}-day plan horizon: {} is the newest.",
            input.horizon_days,
            minor(d.to)
        ));
    }
    m
}
