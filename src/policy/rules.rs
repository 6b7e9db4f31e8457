//! The rules: each reads the snapshot and emits signals (a subject's severity as a step
//! function of time), and says in words what a finding means.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::image::ImageDateError;
use super::model::{ImageRule, ImageSource, Policy, StoppedRule, VersionRule};
use super::version::{parse_version, truncate, Minor};
use super::RuleId;
use crate::crd::v1alpha1::Severity;
use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
use crate::time::{format, minus_days, plus_days, start_of_day};

/// Labels that name a node's pool, in the order they are tried.
pub const POOL_LABELS: [&str; 5] = [
    "kubernetes.azure.com/agentpool",
    "agentpool",
    "msft.microsoft/nodepool-name",
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
];

/// The pool a node belongs to (`default` when no pool label is set).
pub fn pool_of(node: &NodeInfo) -> &str {
    POOL_LABELS.iter().find_map(|k| node.labels.get(*k)).map(String::as_str).unwrap_or("default")
}

/// One subject's severity over time: `base` before the first step, then each step's severity
/// from its instant on. Steps rise: every rule only gets worse as time passes.
#[derive(Debug, Clone)]
pub(crate) struct Signal {
    pub rule: RuleId,
    /// `Kind/name` of the one thing the signal is about.
    pub subject: String,
    /// Nodes with the same (pool, cause) merge into one finding about the pool.
    pub group: Option<(String, String)>,
    pub base: Option<Severity>,
    pub steps: Vec<(DateTime<Utc>, Severity)>,
    /// When the underlying fact began (the finding's `since` for a base severity).
    pub origin: Option<DateTime<Utc>>,
    pub fact: Fact,
}

impl Signal {
    /// Severity at `t`.
    pub fn at(&self, t: DateTime<Utc>) -> Option<Severity> {
        self.steps.iter().filter(|(at, _)| *at <= t).map(|(_, s)| *s).max().max(self.base)
    }
}

/// What a signal is about, for its message.
#[derive(Debug, Clone)]
pub(crate) enum Fact {
    Version {
        component: Component,
        version: String,
        track: VersionTrack,
    },
    VersionUnparsed {
        component: Component,
        reason: String,
    },
    Skew {
        kubelet: Minor,
        control_plane: Minor,
        max: u32,
    },
    Image {
        image: String,
        date: DateTime<Utc>,
        from_creation: bool,
        warn_at: Option<DateTime<Utc>>,
        unsupported_at: Option<DateTime<Utc>>,
    },
    ImageUnknown {
        reason: String,
    },
    NotReady {
        since: Option<DateTime<Utc>>,
        shutdown: bool,
        unsupported_at: Option<DateTime<Utc>>,
    },
    Problem {
        field: String,
        reason: String,
    },
    ClusterStopped {
        since: DateTime<Utc>,
        nodes: usize,
        unsupported_at: Option<DateTime<Utc>>,
    },
    ClusterNotUpgradable {
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    Heartbeat {
        namespace: String,
        lease: String,
        renewed: Option<DateTime<Utc>>,
        problem: Option<String>,
        unsupported_at: Option<DateTime<Utc>>,
    },
    Attestation {
        name: String,
        description: Option<String>,
        since: DateTime<Utc>,
        unsupported_at: DateTime<Utc>,
    },
    Alpha {
        group_version: String,
    },
}

/// Which component a version belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    ControlPlane,
    Kubelet,
}

impl Component {
    /// The `component` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::ControlPlane => "control-plane",
            Component::Kubelet => "kubelet",
        }
    }
}

/// How a minor stands in the calendar.
#[derive(Debug, Clone)]
pub(crate) enum VersionTrack {
    /// In the calendar; support ends at `end` (if known) for `reason`.
    Known {
        minor: Minor,
        end: Option<DateTime<Utc>>,
        reason: EndReason,
        upgrade_path_removed: bool,
        oldest_supported_at_end: Option<Minor>,
    },
    /// Newer than every entry, or in a gap.
    Unknown { minor: Minor, newest: Option<Minor> },
    /// Older than every entry.
    TooOld { minor: Minor, oldest: Minor, newest: Option<Minor> },
}

/// A minor's signal: its rule, base severity, steps and the fact for messages.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    pub rule: RuleId,
    pub base: Option<Severity>,
    pub steps: Vec<(DateTime<Utc>, Severity)>,
    pub fact: VersionTrack,
}

/// Why a minor's support ends when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndReason {
    Calendar,
    Lts,
    Window(u32),
    /// It falls out of the N newest released minors when these are released.
    Displaced {
        n: u32,
        by: Vec<Minor>,
    },
}

impl VersionRule {
    /// The end of support of a calendar entry, and why.
    fn entry_end(&self, idx: usize) -> (Option<DateTime<Utc>>, EndReason) {
        let r = &self.calendar[idx];
        let (mut end, mut reason) = match (self.long_term_support, r.lts_end_of_support, r.end_of_support) {
            (true, Some(lts), _) => (Some(start_of_day(lts)), EndReason::Lts),
            (_, _, Some(eos)) => (Some(start_of_day(eos)), EndReason::Calendar),
            (_, _, None) => match self.support_window_days {
                Some(days) => (Some(plus_days(start_of_day(r.released), days)), EndReason::Window(days)),
                None => (None, EndReason::Calendar),
            },
        };
        let lts_applies = self.long_term_support && r.lts_end_of_support.is_some();
        if let (Some(n), false) = (self.supported_minors, lts_applies) {
            let mut newer: Vec<_> = self
                .calendar
                .iter()
                .filter(|o| o.minor > r.minor && !o.planned)
                .map(|o| (o.released, o.minor))
                .collect();
            newer.sort();
            if let Some((released, _)) = newer.get(n as usize - 1) {
                let displaced = start_of_day(*released);
                if end.is_none_or(|e| displaced < e) {
                    end = Some(displaced);
                    reason = EndReason::Displaced { n, by: newer[..n as usize].iter().map(|(_, m)| *m).collect() };
                }
            }
        }
        (end, reason)
    }

    /// The oldest minor still supported at `t` (to tell people what to upgrade to).
    fn oldest_supported(&self, t: DateTime<Utc>) -> Option<Minor> {
        (0..self.calendar.len())
            .filter(|&i| start_of_day(self.calendar[i].released) <= t)
            .find(|&i| self.entry_end(i).0.is_none_or(|end| end > t))
            .map(|i| self.calendar[i].minor)
    }

    /// How `minor` stands, with its steps.
    pub(crate) fn track(&self, minor: Minor) -> Track {
        let Some(idx) = self.calendar.iter().position(|r| r.minor == minor) else {
            let oldest = self.calendar.first().map(|r| r.minor);
            return match oldest {
                Some(oldest) if minor < oldest => Track {
                    rule: RuleId::KubernetesVersionEndOfSupport,
                    base: Some(Severity::Unsupported),
                    steps: vec![],
                    fact: VersionTrack::TooOld { minor, oldest, newest: self.calendar.last().map(|r| r.minor) },
                },
                _ => Track {
                    rule: RuleId::KubernetesVersionUnknown,
                    base: Some(Severity::Info),
                    steps: vec![],
                    fact: VersionTrack::Unknown { minor, newest: self.calendar.last().map(|r| r.minor) },
                },
            };
        };
        let (end, reason) = self.entry_end(idx);
        let mut steps = Vec::new();
        if let Some(end) = end {
            let w = minus_days(end, self.warn_before_days);
            if w < end {
                steps.push((w, Severity::Warning));
            }
            steps.push((end, Severity::Unsupported));
        }
        let track = VersionTrack::Known {
            minor,
            end,
            reason,
            upgrade_path_removed: self.upgrade_path_removed,
            oldest_supported_at_end: end.and_then(|e| self.oldest_supported(e)),
        };
        Track { rule: RuleId::KubernetesVersionEndOfSupport, base: None, steps, fact: track }
    }
}

/// Emits every signal of a resolved policy on the nodes in scope.
pub(crate) fn signals(
    policy: &Policy,
    snapshot: &ClusterSnapshot,
    nodes: &[&NodeInfo],
    images_read: Option<&[ImageRead]>,
) -> Vec<Signal> {
    let mut out = Vec::new();
    let cp_minor = policy.version.as_ref().and_then(|v| control_plane(v, snapshot, &mut out));
    if let Some(rule) = &policy.version {
        kubelets(rule, cp_minor, nodes, &mut out);
    }
    if let (Some(rule), Some(read)) = (&policy.image, images_read) {
        images(rule, nodes, read, &mut out);
    }
    if let Some(rule) = &policy.stopped {
        stopped(rule, nodes, &mut out);
    }
    for node in nodes {
        for p in &node.problems {
            out.push(Signal {
                rule: p.rule,
                subject: format!("Node/{}", node.name),
                group: Some((pool_of(node).to_string(), format!("problem:{}", p.field))),
                base: Some(Severity::Info),
                steps: vec![],
                origin: None,
                fact: Fact::Problem { field: p.field.clone(), reason: p.reason.clone() },
            });
        }
    }
    heartbeats(policy, snapshot, &mut out);
    for a in &policy.attestations {
        let unsupported_at = plus_days(a.since, a.unsupported_after_days);
        let mut steps = vec![(unsupported_at, Severity::Unsupported)];
        if a.since < unsupported_at {
            steps.insert(0, (a.since, Severity::Warning));
        }
        out.push(Signal {
            rule: RuleId::AttestationExpired,
            subject: format!("Attestation/{}", a.name),
            group: None,
            base: None,
            steps,
            origin: Some(a.since),
            fact: Fact::Attestation {
                name: a.name.clone(),
                description: a.description.clone(),
                since: a.since,
                unsupported_at,
            },
        });
    }
    if policy.forbid_alpha {
        for gv in snapshot.api_versions.iter().flatten().filter(|gv| is_builtin_alpha(gv)) {
            out.push(Signal {
                rule: RuleId::AlphaApiServed,
                subject: format!("APIVersion/{gv}"),
                group: None,
                base: Some(Severity::Unsupported),
                steps: vec![],
                origin: None,
                fact: Fact::Alpha { group_version: gv.clone() },
            });
        }
    }
    out
}

/// A built-in API group (core, `*.k8s.io`, or one of the historic unsuffixed groups) served at
/// an alpha version.
pub fn is_builtin_alpha(group_version: &str) -> bool {
    let (group, version) = group_version.rsplit_once('/').unwrap_or(("", group_version));
    let builtin = group.is_empty()
        || group.ends_with(".k8s.io")
        || ["apps", "batch", "autoscaling", "policy", "extensions"].contains(&group);
    let alpha = version.strip_prefix('v').and_then(|v| v.split_once("alpha")).is_some_and(|(major, n)| {
        !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()) && n.bytes().all(|b| b.is_ascii_digit())
    });
    builtin && alpha
}

fn control_plane(rule: &VersionRule, snapshot: &ClusterSnapshot, out: &mut Vec<Signal>) -> Option<Minor> {
    let subject = "ControlPlane/kube-apiserver".to_string();
    let unparsed = |reason: String| Signal {
        rule: RuleId::KubernetesVersionUnknown,
        subject: subject.clone(),
        group: None,
        base: Some(Severity::Info),
        steps: vec![],
        origin: None,
        fact: Fact::VersionUnparsed { component: Component::ControlPlane, reason },
    };
    let Some(version) = &snapshot.server_version else {
        out.push(unparsed(
            "the control-plane version is not known: run against the cluster or pass --server-version".into(),
        ));
        return None;
    };
    match parse_version(version) {
        Err(e) => {
            out.push(unparsed(e.to_string()));
            None
        }
        Ok(minor) => {
            let Track { rule: rule_id, base, steps, fact: track } = rule.track(minor);
            out.push(Signal {
                rule: rule_id,
                subject,
                group: None,
                base,
                steps,
                origin: None,
                fact: Fact::Version { component: Component::ControlPlane, version: version.clone(), track },
            });
            Some(minor)
        }
    }
}

fn kubelets(rule: &VersionRule, cp: Option<Minor>, nodes: &[&NodeInfo], out: &mut Vec<Signal>) {
    // Many nodes share a version: look each up once.
    let mut tracks: HashMap<Minor, Track> = HashMap::new();
    for node in nodes {
        let pool = pool_of(node).to_string();
        let subject = format!("Node/{}", node.name);
        let Some(version) = &node.kubelet_version else {
            if node.problems.iter().any(|p| p.field == "status.nodeInfo.kubeletVersion") {
                continue; // already reported as a problem
            }
            out.push(Signal {
                rule: RuleId::KubernetesVersionUnknown,
                subject,
                group: Some((pool, "kubelet:missing".into())),
                base: Some(Severity::Info),
                steps: vec![],
                origin: None,
                fact: Fact::VersionUnparsed {
                    component: Component::Kubelet,
                    reason: "the node reports no kubelet version".into(),
                },
            });
            continue;
        };
        let minor = match parse_version(version) {
            Ok(m) => m,
            Err(e) => {
                out.push(Signal {
                    rule: RuleId::KubernetesVersionUnknown,
                    subject,
                    group: Some((pool, format!("kubelet:{version}"))),
                    base: Some(Severity::Info),
                    steps: vec![],
                    origin: None,
                    fact: Fact::VersionUnparsed { component: Component::Kubelet, reason: e.to_string() },
                });
                continue;
            }
        };
        let Track { rule: rule_id, base, steps, fact: track } =
            tracks.entry(minor).or_insert_with(|| rule.track(minor)).clone();
        let rule_id =
            if rule_id == RuleId::KubernetesVersionEndOfSupport { RuleId::KubeletVersionEndOfSupport } else { rule_id };
        out.push(Signal {
            rule: rule_id,
            subject: subject.clone(),
            group: Some((pool.clone(), format!("kubelet:{minor}"))),
            base,
            steps,
            origin: None,
            fact: Fact::Version { component: Component::Kubelet, version: version.clone(), track },
        });
        if let Some(cp) = cp {
            let behind = minor.minors_behind(cp);
            if behind < 0 || behind > i64::from(rule.max_kubelet_skew_minors) {
                out.push(Signal {
                    rule: RuleId::KubeletVersionSkew,
                    subject,
                    group: Some((pool, format!("skew:{minor}"))),
                    base: Some(Severity::Unsupported),
                    steps: vec![],
                    origin: None,
                    fact: Fact::Skew { kubelet: minor, control_plane: cp, max: rule.max_kubelet_skew_minors },
                });
            }
        }
    }
}

/// A node's image version and its release instant, or why there is none.
pub(crate) type ImageRead = Result<(String, DateTime<Utc>), String>;

/// Reads the image of every node, parsing each distinct version string once (a pool's nodes
/// share one).
pub(crate) fn read_images(rule: &ImageRule, nodes: &[&NodeInfo]) -> Vec<ImageRead> {
    let mut parsed: HashMap<&str, ImageRead> = HashMap::new();
    nodes
        .iter()
        .map(|node| {
            let (kind, key) = match &rule.source {
                ImageSource::NodeCreation => {
                    return node
                        .created
                        .map(|c| ("created".to_string(), c))
                        .ok_or_else(|| "the node has no creationTimestamp".to_string());
                }
                ImageSource::Label(key) => ("label", key),
                ImageSource::Annotation(key) => ("annotation", key),
            };
            let map = if kind == "label" { &node.labels } else { &node.annotations };
            let value = map.get(key).ok_or_else(|| format!("the node has no {kind} {key}"))?;
            parsed
                .entry(value.as_str())
                .or_insert_with(|| match rule.parser.parse(value) {
                    Ok(date) => Ok((value.clone(), start_of_day(date))),
                    Err(ImageDateError::NoMatch(v)) => Err(format!("no date pattern matches its image version '{v}'")),
                    Err(e) => Err(e.to_string()),
                })
                .clone()
        })
        .collect()
}

fn images(rule: &ImageRule, nodes: &[&NodeInfo], read: &[ImageRead], out: &mut Vec<Signal>) {
    for (node, result) in nodes.iter().zip(read) {
        let pool = pool_of(node).to_string();
        let subject = format!("Node/{}", node.name);
        match result.clone() {
            Ok((image, date)) => {
                let from_creation = rule.source == ImageSource::NodeCreation;
                let warn_at = rule.warn_after_days.map(|d| plus_days(date, d));
                let unsupported_at = rule.unsupported_after_days.map(|d| plus_days(date, d));
                let steps = escalation(warn_at, unsupported_at);
                let cause = if from_creation { "created".to_string() } else { image.clone() };
                out.push(Signal {
                    rule: RuleId::NodeImageOutdated,
                    subject,
                    group: Some((pool, cause)),
                    base: None,
                    steps,
                    origin: Some(date),
                    fact: Fact::Image { image, date, from_creation, warn_at, unsupported_at },
                });
            }
            Err(reason) => {
                if node.problems.iter().any(|p| p.rule == RuleId::NodeImageUnknown) {
                    continue; // unreadable labels are already reported as a problem
                }
                out.push(Signal {
                    rule: RuleId::NodeImageUnknown,
                    subject,
                    group: Some((pool, reason.clone())),
                    base: Some(Severity::Info),
                    steps: vec![],
                    origin: None,
                    fact: Fact::ImageUnknown { reason },
                });
            }
        }
    }
}

fn stopped(rule: &StoppedRule, nodes: &[&NodeInfo], out: &mut Vec<Signal>) {
    let mut latest: Option<DateTime<Utc>> = None;
    let mut any_ready = false;
    for node in nodes {
        let since = match node.readiness {
            Readiness::Ready => {
                any_ready = true;
                continue;
            }
            Readiness::NotReady { since } => since,
            Readiness::Unknown => None,
        };
        latest = latest.max(since);
        let warn_at = since.and_then(|s| rule.warn_after_days.map(|d| plus_days(s, d)));
        let unsupported_at = since.and_then(|s| rule.unsupported_after_days.map(|d| plus_days(s, d)));
        // Info from the instant it stopped being Ready (from the start when that is unknown).
        let mut steps: Vec<_> = since.map(|s| (s, Severity::Info)).into_iter().collect();
        steps.extend(escalation(warn_at, unsupported_at));
        out.push(Signal {
            rule: RuleId::NodeNotReady,
            subject: format!("Node/{}", node.name),
            group: Some((pool_of(node).to_string(), String::new())),
            base: since.is_none().then_some(Severity::Info),
            steps,
            origin: since,
            fact: Fact::NotReady { since, shutdown: node.shutdown, unsupported_at },
        });
    }
    if nodes.is_empty() || any_ready {
        return;
    }
    let Some(since) = latest else { return };
    let unsupported_at = rule.cluster_unsupported_after_days.map(|d| plus_days(since, d));
    let mut steps = vec![];
    if unsupported_at != Some(since) {
        steps.push((since, Severity::Warning));
    }
    if let Some(u) = unsupported_at {
        steps.push((u, Severity::Unsupported));
    }
    out.push(Signal {
        rule: RuleId::ClusterStopped,
        subject: "Cluster/cluster".into(),
        group: None,
        base: None,
        steps,
        origin: Some(since),
        fact: Fact::ClusterStopped { since, nodes: nodes.len(), unsupported_at },
    });
    if let Some(days) = rule.cluster_not_upgradable_after_days {
        let at = plus_days(since, days);
        let mut steps = vec![];
        if since < at {
            steps.push((since, Severity::Warning));
        }
        steps.push((at, Severity::Unsupported));
        out.push(Signal {
            rule: RuleId::ClusterNotUpgradable,
            subject: "Cluster/cluster".into(),
            group: None,
            base: None,
            steps,
            origin: Some(since),
            fact: Fact::ClusterNotUpgradable { since, at },
        });
    }
}

fn heartbeats(policy: &Policy, snapshot: &ClusterSnapshot, out: &mut Vec<Signal>) {
    for h in &policy.heartbeats {
        let lease = snapshot.leases.get(&(h.namespace.clone(), h.lease.clone()));
        let renewed = lease.and_then(|l| l.renewed);
        let problem = match lease {
            None => Some("the Lease does not exist".to_string()),
            Some(l) if l.renewed.is_none() => {
                Some(l.problem.clone().unwrap_or_else(|| "the Lease has never been renewed".into()))
            }
            Some(_) => None,
        };
        let warn_at = renewed.and_then(|r| h.warn_after_days.map(|d| plus_days(r, d)));
        let unsupported_at = renewed.and_then(|r| h.unsupported_after_days.map(|d| plus_days(r, d)));
        let steps = escalation(warn_at, unsupported_at);
        out.push(Signal {
            rule: RuleId::HeartbeatStale,
            subject: format!("Heartbeat/{}", h.name),
            group: None,
            base: problem.as_ref().map(|_| Severity::Warning),
            steps,
            origin: renewed,
            fact: Fact::Heartbeat {
                namespace: h.namespace.clone(),
                lease: h.lease.clone(),
                renewed,
                problem,
                unsupported_at,
            },
        });
    }
}

/// Warning from `warn_at`, Unsupported from `unsupported_at`; a warning at or after the
/// unsupported instant is dropped (the higher severity holds from that instant).
fn escalation(warn_at: Option<DateTime<Utc>>, unsupported_at: Option<DateTime<Utc>>) -> Vec<(DateTime<Utc>, Severity)> {
    let warn = warn_at.filter(|w| unsupported_at.is_none_or(|u| *w < u)).map(|w| (w, Severity::Warning));
    warn.into_iter().chain(unsupported_at.map(|u| (u, Severity::Unsupported))).collect()
}

/// An instant for people: the day when it is midnight UTC, else RFC 3339.
pub(crate) fn when(t: DateTime<Utc>) -> String {
    if t.time() == chrono::NaiveTime::MIN {
        t.date_naive().to_string()
    } else {
        format(t)
    }
}

fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

/// Who a finding is about, in words: `node aks-1` or `3 nodes in pool 'user' (a, b, c)`.
fn who(members: &[&Signal], pool: Option<&str>) -> String {
    let names: Vec<&str> = members.iter().map(|m| m.subject.trim_start_matches("Node/")).collect();
    match (names.len(), pool) {
        (1, _) | (_, None) => format!("node {}", names[0]),
        (n, Some(pool)) => {
            let shown: Vec<&str> = names.iter().take(3).copied().collect();
            let more = if n > 3 { format!(", and {} more", n - 3) } else { String::new() };
            format!("{n} nodes in pool '{pool}' ({}{more})", shown.join(", "))
        }
    }
}

fn upgrade_to(target: Option<Minor>) -> String {
    match target {
        Some(m) => format!("{m} or newer"),
        None => "a supported minor".into(),
    }
}

/// The finding's message: what is wrong and what to do, by when. `members` share one cause;
/// the first is the worst.
pub(crate) fn message(members: &[&Signal], pool: Option<&str>, severity: Severity) -> String {
    let first = members[0];
    let who = who(members, pool);
    match &first.fact {
        Fact::Version { component, version, track } => {
            let (what, action) = match component {
                Component::ControlPlane => (format!("The control plane runs Kubernetes {}", truncate(version)), "upgrade the control plane"),
                Component::Kubelet => (format!("{} run{} kubelet {}", capitalise(&who), if members.len() == 1 { "s" } else { "" }, truncate(version)), "upgrade the node pool"),
            };
            match track {
                VersionTrack::Known { minor, end: Some(end), reason, upgrade_path_removed, oldest_supported_at_end, .. } => {
                    let why = match reason {
                        EndReason::Calendar => "its end of support".to_string(),
                        EndReason::Lts => "the end of its long-term support".to_string(),
                        EndReason::Window(days) => format!("the end of its {days}-day support window"),
                        EndReason::Displaced { n, by } => format!(
                            "the release of {}, after which it is no longer among the {n} newest minors",
                            by.last().map(ToString::to_string).unwrap_or_default()
                        ),
                    };
                    let target = upgrade_to(*oldest_supported_at_end);
                    if severity == Severity::Unsupported {
                        let mut m = format!("{what}: minor {minor} is out of support since {} ({why}). {} to {target}.", when(*end), capitalise(action));
                        if *upgrade_path_removed {
                            m.push_str(" The minor has been removed from the update servers: the incremental upgrade path is gone, so upgrade to the latest release (an unhealthy cluster may need a redeploy).");
                        }
                        m
                    } else {
                        let mut m = format!("{what}: minor {minor} reaches {why} on {}. {} to {target} before then.", when(*end), capitalise(action));
                        if *upgrade_path_removed {
                            m.push_str(" After that date the minor is removed from the update servers and only a jump to the latest release remains.");
                        }
                        m
                    }
                }
                VersionTrack::Known { minor, end: None, .. } => format!("{what}: minor {minor} has no end of support in the calendar."),
                VersionTrack::TooOld { minor, oldest, newest } => format!(
                    "{what}: minor {minor} is older than every minor in the calendar (oldest {oldest}) and out of support. {} to a supported minor{}.",
                    capitalise(action),
                    newest.map(|n| format!(" (the calendar's newest is {n})")).unwrap_or_default()
                ),
                VersionTrack::Unknown { minor, newest } => format!(
                    "{what}: minor {minor} is not in the calendar{}, so its end of support is unknown. Add it under spec.kubernetesVersion.releases.",
                    newest.map(|n| format!(" (newest {n})")).unwrap_or_default()
                ),
            }
        }
        Fact::VersionUnparsed { component, reason } => match component {
            Component::ControlPlane => format!("Cannot tell the control plane's support: {reason}."),
            Component::Kubelet => format!("Cannot tell the kubelet support of {who}: {reason}."),
        },
        Fact::Skew { kubelet, control_plane, max } => {
            if kubelet > control_plane {
                format!("{} run{} kubelet {kubelet}, newer than the control plane ({control_plane}): a kubelet must not be newer than the API server. Upgrade the control plane first or replace the nodes.", capitalise(&who), if members.len() == 1 { "s" } else { "" })
            } else {
                format!("{} run{} kubelet {kubelet}, {} minors behind the control plane ({control_plane}); at most {max} are supported. Upgrade the node pool.", capitalise(&who), if members.len() == 1 { "s" } else { "" }, kubelet.minors_behind(*control_plane))
            }
        }
        Fact::Image { image, date, from_creation, warn_at, unsupported_at } => {
            let age = if *from_creation {
                format!("{} created on {} (its image is at least that old)", capitalise(&who), when(*date))
            } else {
                format!("{} run{} node image {image}, released on {}", capitalise(&who), if members.len() == 1 { "s" } else { "" }, day(*date))
            };
            let action = if *from_creation { "Replace the nodes (upgrade or roll the pool)" } else { "Upgrade the node image" };
            match (severity, unsupported_at) {
                (Severity::Unsupported, Some(u)) => format!("{age}: out of support since {}. {action}.", when(*u)),
                (_, Some(u)) => format!("{age}: out of support from {}. {action} before then.", when(*u)),
                (_, None) => format!(
                    "{age}: older than the policy's {} days. {action}.",
                    warn_at.map(|w| (w - *date).num_days()).unwrap_or_default()
                ),
            }
        }
        Fact::ImageUnknown { reason } => format!("Cannot tell the node image age of {who}: {reason}."),
        Fact::NotReady { since, shutdown, unsupported_at, .. } => {
            let state = if *shutdown { "shut down" } else { "not Ready" };
            let since_txt = since.map(|s| format!(" since {}", when(s))).unwrap_or_else(|| " (since an unknown time)".into());
            let (verb, them) = if members.len() == 1 { ("is", "it") } else { ("are", "them") };
            let longest = if members.len() > 1 { " (the longest)" } else { "" };
            match (severity, unsupported_at) {
                (Severity::Unsupported, Some(u)) => format!("{} {verb} {state}{since_txt}{longest}: out of support since {}. Start or replace {them}.", capitalise(&who), when(*u)),
                (_, Some(u)) => format!("{} {verb} {state}{since_txt}{longest}: out of support from {}. Start or replace {them} before then.", capitalise(&who), when(*u)),
                _ => format!("{} {verb} {state}{since_txt}{longest}. Start, repair or remove {them}.", capitalise(&who)),
            }
        }
        Fact::Problem { field, reason } => format!("Cannot read {field} of {who}: {reason}. The node's other fields were still evaluated."),
        Fact::ClusterStopped { since, nodes, unsupported_at } => {
            let base = format!("No node of the {nodes} in scope has been Ready since {}: the cluster is stopped", when(*since));
            match (severity, unsupported_at) {
                (Severity::Unsupported, Some(u)) => format!("{base} and out of support since {}. Start the cluster.", when(*u)),
                (_, Some(u)) => format!("{base}. It is out of support from {}: start it before then.", when(*u)),
                _ => format!("{base}. Start it."),
            }
        }
        Fact::ClusterNotUpgradable { since, at } => {
            if severity == Severity::Unsupported {
                format!("The cluster has been stopped since {}: since {} it can no longer be upgraded. Start it and upgrade to the latest release, or redeploy.", when(*since), when(*at))
            } else {
                format!("The cluster has been stopped since {}: from {} it can no longer be upgraded. Start it before then.", when(*since), when(*at))
            }
        }
        Fact::Heartbeat { namespace, lease, renewed, problem, unsupported_at } => {
            let l = format!("Lease {namespace}/{lease}");
            match (problem, renewed) {
                (Some(p), _) => format!("{l}: {p}. The connection it proves cannot be checked: make sure the agent that renews it runs."),
                (None, Some(r)) => match (severity, unsupported_at) {
                    (Severity::Unsupported, Some(u)) => format!("{l} was last renewed on {}: out of support since {}. Restore the connection.", when(*r), when(*u)),
                    (_, Some(u)) => format!("{l} was last renewed on {}: out of support from {}. Restore the connection before then.", when(*r), when(*u)),
                    _ => format!("{l} was last renewed on {}. Restore the connection.", when(*r)),
                },
                (None, None) => format!("{l} has never been renewed."),
            }
        }
        Fact::Attestation { name, description, since, unsupported_at } => {
            let what = description.clone().unwrap_or_else(|| format!("Attestation '{name}'"));
            if severity == Severity::Unsupported {
                format!("{what} (since {}): out of support since {}. Resolve it, then remove the attestation.", when(*since), when(*unsupported_at))
            } else {
                format!("{what} (since {}): out of support from {}. Resolve it before then.", when(*since), when(*unsupported_at))
            }
        }
        Fact::Alpha { group_version } => format!("The API server serves the alpha API {group_version}: alpha features are not supported. Disable the feature gate or runtime config that enables it."),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_detection_is_for_builtin_groups_only() {
        assert!(is_builtin_alpha("resource.k8s.io/v1alpha3"));
        assert!(is_builtin_alpha("v1alpha1"));
        assert!(is_builtin_alpha("batch/v2alpha1"));
        assert!(!is_builtin_alpha("resource.k8s.io/v1beta1"));
        assert!(!is_builtin_alpha("gateway.networking.x-k8s.io/v1alpha2"));
        assert!(!is_builtin_alpha("example.com/v1alpha1"));
        assert!(!is_builtin_alpha("apps/v1"));
        assert!(!is_builtin_alpha("apps/valphabet"));
    }
}
