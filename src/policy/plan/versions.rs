//! The control-plane and node-pool steps of the plan, and the image refreshes they carry.
//!
//! The control plane goes to its target one minor at a time; where the policy says the
//! incremental path is removed at end of support and a minor on the way is out of support now,
//! one step upgrades the whole cluster directly. Before each control-plane step, a pool whose
//! oldest kubelet would fall more than `maxKubeletSkewMinors` behind moves to the control
//! plane's current minor. Then every pool that needs it moves to its own target.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::build::{Draft, Note};
use crate::calendar::SupportCalendar;
use crate::crd::v1alpha1::PlanAction;
use crate::policy::ids::Subject;
use crate::policy::outcome::{Due, Reason};
use crate::policy::rules::{
    Upgrades, KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW, KUBERNETES_VERSION_END_OF_SUPPORT,
    KUBERNETES_VERSION_UNKNOWN,
};
use crate::policy::signal::About;
use crate::time::start_of_day;
use crate::version::Minor;

/// A pool as the plan moves it.
#[derive(Default)]
pub(super) struct Pool {
    /// Its kubelets' minors (the calendar's and those out of skew) with their reasons.
    pub minors: BTreeMap<Minor, Vec<Reason>>,
    /// Its image reasons within the horizon, until a step lays down a new image.
    pub image: Vec<Reason>,
    /// Its image age comes from node creation: a new image means new nodes.
    pub replace_nodes: bool,
    /// Its node with a kubelet the version rules read, while it has only one (a finding about
    /// one node names the node).
    only_node: Option<Subject>,
    /// It has more than one.
    many_nodes: bool,
    /// Its last step.
    last: Option<usize>,
}

impl Pool {
    fn oldest(&self) -> Option<Minor> {
        self.minors.keys().next().copied()
    }

    fn newest(&self) -> Option<Minor> {
        self.minors.keys().next_back().copied()
    }

    /// Every node of the pool now runs `minor`, which leaves support when the calendar says.
    fn moved_to(&mut self, name: &str, minor: Minor, cal: &Calendar<'_>) {
        let leaves = Reason { rule: KUBELET_VERSION_END_OF_SUPPORT, subject: self.subject(name), at: cal.end(minor) };
        self.minors = BTreeMap::from([(minor, vec![leaves])]);
    }

    /// A node with a kubelet the version rules read.
    pub fn has_node(&mut self, node: &About<'_>) {
        match &self.only_node {
            None if !self.many_nodes => self.only_node = Some(node.subject()),
            Some(only) if !node.is(only) => (self.only_node, self.many_nodes) = (None, true),
            _ => {}
        }
    }

    /// The subject of a finding about all its nodes: the node when it has one.
    fn subject(&self, name: &str) -> Subject {
        match &self.only_node {
            Some(node) => node.clone(),
            None => Subject::NodePool(name.to_string()),
        }
    }
}

/// The calendar read against now and the horizon, with the end of every minor it lists worked
/// out once.
pub(super) struct Calendar<'a> {
    pub calendar: &'a SupportCalendar,
    pub now: DateTime<Utc>,
    pub horizon_end: DateTime<Utc>,
    ends: BTreeMap<Minor, Due>,
}

impl<'a> Calendar<'a> {
    pub fn new(calendar: &'a SupportCalendar, now: DateTime<Utc>, horizon_end: DateTime<Utc>) -> Self {
        let ends =
            calendar.releases.iter().map(|r| (r.minor, calendar.end_of(r.minor).map_or(Due::Never, Due::At))).collect();
        Calendar { calendar, now, horizon_end, ends }
    }

    /// The instants the calendar is read at: its releases and its ends.
    pub fn instants(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let released = self.calendar.releases.iter().map(|r| start_of_day(r.released));
        released.chain(self.ends.values().filter_map(|e| e.instant()))
    }

    /// When `minor` leaves support: `Already` when older than the calendar, `Never` when the
    /// calendar gives no end.
    pub fn end(&self, minor: Minor) -> Due {
        match (self.ends.get(&minor), self.ends.keys().next()) {
            (Some(end), _) => *end,
            (None, Some(oldest)) if minor < *oldest => Due::Already,
            (None, _) => Due::Never,
        }
    }

    /// Supported through the horizon (or no end known).
    fn lasts(&self, minor: Minor) -> bool {
        self.end(minor) > Due::At(self.horizon_end)
    }

    /// Released minors (not planned, released by now) in `lo..=hi`, oldest first.
    fn released(&self, lo: Minor, hi: Option<Minor>) -> Vec<Minor> {
        self.calendar
            .releases
            .iter()
            .filter(|r| !r.planned && start_of_day(r.released) <= self.now)
            .map(|r| r.minor)
            .filter(|m| *m >= lo && hi.is_none_or(|h| *m <= h))
            .collect()
    }

    /// The oldest released minor in `lo..=hi` supported through the horizon, else the newest
    /// released one (and whether it came to that).
    fn target(&self, lo: Minor, hi: Option<Minor>) -> Option<(Minor, bool)> {
        let released = self.released(lo, hi);
        match released.iter().find(|m| self.lasts(**m)) {
            Some(m) => Some((*m, false)),
            None => released.last().map(|m| (*m, true)),
        }
    }
}

fn next_minor(m: Minor) -> Minor {
    Minor { major: m.major, minor: m.minor.saturating_add(1) }
}

/// The control-plane and node-pool steps.
pub(super) fn versions(
    u: &Upgrades,
    cal: &Calendar<'_>,
    pools: &mut BTreeMap<&str, Pool>,
    start: &[usize],
    drafts: &mut Vec<Draft>,
) {
    let mut steps = Steps { cal, skew: u.max_kubelet_skew_minors, start, drafts };
    let mut cp = u.control_plane;
    let mut reached = BTreeMap::new();
    if let Some(c) = cp {
        match steps.control_plane(u, c, pools) {
            Path::Jumped => return,
            Path::Stays => {}
            Path::Steps(target, steps_to) => (cp, reached) = (Some(target), steps_to),
        }
    }
    for (name, pool) in pools.iter_mut() {
        steps.settle(name, pool, cp, &reached);
    }
}

/// Where the control plane goes.
enum Path {
    /// Nowhere: its minor lasts (or there is nothing better).
    Stays,
    /// To the target, with the step that reaches each minor.
    Steps(Minor, BTreeMap<Minor, usize>),
    /// With every pool, in one step.
    Jumped,
}

/// What the version steps are drafted with.
struct Steps<'a, 'c> {
    cal: &'a Calendar<'c>,
    skew: u32,
    start: &'a [usize],
    drafts: &'a mut Vec<Draft>,
}

impl Steps<'_, '_> {
    fn push(&mut self, draft: Draft) -> usize {
        self.drafts.push(draft);
        self.drafts.len() - 1
    }

    /// The control plane from `c` to its target, one minor at a time (pools that would fall
    /// out of skew moving first), or in one jump where the path is removed.
    fn control_plane(&mut self, u: &Upgrades, c: Minor, pools: &mut BTreeMap<&str, Pool>) -> Path {
        let cal = self.cal;
        // A kubelet newer than the control plane: the control plane goes at least there, when
        // that minor is released.
        let newer =
            pools.values().filter_map(Pool::newest).filter(|m| *m > c && !cal.released(*m, Some(*m)).is_empty()).max();
        let floor = newer.unwrap_or(c).max(c);
        if cal.lasts(c) && floor == c {
            return Path::Stays;
        }
        let Some((target, newest_only)) = cal.target(floor, None).filter(|(t, _)| *t > c) else { return Path::Stays };
        let path: Vec<Minor> =
            std::iter::successors(Some(c), |m| Some(next_minor(*m))).take_while(|m| *m < target).collect();
        if u.upgrade_path_removed && path.iter().any(|m| cal.end(*m).by(cal.now)) {
            self.jump(c, target, newest_only, pools);
            return Path::Jumped;
        }
        // Kubelets newer than the control plane are in skew once it reaches the target.
        let newer_kubelets: Vec<Reason> = pools
            .values()
            .flat_map(|p| p.minors.iter().filter(|(m, _)| **m > c).flat_map(|(_, r)| r.iter()))
            .filter(|r| r.rule == KUBELET_VERSION_SKEW)
            .cloned()
            .collect();
        let mut reached = BTreeMap::new();
        let mut prev = self.start.to_vec();
        let mut prev_due = Due::Already;
        for from in path {
            let to = next_minor(from);
            let mut after = prev.clone();
            for (name, pool) in pools.iter_mut() {
                let oldest = pool.oldest().filter(|o| *o < from && o.minors_behind(to) > i64::from(self.skew));
                if let Some(oldest) = oldest {
                    after.push(self.move_ahead(name, pool, oldest, from, to, &prev));
                }
            }
            let own = cal.end(from);
            let mut reasons = vec![if own == Due::Never && from != c {
                // A minor the calendar does not know: leave it right after reaching it.
                Reason { rule: KUBERNETES_VERSION_UNKNOWN, subject: Subject::ControlPlane, at: prev_due }
            } else {
                Reason { rule: KUBERNETES_VERSION_END_OF_SUPPORT, subject: Subject::ControlPlane, at: own }
            }];
            if to == target {
                reasons.extend(newer_kubelets.iter().cloned());
            }
            prev_due = reasons[0].at;
            let i = self.push(Draft {
                action: PlanAction::UpgradeControlPlane,
                subject: Subject::ControlPlane,
                from: Some(from),
                to: Some(to),
                reasons,
                redeploy: false,
                after,
                note: Note { newest_only: newest_only && to == target, ..Note::default() },
            });
            prev = vec![i];
            reached.insert(to, i);
        }
        Path::Steps(target, reached)
    }

    /// A pool whose oldest kubelet would fall out of skew when the control plane goes to `to`
    /// moves first, to the control plane's minor `from` (as far as it can go).
    fn move_ahead(
        &mut self,
        name: &str,
        pool: &mut Pool,
        oldest: Minor,
        from: Minor,
        to: Minor,
        prev: &[usize],
    ) -> usize {
        let mut reasons = vec![Reason { rule: KUBELET_VERSION_SKEW, subject: pool.subject(name), at: Due::Never }];
        let moved = std::mem::take(&mut pool.minors);
        reasons.extend(moved.into_values().flatten().filter(|r| r.at.by(self.cal.horizon_end)));
        pool.moved_to(name, from, self.cal);
        let note = Note { ahead_of: Some((to, self.skew)), ..image_note(pool, &mut reasons) };
        let i = self.push(Draft {
            action: PlanAction::UpgradeNodePool,
            subject: Subject::NodePool(name.to_string()),
            from: Some(oldest),
            to: Some(from),
            reasons,
            redeploy: false,
            after: prev.iter().copied().chain(pool.last).collect(),
            note,
        });
        pool.last = Some(i);
        i
    }

    /// A pool whose kubelets leave support within the horizon, or are newer than the control
    /// plane `cp` or too far behind it, moves to the oldest released minor that lasts, within
    /// the skew, not older than its newest node and not newer than the control plane (else the
    /// control plane's minor). It waits for the control-plane step that reaches that minor.
    fn settle(&mut self, name: &str, pool: &mut Pool, cp: Option<Minor>, reached: &BTreeMap<Minor, usize>) {
        let cal = self.cal;
        let (Some(oldest), Some(newest)) = (pool.oldest(), pool.newest()) else { return };
        let leaves = pool.minors.keys().any(|m| !cal.lasts(*m));
        let out_of_skew = cp.is_some_and(|c| newest > c || oldest.minors_behind(c) > i64::from(self.skew));
        if !leaves && !out_of_skew {
            return;
        }
        let mut lo = oldest;
        if let Some(c) = cp {
            lo = lo.max(Minor { major: c.major, minor: c.minor.saturating_sub(self.skew) });
            if newest <= c {
                lo = lo.max(newest);
            }
        }
        let to = match (cal.target(lo, cp), cp) {
            (Some((m, _)), _) if cal.lasts(m) => m,
            (_, Some(c)) => c,
            (_, None) => match cal.target(lo, None) {
                Some((m, _)) => m,
                None => return,
            },
        };
        if pool.minors.len() == 1 && oldest == to {
            return;
        }
        let mut reasons: Vec<Reason> = std::mem::take(&mut pool.minors).into_values().flatten().collect();
        reasons.retain(|r| r.at.by(cal.horizon_end));
        if reasons.is_empty() {
            // Out of skew with the control plane the plan leaves it at.
            reasons.push(Reason { rule: KUBELET_VERSION_SKEW, subject: pool.subject(name), at: Due::Never });
        }
        pool.moved_to(name, to, cal);
        let note = image_note(pool, &mut reasons);
        let cp_step = reached.range(to..).next().map(|(_, i)| *i);
        let i = self.push(Draft {
            action: PlanAction::UpgradeNodePool,
            subject: Subject::NodePool(name.to_string()),
            from: Some(oldest),
            to: Some(to),
            reasons,
            redeploy: false,
            after: self.start.iter().copied().chain(cp_step).chain(pool.last).collect(),
            note,
        });
        pool.last = Some(i);
    }

    /// The incremental path is gone: the control plane and every pool go to `target` at once.
    fn jump(&mut self, c: Minor, target: Minor, newest_only: bool, pools: &mut BTreeMap<&str, Pool>) {
        let cal = self.cal;
        let mut reasons =
            vec![Reason { rule: KUBERNETES_VERSION_END_OF_SUPPORT, subject: Subject::ControlPlane, at: cal.end(c) }];
        let (mut image, mut replace_nodes) = (false, false);
        for (name, pool) in pools.iter_mut() {
            if pool.minors.is_empty() || (pool.minors.len() == 1 && pool.oldest() == Some(target)) {
                continue;
            }
            let moved = std::mem::take(&mut pool.minors);
            reasons.extend(moved.into_values().flatten().filter(|r| r.at.by(cal.horizon_end)));
            pool.moved_to(name, target, cal);
            image |= !pool.image.is_empty();
            replace_nodes |= pool.replace_nodes;
            reasons.append(&mut pool.image);
        }
        self.push(Draft {
            action: PlanAction::UpgradeCluster,
            subject: Subject::Cluster,
            from: Some(c),
            to: Some(target),
            reasons,
            redeploy: true,
            after: self.start.to_vec(),
            note: Note { image, replace_nodes, newest_only, ..Note::default() },
        });
    }
}

/// A pool step lays down a new node image: it takes over the pool's image reasons.
fn image_note(pool: &mut Pool, reasons: &mut Vec<Reason>) -> Note {
    let image = !pool.image.is_empty();
    reasons.append(&mut pool.image);
    Note { image, replace_nodes: pool.replace_nodes, ..Note::default() }
}
