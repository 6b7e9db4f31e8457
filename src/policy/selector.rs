//! A policy's `nodeSelector`, matched against the labels the snapshot keeps (the same
//! semantics as Kubernetes' label selectors: every requirement must hold).

use kube::core::{Expression, Selector};

use crate::snapshot::{Labels, NodeKeys};

/// Which nodes a policy governs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelector(Vec<Expression>);

impl From<Selector> for NodeSelector {
    fn from(s: Selector) -> Self {
        NodeSelector(s.into_iter().collect())
    }
}

impl NodeSelector {
    /// Whether a node with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|e| match e {
            Expression::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Expression::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Expression::Exists(key) => labels.contains_key(key),
            Expression::DoesNotExist(key) => !labels.contains_key(key),
            Expression::Equal(key, value) => labels.get(key) == Some(value.as_str()),
            Expression::NotEqual(key, value) => labels.get(key) != Some(value.as_str()),
        })
    }

    /// Adds the label keys it reads to `keys`.
    pub fn keys(&self, keys: &mut NodeKeys) {
        for e in &self.0 {
            let key = match e {
                Expression::In(k, _)
                | Expression::NotIn(k, _)
                | Expression::Exists(k)
                | Expression::DoesNotExist(k)
                | Expression::Equal(k, _)
                | Expression::NotEqual(k, _) => k,
            };
            keys.label(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    use kube::core::SelectorExt;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn requirement(key: String, op: &str, values: Vec<String>) -> LabelSelectorRequirement {
        let values = matches!(op, "In" | "NotIn").then_some(values);
        LabelSelectorRequirement { key, operator: op.into(), values }
    }

    proptest! {
        /// Matches exactly as kube's selector does, on any labels.
        #[test]
        fn matches_as_kube_does(
            labels in prop::collection::btree_map("[ab]", "[xy]", 0..3),
            match_labels in prop::collection::btree_map("[ab]", "[xy]", 0..2),
            exprs in prop::collection::vec(("[ab]", prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist"]),
                                            prop::collection::vec("[xy]", 0..2)), 0..3),
        ) {
            let sel = LabelSelector {
                match_labels: Some(match_labels),
                match_expressions: Some(exprs.into_iter().map(|(k, op, v)| requirement(k, op, v)).collect()),
            };
            let kube = Selector::try_from(sel).unwrap();
            let ours = NodeSelector::from(kube.clone());
            let ours_labels: Labels = labels.clone().into();
            prop_assert_eq!(ours.matches(&ours_labels), kube.matches(&labels));
            let mut keys = NodeKeys::none();
            ours.keys(&mut keys);
            let kept: BTreeMap<String, String> =
                labels.iter().filter(|(k, _)| keys.labels.keeps(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(kube.matches(&kept), kube.matches(&labels), "the keys it reads decide");
        }
    }
}
