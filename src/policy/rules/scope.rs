//! No node in scope: every node rule passed only because it had nothing to read. A snapshot
//! where no node could be read, or a policy whose `nodeSelector` selects no node, is a Warning,
//! so a CI gate with `--fail-on warning` fails instead of passing on nothing. No section, no
//! settings: every policy governs nodes.

use std::sync::Arc;

use super::{Family, Input, Output, Rules};
use crate::crd::v1alpha1::Severity;
use crate::policy::ids::{RuleId, Subject};
use crate::policy::signal::{Fact, Signal, Who};

/// No node is in scope of the policy.
pub(crate) const NO_NODES_IN_SCOPE: RuleId = RuleId::new("NoNodesInScope");

pub(super) const FAMILY: Family = Family { rules: &[NO_NODES_IN_SCOPE], resolve: |_| Ok(Some(Box::new(Scope))) };

#[derive(Debug)]
struct Scope;

impl Rules for Scope {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        if input.nodes.is_empty() {
            let fact = Arc::new(NoNodes { nodes: input.snapshot.nodes.len() });
            out.signals.push(Signal::one(NO_NODES_IN_SCOPE, Subject::Cluster, fact).base(Severity::Warning));
        }
    }
}

/// How many nodes there are, none of them in scope.
#[derive(Debug)]
struct NoNodes {
    nodes: usize,
}

impl Fact for NoNodes {
    fn message(&self, _: &Who<'_>, _: Severity) -> String {
        match self.nodes {
            0 => "No node could be read (the cluster or the snapshot holds none that is readable), so no node \
                  rule was evaluated. Check that the snapshot holds the nodes (kubectl get nodes,leases -A -o json); \
                  a new cluster reports this until its first node joins."
                .to_string(),
            n => format!(
                "The policy's nodeSelector selects none of the cluster's {n} nodes, so no node rule was evaluated. \
                 Fix spec.nodeSelector."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NO_NODES_IN_SCOPE;
    use crate::crd::v1alpha1::{Platform, Verdict};
    use crate::policy::testing::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    #[test]
    fn no_node_at_all_is_a_warning() {
        for platform in [Platform::Aks, Platform::Eks, Platform::Custom] {
            let e = evaluate(&spec(platform), &cluster("v1.35.1", vec![]), at("2026-11-25"));
            assert_eq!(severity_of(&e, NO_NODES_IN_SCOPE, "Cluster/cluster"), Some(W), "{platform:?}");
            assert_eq!(e.verdict, Verdict::AtRisk, "{platform:?}");
            let f = e.findings.iter().find(|f| f.rule == NO_NODES_IN_SCOPE).unwrap();
            assert!(f.message.starts_with("No node could be read"), "{}", f.message);
            assert_eq!((f.since, f.deadline), (None, None), "a constant Warning: no deadline, nothing changes");
        }
    }

    #[test]
    fn a_selector_that_selects_no_node_is_a_warning_naming_the_count() {
        let mut s = spec(Platform::Aks);
        s.node_selector = Some(LabelSelector {
            match_labels: Some([("kubernetes.azure.com/agentpool".to_string(), "gpu".to_string())].into()),
            match_expressions: None,
        });
        let c = cluster("v1.35.1", vec![node("a").pool("user"), node("b").pool("system")]);
        let e = evaluate(&s, &c, at("2026-11-25"));
        let f = e.findings.iter().find(|f| f.rule == NO_NODES_IN_SCOPE).expect("a NoNodesInScope finding");
        assert_eq!(f.severity, W);
        assert!(f.message.contains("selects none of the cluster's 2 nodes"), "{}", f.message);
        assert_eq!(e.nodes.total, 0);
    }

    #[test]
    fn one_node_in_scope_is_enough() {
        let e = evaluate(&spec(Platform::Aks), &cluster("v1.35.1", vec![node("a")]), at("2026-11-25"));
        assert_eq!(severity_of(&e, NO_NODES_IN_SCOPE, "Cluster/cluster"), None);
    }
}
