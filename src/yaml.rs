//! YAML at the edge: reading what a user hands us (a policy, a snapshot) within limits that
//! refuse hostile input in linear time, and writing the objects `check -o yaml` and `crd` print.
//!
//! `serde-saphyr` (a pure-Rust parser with a budget enforced while it parses) replaces the
//! deprecated `serde_yaml`, whose libyaml scanner takes time quadratic in the nesting depth
//! (a 100,000-deep flow sequence took 24 s to be refused; here it is refused at depth 65 at once).

use serde::Serialize;
use serde_json::Value;
use serde_saphyr::budget::BudgetBreach;

/// Deepest nesting of sequences and mappings accepted (Kubernetes objects nest about 10 deep).
pub const MAX_DEPTH: usize = 64;
/// Most events replayed from aliases in one input (an alias bomb is refused when it reaches it).
pub const MAX_ALIAS_REPLAY: usize = 100_000;

/// Why a YAML text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(String);

/// Every document of a YAML stream as JSON values (empty documents are left out).
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    // Limits that grow with the input: a large file of many small objects is fine; what
    // costs more than its size (nesting, alias expansion) is refused.
    let budget = serde_saphyr::budget! {
        max_depth: MAX_DEPTH,
        flow_nesting_limit: MAX_DEPTH,
        max_documents: usize::MAX,
        max_nodes: text.len().max(250_000),
        max_events: text.len().saturating_mul(2).max(1_000_000),
        max_total_scalar_bytes: text.len().max(1 << 20),
    };
    let options = serde_saphyr::options! {
        budget: budget,
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: MAX_ALIAS_REPLAY },
        strict_booleans: true,
        with_snippet: false,
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options).map_err(describe)?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// An object as YAML (block style), for people and for `kubectl apply -f`.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_saphyr::to_string(value).map_err(|e| YamlError(e.to_string()))
}

fn describe(e: serde_saphyr::Error) -> YamlError {
    let e = e.without_snippet();
    let at = e.location().map(|l| format!("line {} column {}: ", l.line(), l.column())).unwrap_or_default();
    let text = match e {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => format!("nested deeper than {MAX_DEPTH} levels"),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
                "expands to far more than its size (an alias bomb?)".to_string()
            }
            other => format!("exceeds a size limit ({other:?})"),
        },
        other if other.to_string().starts_with("alias replay limit exceeded") => {
            format!("aliases expand to more than {MAX_ALIAS_REPLAY} events (an alias bomb?)")
        }
        // The scanner's own limit on flow collections ([[[…]]]), set to the same depth.
        other if other.to_string().contains("recursion limit exceeded") => {
            format!("nested deeper than {MAX_DEPTH} levels")
        }
        other => {
            let shown = other.to_string();
            let first = shown.lines().next().unwrap_or_default().trim_start_matches("error: ");
            return YamlError(first.to_string());
        }
    };
    YamlError(format!("{at}{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_skip_empty_ones() {
        let docs = documents("kind: Node\n---\n---\nkind: Lease\n").unwrap();
        assert_eq!(docs, vec![serde_json::json!({"kind": "Node"}), serde_json::json!({"kind": "Lease"})]);
        assert!(documents("").unwrap().is_empty());
    }

    #[test]
    fn yaml_1_2_booleans_only() {
        let docs = documents("a: yes\nb: true\n").unwrap();
        assert_eq!(docs[0], serde_json::json!({"a": "yes", "b": true}));
    }

    #[test]
    fn syntax_errors_are_one_line_with_the_position() {
        let err = documents("{ not: yaml: [").unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_at_the_limit_not_before() {
        let nested = |n: usize| format!("a: {}1{}\n", "[".repeat(n), "]".repeat(n));
        assert!(documents(&nested(MAX_DEPTH - 1)).is_ok());
        let err = documents(&nested(100_000)).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        let block = format!("{}x\n", "- ".repeat(100_000));
        assert!(documents(&block).unwrap_err().to_string().contains("nested deeper"));
    }

    #[test]
    fn an_alias_bomb_is_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for (prev, next) in
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb.push_str(&format!("{next}: &{next} [{}]\n", vec![format!("*{prev}"); 9].join(", ")));
        }
        let err = documents(&bomb).unwrap_err().to_string();
        assert!(err.contains("alias bomb"), "{err}");
    }

    #[test]
    fn aliases_within_limits_are_expanded() {
        let docs = documents("base: &b {x: 1}\ncopy: *b\n").unwrap();
        assert_eq!(docs[0]["copy"], serde_json::json!({"x": 1}));
    }
}
