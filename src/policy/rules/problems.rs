//! Fields of a node that could not be read: an Info finding about the node, under the rule of
//! the family that reads the field. Always evaluated; the node's other fields still are.

use std::sync::Arc;

use super::image::NODE_IMAGE_UNKNOWN;
use super::stopped::NODE_NOT_READY;
use super::version::KUBERNETES_VERSION_UNKNOWN;
use super::{Family, Input, Output, Rules};
use crate::crd::v1alpha1::Severity;
use crate::policy::ids::RuleId;
use crate::policy::signal::{Cause, Fact, Signal, Who};
use crate::snapshot::NodeField;

pub(super) const FAMILY: Family = Family {
    rules: &[NODE_IMAGE_UNKNOWN, NODE_NOT_READY, KUBERNETES_VERSION_UNKNOWN],
    resolve: |_| Ok(Some(Box::new(Problems))),
};

/// The rule a field feeds.
fn rule_of(field: NodeField) -> RuleId {
    match field {
        NodeField::Labels | NodeField::Annotations => NODE_IMAGE_UNKNOWN,
        NodeField::KubeletVersion => KUBERNETES_VERSION_UNKNOWN,
        NodeField::CreationTimestamp | NodeField::Taints | NodeField::Conditions | NodeField::ReadyTransition => {
            NODE_NOT_READY
        }
    }
}

#[derive(Debug)]
struct Problems;

impl Rules for Problems {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        for node in input.nodes {
            for p in node.problems {
                let fact = Arc::new(ProblemFact { field: p.field, reason: p.reason.clone() });
                let signal = Signal::node(rule_of(p.field), node.name, node.pool, Cause::Field(p.field), fact);
                out.signals.push(signal.base(Severity::Info));
            }
        }
    }
}

#[derive(Debug)]
struct ProblemFact {
    field: NodeField,
    reason: String,
}

impl Fact for ProblemFact {
    fn message(&self, who: &Who<'_>, _: Severity) -> String {
        format!(
            "Cannot read {} of {}: {}. The node's other fields were still evaluated.",
            self.field,
            who.describe(),
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::crd::v1alpha1::Platform;
    use crate::policy::testing::*;
    use crate::snapshot::NodeInfo;

    #[test]
    fn garbage_in_one_node_is_a_finding_about_it_and_the_rest_is_evaluated() {
        let v = serde_json::json!({
            "metadata": {"name": "bad", "labels": {"kubernetes.azure.com/agentpool": 7}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "noon"}],
                "nodeInfo": {"kubeletVersion": "v1.x"}
            }
        });
        let bad = NodeInfo::from_value(&v).unwrap();
        let mut c = cluster("v1.35.1", vec![node("good").image("AKSUbuntu-2204gen2containerd-202601.01.0")]);
        c.nodes.push(Arc::new(bad));
        let e = evaluate(&spec(Platform::Aks), &c, at("2026-11-25"));
        let about_bad: Vec<_> =
            e.findings.iter().filter(|f| f.subject.to_string() == "Node/bad").map(|f| f.rule.as_str()).collect();
        assert!(about_bad.contains(&"NodeImageUnknown"), "{about_bad:?}");
        assert!(about_bad.contains(&"KubernetesVersionUnknown"), "{about_bad:?}");
        assert_eq!(severity_of(&e, super::super::NODE_IMAGE_OUTDATED, "Node/good"), Some(U));
    }
}
