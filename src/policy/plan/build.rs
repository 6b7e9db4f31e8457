//! The steps of the plan, drafted in an order where every step comes after those it waits on.
//!
//! - A stopped cluster is started first (nothing can be upgraded while it is stopped).
//! - The control plane goes to the target: the oldest released minor that stays supported
//!   through the horizon (the newest released when none does), and at least the newest minor a
//!   pool runs (a kubelet must not be newer). One minor per step; where the policy says the
//!   incremental path is removed at end of support and a minor on the way is out of support
//!   now, one step upgrades the whole cluster directly (it may need a redeploy) (`versions`).
//! - Before each control-plane step, a pool whose oldest kubelet would fall more than
//!   `maxKubeletSkewMinors` behind moves to the control plane's current minor.
//! - Then each pool whose kubelets leave support within the horizon, are newer than the control
//!   plane or out of skew moves to the oldest released minor that is supported through the
//!   horizon, within the skew and not older than its newest node (else the control plane's).
//! - A pool upgrade lays down a new node image; a pool whose image leaves support within the
//!   horizon and has no upgrade gets an image refresh of its own.
//! - Nodes not Ready that leave support within the horizon are started (when the cluster runs).

use std::collections::BTreeMap;

use super::versions::{versions, Calendar, Pool};
use super::Input;
use crate::crd::v1alpha1::{PlanAction, Severity};
use crate::policy::group::{self, Grouped};
use crate::policy::ids::{RuleId, Subject};
use crate::policy::outcome::{Due, Reason};
use crate::policy::rules::{
    CLUSTER_NOT_UPGRADABLE, CLUSTER_STOPPED, KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW, NODE_IMAGE_OUTDATED,
    NODE_NOT_READY,
};
use crate::policy::signal::{Cause, Signal};
use crate::time::plus_days;
use crate::version::Minor;

/// A step before it is dated and worded.
#[derive(Debug, Clone)]
pub(super) struct Draft {
    pub action: PlanAction,
    pub subject: Subject,
    pub from: Option<Minor>,
    pub to: Option<Minor>,
    /// The findings it prevents (the earliest is the one the status names).
    pub reasons: Vec<Reason>,
    pub redeploy: bool,
    /// Earlier drafts this one waits on.
    pub after: Vec<usize>,
    /// What the wording needs besides.
    pub note: Note,
}

/// What the wording of a step needs besides the step.
#[derive(Debug, Clone, Default)]
pub(super) struct Note {
    /// A pool step also lays down a new node image (it ends these image reasons).
    pub image: bool,
    /// The pool's image age comes from node creation (refreshing means replacing the nodes).
    pub replace_nodes: bool,
    /// A pool moved ahead of this control-plane step (the minor, the skew allowed).
    pub ahead_of: Option<(Minor, u32)>,
    /// No released minor is supported through the horizon: the target is the newest.
    pub newest_only: bool,
}

/// Signals of nodes with the same rule, pool and cause (one finding), or one other signal.
struct Group<'a> {
    pool: Option<&'a str>,
    cause: Option<&'a Cause>,
    members: &'a [&'a Signal<'a>],
}

impl Group<'_> {
    /// The finding's subject, as `evaluate` names it.
    fn subject(&self) -> Subject {
        match (self.members.len(), self.pool) {
            (n, Some(pool)) if n > 1 => Subject::NodePool(pool.to_string()),
            _ => self.members[0].about.subject(),
        }
    }

    /// When the first member is (or became) Unsupported.
    fn unsupported(&self) -> Due {
        self.members.iter().map(|s| unsupported(s)).min().unwrap_or(Due::Never)
    }

    pub(super) fn reason(&self, rule: RuleId) -> Reason {
        Reason { rule, subject: self.subject(), at: self.unsupported() }
    }
}

fn unsupported(s: &Signal<'_>) -> Due {
    if s.base == Some(Severity::Unsupported) {
        return s.origin.map_or(Due::Already, Due::At);
    }
    s.steps.iter().find(|(_, sev)| *sev == Severity::Unsupported).map_or(Due::Never, |(at, _)| Due::At(*at))
}

/// The groups of the rules the plan reads, by rule.
fn groups<'a>(grouped: &'a [Grouped<'a, 'a>]) -> BTreeMap<RuleId, Vec<Group<'a>>> {
    let rules = [
        KUBELET_VERSION_END_OF_SUPPORT,
        KUBELET_VERSION_SKEW,
        NODE_IMAGE_OUTDATED,
        NODE_NOT_READY,
        CLUSTER_STOPPED,
        CLUSTER_NOT_UPGRADABLE,
    ];
    let mut out: BTreeMap<RuleId, Vec<Group<'a>>> = BTreeMap::new();
    for ((rule, key), members) in grouped.iter().filter(|((rule, _), _)| rules.contains(rule)) {
        let (pool, cause) = match key {
            group::Group::Pool(g) => (Some(&**g.pool), Some(&g.cause)),
            group::Group::One(_) => (None, None),
        };
        out.entry(*rule).or_default().push(Group { pool, cause, members });
    }
    out
}

/// Every step, each after those it waits on.
pub(super) fn drafts(input: &Input<'_>, cal: Option<&Calendar<'_>>) -> Vec<Draft> {
    let groups = groups(input.groups);
    let group_of = |rule: RuleId| groups.get(&rule).map(Vec::as_slice).unwrap_or_default();
    let horizon_end = plus_days(input.now, input.horizon_days);
    let within = |due: Due| due.by(horizon_end);
    let mut drafts: Vec<Draft> = Vec::new();

    // A stopped cluster starts first; it is a step when it leaves support within the horizon
    // or when any other step needs it running.
    let stopped: Vec<Reason> = [CLUSTER_STOPPED, CLUSTER_NOT_UPGRADABLE, NODE_NOT_READY]
        .iter()
        .flat_map(|r| group_of(*r).iter().map(|g| g.reason(*r)))
        .collect();
    let cluster_stopped = !group_of(CLUSTER_STOPPED).is_empty();
    if cluster_stopped {
        drafts.push(Draft {
            action: PlanAction::StartCluster,
            subject: Subject::Cluster,
            from: None,
            to: None,
            reasons: stopped.into_iter().filter(|r| r.rule != NODE_NOT_READY || within(r.at)).collect(),
            redeploy: false,
            after: Vec::new(),
            note: Note::default(),
        });
    }
    let start: Vec<usize> = if cluster_stopped { vec![0] } else { Vec::new() };

    let mut pools: BTreeMap<&str, Pool> = BTreeMap::new();
    for rule in [KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW] {
        for g in group_of(rule) {
            if let (Some(pool), Some(Cause::Minor(m))) = (g.pool, g.cause) {
                let p = pools.entry(pool).or_default();
                p.minors.entry(*m).or_default().push(g.reason(rule));
                for s in g.members {
                    p.has_node(&s.about);
                }
            }
        }
    }
    for g in group_of(NODE_IMAGE_OUTDATED) {
        let reason = g.reason(NODE_IMAGE_OUTDATED);
        if let (Some(pool), true) = (g.pool, within(reason.at)) {
            let p = pools.entry(pool).or_default();
            p.replace_nodes |= matches!(g.cause, Some(Cause::Rule));
            p.image.push(reason);
        }
    }

    if let (Some(upgrades), Some(cal)) = (input.upgrades, cal) {
        versions(upgrades, cal, &mut pools, &start, &mut drafts);
    }

    // Image refreshes of pools no step upgrades.
    for (name, pool) in &pools {
        if !pool.image.is_empty() {
            drafts.push(Draft {
                action: PlanAction::RefreshNodeImage,
                subject: Subject::NodePool(name.to_string()),
                from: None,
                to: None,
                reasons: pool.image.clone(),
                redeploy: false,
                after: start.clone(),
                note: Note { replace_nodes: pool.replace_nodes, ..Note::default() },
            });
        }
    }
    // Nodes to start, when the cluster runs (else starting the cluster starts them).
    if !cluster_stopped {
        for g in group_of(NODE_NOT_READY) {
            let reason = g.reason(NODE_NOT_READY);
            if within(reason.at) {
                drafts.push(Draft {
                    action: PlanAction::StartNodes,
                    subject: reason.subject.clone(),
                    from: None,
                    to: None,
                    reasons: vec![reason],
                    redeploy: false,
                    after: Vec::new(),
                    note: Note::default(),
                });
            }
        }
    }
    // Starting the cluster is a step of its own only when due within the horizon or needed.
    if cluster_stopped && drafts.len() == 1 && !drafts[0].reasons.iter().any(|r| within(r.at)) {
        drafts.clear();
    }
    drafts
}
