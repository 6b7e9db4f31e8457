//! A signal: one subject's severity as a step function of time, and the fact that words it.
//! Rule families emit signals; `evaluate` groups them into findings.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::ids::{RuleId, Subject};
use crate::crd::v1alpha1::Severity;
use crate::snapshot::NodeField;
use crate::text::{capitalise, name};
use crate::version::Minor;

/// Where a severity rises, in time order.
pub type Steps = Arc<[(DateTime<Utc>, Severity)]>;

/// No step (allocates nothing).
fn no_steps() -> Steps {
    static NONE: std::sync::LazyLock<Steps> = std::sync::LazyLock::new(|| Arc::new([]));
    NONE.clone()
}

/// One subject's severity over time: `base` before the first step, then each step's severity
/// from its instant on. Steps rise: every rule only gets worse as time passes.
#[derive(Debug, Clone)]
pub struct Signal<'a> {
    /// The rule.
    pub rule: RuleId,
    /// The one thing the signal is about.
    pub about: About<'a>,
    /// Node signals with the same (pool, cause) merge into one finding about the pool.
    pub group: Option<PoolGroup<'a>>,
    /// The severity before the first step.
    pub base: Option<Severity>,
    /// Where the severity rises (shared by the signals of nodes with the same fact).
    pub steps: Steps,
    /// When the underlying fact began (the finding's `since` for a base severity).
    pub origin: Option<DateTime<Utc>>,
    /// What to say about it.
    pub fact: Arc<dyn Fact>,
}

/// What a signal is about: a node of the snapshot, borrowed (a node signal copies nothing of
/// it, not even a reference count: the evaluation of a large cluster touches each node's name
/// only where a finding names it), or any subject.
#[derive(Debug, Clone)]
pub enum About<'a> {
    /// A node of the snapshot, by its name.
    Node(&'a Arc<str>),
    /// Anything else (or a node named otherwise).
    Other(Subject),
}

impl About<'_> {
    /// The subject, owned.
    pub fn subject(&self) -> Subject {
        match self {
            About::Node(name) => Subject::Node((*name).clone()),
            About::Other(s) => s.clone(),
        }
    }

    /// The name of the node it is about.
    pub fn node(&self) -> Option<&Arc<str>> {
        match self {
            About::Node(name) => Some(name),
            About::Other(Subject::Node(name)) => Some(name),
            About::Other(_) => None,
        }
    }

    /// Whether it is `subject` (a node by the address of its name first).
    pub fn is(&self, subject: &Subject) -> bool {
        match (self, subject) {
            (About::Node(a), Subject::Node(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.key() == (subject.rank(), subject.name()),
        }
    }

    /// The kind (as `Subject` orders kinds) and the name: ordered as the subjects are.
    fn key(&self) -> (u8, &str) {
        match self {
            About::Node(name) => (Subject::NODE_RANK, name),
            About::Other(s) => (s.rank(), s.name()),
        }
    }
}

impl PartialEq for About<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for About<'_> {}

impl PartialOrd for About<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for About<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for About<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl<'a> Signal<'a> {
    /// Severity at `t`.
    pub fn at(&self, t: DateTime<Utc>) -> Option<Severity> {
        self.steps.iter().filter(|(at, _)| *at <= t).map(|(_, s)| *s).max().max(self.base)
    }

    /// A signal about node `node` of `pool`, grouped with the pool's nodes of the same cause.
    /// The node's name is borrowed from the snapshot: a node signal copies no string.
    pub fn node(rule: RuleId, node: &'a Arc<str>, pool: &'a Arc<str>, cause: Cause, fact: Arc<dyn Fact>) -> Self {
        Signal {
            rule,
            about: About::Node(node),
            group: Some(PoolGroup { pool, cause }),
            base: None,
            steps: no_steps(),
            origin: None,
            fact,
        }
    }

    /// A signal about one subject, never grouped.
    pub fn one(rule: RuleId, subject: Subject, fact: Arc<dyn Fact>) -> Self {
        Signal { rule, about: About::Other(subject), group: None, base: None, steps: no_steps(), origin: None, fact }
    }

    /// With a base severity.
    pub fn base(mut self, severity: Severity) -> Self {
        self.base = Some(severity);
        self
    }

    /// With steps.
    pub fn steps(mut self, steps: impl Into<Steps>) -> Self {
        self.steps = steps.into();
        self
    }

    /// With the instant the fact began.
    pub fn origin(mut self, origin: Option<DateTime<Utc>>) -> Self {
        self.origin = origin;
        self
    }
}

/// The pool of a node signal and the cause it shares with the pool's other nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolGroup<'a> {
    /// The pool (borrowed from the snapshot's nodes).
    pub pool: &'a Arc<str>,
    /// The cause.
    pub cause: Cause,
}

/// Why a node signal fires, as far as grouping goes: nodes of a pool with equal causes make
/// one finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The rule itself (every node of the pool that fails it).
    Rule,
    /// A minor (a kubelet's).
    Minor(Minor),
    /// A value (an image version, a version that does not parse, a reason).
    Value(Arc<str>),
    /// A field of the node that could not be read.
    Field(NodeField),
}

/// What a signal is about, in words. Each family words its own facts.
pub trait Fact: fmt::Debug + Send + Sync {
    /// The finding's message: what is wrong and what to do, by when. `who` is the group of
    /// nodes that share the fact (empty for a signal that is not about nodes).
    fn message(&self, who: &Who<'_>, severity: Severity) -> String;
}

/// How many node names a message shows.
pub const SHOWN: usize = 3;

/// The nodes a finding is about.
#[derive(Debug, Clone)]
pub struct Who<'a> {
    /// Their names: the first [`SHOWN`] in order (the longest-standing first, then by name),
    /// the rest in no particular order.
    pub nodes: Vec<&'a str>,
    /// Their pool, when grouped.
    pub pool: Option<&'a str>,
}

impl Who<'_> {
    /// `node aks-1` or `3 nodes in pool 'user' (a, b, c)`, names capped.
    pub fn describe(&self) -> String {
        match (self.nodes.len(), self.pool) {
            (0, _) => String::new(),
            (1, _) | (_, None) => format!("node {}", name(self.nodes[0])),
            (n, Some(pool)) => {
                let shown: Vec<String> = self.nodes.iter().take(SHOWN).map(|n| name(n)).collect();
                let more = if n > SHOWN { format!(", and {} more", n - SHOWN) } else { String::new() };
                format!("{n} nodes in pool '{}' ({}{more})", name(pool), shown.join(", "))
            }
        }
    }

    /// `describe()` at the start of a sentence.
    pub fn subject(&self) -> String {
        capitalise(&self.describe())
    }

    /// True for one node.
    pub fn one(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The verb ending for the group: `s` for one node (`runs`), nothing for several (`run`).
    pub fn s(&self) -> &'static str {
        if self.one() {
            "s"
        } else {
            ""
        }
    }
}

/// Warning from `warn_at`, Unsupported from `unsupported_at`; a warning at or after the
/// unsupported instant is dropped (the higher severity holds from that instant).
pub fn escalation(
    warn_at: Option<DateTime<Utc>>,
    unsupported_at: Option<DateTime<Utc>>,
) -> Vec<(DateTime<Utc>, Severity)> {
    let warn = warn_at.filter(|w| unsupported_at.is_none_or(|u| *w < u)).map(|w| (w, Severity::Warning));
    warn.into_iter().chain(unsupported_at.map(|u| (u, Severity::Unsupported))).collect()
}
