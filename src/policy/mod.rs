//! The pure engine: `evaluate(policy, snapshot, now)`. No client, no clock, no I/O.
//!
//! Every rule turns what it reads into *signals*: a subject's severity as a step function of
//! time (a base severity and the instants at which it rises). The engine groups signals of many
//! nodes with the same cause into one finding, reads each finding's severity at `now`, and takes
//! the next deadline and the upcoming transitions from the steps after `now`. Time is an input,
//! so evaluating at any instant, past or future, is deterministic.

pub mod evaluate;
pub mod image;
pub mod model;
pub mod report;
mod rules;
pub mod version;

#[cfg(test)]
mod tests;

pub use evaluate::{evaluate, evaluate_resolved, Evaluation};
pub use model::{Policy, PolicyError};

use std::fmt;

/// Rule identifiers: the `rule` field of a finding and the `rule` metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    KubernetesVersionEndOfSupport,
    KubernetesVersionUnknown,
    KubeletVersionEndOfSupport,
    KubeletVersionSkew,
    NodeImageOutdated,
    NodeImageUnknown,
    NodeNotReady,
    ClusterStopped,
    ClusterNotUpgradable,
    HeartbeatStale,
    AttestationExpired,
    AlphaApiServed,
    PolicyInvalid,
}

impl RuleId {
    /// Every rule.
    pub const ALL: [RuleId; 13] = [
        RuleId::KubernetesVersionEndOfSupport,
        RuleId::KubernetesVersionUnknown,
        RuleId::KubeletVersionEndOfSupport,
        RuleId::KubeletVersionSkew,
        RuleId::NodeImageOutdated,
        RuleId::NodeImageUnknown,
        RuleId::NodeNotReady,
        RuleId::ClusterStopped,
        RuleId::ClusterNotUpgradable,
        RuleId::HeartbeatStale,
        RuleId::AttestationExpired,
        RuleId::AlphaApiServed,
        RuleId::PolicyInvalid,
    ];

    /// The identifier as the API and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::KubernetesVersionEndOfSupport => "KubernetesVersionEndOfSupport",
            RuleId::KubernetesVersionUnknown => "KubernetesVersionUnknown",
            RuleId::KubeletVersionEndOfSupport => "KubeletVersionEndOfSupport",
            RuleId::KubeletVersionSkew => "KubeletVersionSkew",
            RuleId::NodeImageOutdated => "NodeImageOutdated",
            RuleId::NodeImageUnknown => "NodeImageUnknown",
            RuleId::NodeNotReady => "NodeNotReady",
            RuleId::ClusterStopped => "ClusterStopped",
            RuleId::ClusterNotUpgradable => "ClusterNotUpgradable",
            RuleId::HeartbeatStale => "HeartbeatStale",
            RuleId::AttestationExpired => "AttestationExpired",
            RuleId::AlphaApiServed => "AlphaApiServed",
            RuleId::PolicyInvalid => "PolicyInvalid",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
