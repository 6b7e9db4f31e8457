//! The CRD's own bounds on strings and lists (`maxLength`, `maxItems`), checked before anything
//! in a policy is compiled or read. The API server enforces them on what it stores; a policy
//! from a file, or stored under an older CRD, reaches the engine without that check, and a
//! 10 MB `datePattern` must be refused in the time it takes to count it, not compiled.

use std::sync::LazyLock;

use kube::CustomResourceExt;
use serde_json::Value;

use super::settings::PolicyError;
use crate::crd::v1alpha1::{SupportPolicy, SupportPolicySpec};

/// The schema of `spec`, from the CRD the operator installs.
static SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let crd = serde_json::to_value(SupportPolicy::crd()).unwrap_or_default();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec").cloned().unwrap_or_default()
});

/// Every string longer and every list larger than the CRD allows, by field.
pub fn exceeded(spec: &SupportPolicySpec) -> Vec<PolicyError> {
    let mut errors = Vec::new();
    if let Ok(value) = serde_json::to_value(spec) {
        walk(&value, &SPEC_SCHEMA, "spec", &mut errors);
    }
    errors
}

fn walk(value: &Value, schema: &Value, path: &str, errors: &mut Vec<PolicyError>) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    match value {
        Value::String(s) => {
            if let Some(max) = bound("maxLength") {
                // Counting stops past the bound: the work is bounded too.
                let n = s.chars().take(max as usize + 1).count() as u64;
                if n > max {
                    errors.push(PolicyError {
                        field: path.to_string(),
                        reason: format!("{} characters, more than the {max} the CRD allows", s.chars().count()),
                    });
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = bound("maxItems").filter(|max| items.len() as u64 > *max) {
                errors.push(PolicyError {
                    field: path.to_string(),
                    reason: format!("{} entries, more than the {max} the CRD allows", items.len()),
                });
                return;
            }
            let item_schema = schema.get("items").unwrap_or(&Value::Null);
            for (i, item) in items.iter().enumerate() {
                walk(item, item_schema, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(fields) => {
            for (name, field) in fields {
                let field_schema = schema
                    .pointer(&format!("/properties/{}", name.replace('~', "~0").replace('/', "~1")))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                if let Some(field_schema) = field_schema {
                    walk(field, field_schema, &format!("{path}.{name}"), errors);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{AttestationSpec, NodeImageSpec, Platform};

    #[test]
    fn strings_and_lists_beyond_the_crd_are_named_and_at_the_bound_pass() {
        let mut spec = SupportPolicySpec { platform: Platform::Aks, ..Default::default() };
        spec.node_image = Some(NodeImageSpec { date_pattern: Some("x".repeat(1024)), ..Default::default() });
        assert!(exceeded(&spec).is_empty(), "1024 characters is the bound");
        spec.node_image = Some(NodeImageSpec { date_pattern: Some("x".repeat(1025)), ..Default::default() });
        let errors = exceeded(&spec);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "spec.nodeImage.datePattern: 1025 characters, more than the 1024 the CRD allows"
        );
        let attestation = AttestationSpec {
            name: "a".into(),
            since: chrono::Utc::now(),
            unsupported_after_days: None,
            description: None,
        };
        spec.node_image = None;
        spec.attestations = vec![attestation; 33];
        assert_eq!(exceeded(&spec)[0].to_string(), "spec.attestations: 33 entries, more than the 32 the CRD allows");
    }
}
