//! What a finding is: its rule and its subject, typed. Each rule family declares its own rule
//! identifiers next to its rules; the strings appear once, there.

use std::fmt;
use std::sync::Arc;

/// A rule identifier: the `rule` field of a finding and the `rule` metric label. Ordered by
/// name, as the status lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(&'static str);

impl RuleId {
    /// A rule named `name`, an UpperCamelCase identifier (checked at compile time for the
    /// constants the families declare).
    pub const fn new(name: &'static str) -> Self {
        let b = name.as_bytes();
        assert!(!b.is_empty() && b[0].is_ascii_uppercase(), "a rule name starts with an upper-case letter");
        let mut i = 0;
        while i < b.len() {
            assert!(b[i].is_ascii_alphanumeric(), "a rule name is letters and digits only");
            i += 1;
        }
        RuleId(name)
    }

    /// The identifier as the API and metrics spell it.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The policy itself cannot be used (a Warning; the verdict is `Unknown`).
pub const POLICY_INVALID: RuleId = RuleId::new("PolicyInvalid");

/// What a finding or a transition is about. The variants are in the order of their kind's name,
/// so subjects order exactly as their `Kind/name` strings do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A group-version the API server serves (`APIVersion/resource.k8s.io/v1alpha3`).
    ApiVersion(String),
    /// An attestation of the policy (`Attestation/<name>`).
    Attestation(String),
    /// A minor's entry in the policy's release calendar (`Calendar/1.37`).
    Calendar(String),
    /// The cluster as a whole (`Cluster/cluster`).
    Cluster,
    /// The API server (`ControlPlane/kube-apiserver`).
    ControlPlane,
    /// A heartbeat of the policy (`Heartbeat/<name>`).
    Heartbeat(String),
    /// One node (`Node/<name>`); its name is shared with the snapshot's node.
    Node(Arc<str>),
    /// Nodes of a pool that share a cause (`NodePool/<pool>`).
    NodePool(String),
    /// The policy's spec (`SupportPolicy/spec`).
    Policy,
}

impl Subject {
    /// The kind, as the API spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::ApiVersion(_) => "APIVersion",
            Subject::Attestation(_) => "Attestation",
            Subject::Calendar(_) => "Calendar",
            Subject::Cluster => "Cluster",
            Subject::ControlPlane => "ControlPlane",
            Subject::Heartbeat(_) => "Heartbeat",
            Subject::Node(_) => "Node",
            Subject::NodePool(_) => "NodePool",
            Subject::Policy => "SupportPolicy",
        }
    }

    /// The rank of `Node`.
    pub(crate) const NODE_RANK: u8 = 6;

    /// The rank of its kind, in the order subjects sort.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Subject::ApiVersion(_) => 0,
            Subject::Attestation(_) => 1,
            Subject::Calendar(_) => 2,
            Subject::Cluster => 3,
            Subject::ControlPlane => 4,
            Subject::Heartbeat(_) => 5,
            Subject::Node(_) => Self::NODE_RANK,
            Subject::NodePool(_) => 7,
            Subject::Policy => 8,
        }
    }

    /// The name, in full.
    pub fn name(&self) -> &str {
        match self {
            Subject::ApiVersion(n)
            | Subject::Attestation(n)
            | Subject::Calendar(n)
            | Subject::Heartbeat(n)
            | Subject::NodePool(n) => n,
            Subject::Node(n) => n,
            Subject::Cluster => "cluster",
            Subject::ControlPlane => "kube-apiserver",
            Subject::Policy => "spec",
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_subject() -> impl Strategy<Value = Subject> {
        let name = "[a-zA-Z0-9./_-]{0,6}";
        prop_oneof![
            name.prop_map(Subject::ApiVersion),
            name.prop_map(Subject::Attestation),
            name.prop_map(Subject::Calendar),
            Just(Subject::Cluster),
            Just(Subject::ControlPlane),
            name.prop_map(Subject::Heartbeat),
            name.prop_map(|n| Subject::Node(n.into())),
            name.prop_map(Subject::NodePool),
            Just(Subject::Policy),
        ]
    }

    proptest! {
        /// Sorting subjects sorts their `Kind/name` strings: the status order did not change
        /// when subjects became typed.
        #[test]
        fn subjects_order_as_their_strings(a in arb_subject(), b in arb_subject()) {
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
            if a.rank() != b.rank() {
                prop_assert_eq!(a.rank().cmp(&b.rank()), a.cmp(&b));
            }
        }
    }

    #[test]
    fn subjects_read_as_kind_and_name() {
        assert_eq!(Subject::ControlPlane.to_string(), "ControlPlane/kube-apiserver");
        assert_eq!(Subject::NodePool("user".into()).to_string(), "NodePool/user");
        assert_eq!(Subject::Policy.to_string(), "SupportPolicy/spec");
    }
}
