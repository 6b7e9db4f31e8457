//! The status fits in a byte budget whatever the cluster holds. Every string in it is capped
//! where it is made (names, versions, messages, conditions), so the part that is not a list is
//! small (about 100 KiB at worst, every character a control character escaped as `\u00XX`);
//! what remains over the budget is cut from the lists, pools first, then the last steps of
//! the plan, then the least severe findings, and counted in `poolsOmitted`, `planOmitted` and
//! `findingsOmitted`.

use serde::Serialize;

use crate::crd::v1alpha1::SupportReport;

/// The largest status, serialised as JSON (etcd refuses objects over about 1.5 MiB).
pub const MAX_STATUS_BYTES: usize = 256 * 1024;

/// Bytes of `value` as JSON.
fn size<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX)
}

/// Cuts `status` until it fits in [`MAX_STATUS_BYTES`].
pub(super) fn fit(status: &mut SupportReport) {
    loop {
        let total = size(status);
        if total <= MAX_STATUS_BYTES {
            return;
        }
        // Room for the omitted counters that may appear (`,"poolsOmitted":100`).
        let mut excess = total - MAX_STATUS_BYTES + 64;
        while excess > 0 && !status.pools.is_empty() {
            let cut = status.pools.pop().map(|p| size(&p) + 1).unwrap_or(0);
            status.pools_omitted += 1;
            excess = excess.saturating_sub(cut);
        }
        while excess > 0 && !status.plan.is_empty() {
            let cut = status.plan.pop().map(|s| size(&s) + 1).unwrap_or(0);
            status.plan_omitted += 1;
            excess = excess.saturating_sub(cut);
        }
        while excess > 0 && !status.findings.is_empty() {
            let cut = status.findings.pop().map(|f| size(&f) + 1).unwrap_or(0);
            status.findings_omitted += 1;
            excess = excess.saturating_sub(cut);
        }
        if excess > 0 {
            // Only the bounded part is left; the caps keep it well below the budget, so this
            // is never reached. Cut the transitions rather than loop.
            status.upcoming.clear();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::MAX_STATUS_BYTES;
    use crate::crd::v1alpha1::{HeartbeatSpec, LeaseReference, Platform, SupportPolicySpec, SupportReport};
    use crate::policy::{evaluate, report, Evaluation};
    use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
    use crate::time::parse_rfc3339;

    /// A string as hostile as a cluster can make it: long, of one awkward character (a control
    /// character JSON escapes as six bytes, a quote, a four-byte emoji), made distinct by `tag`.
    fn hostile(c: char, len: usize, tag: usize) -> String {
        let mut s: String = std::iter::repeat_n(c, len).collect();
        s.push_str(&tag.to_string());
        s
    }

    fn awkward() -> impl Strategy<Value = char> {
        prop::sample::select(vec!['\u{0}', '\u{1f}', '"', '\\', 'é', '😀', 'a', '\u{202e}'])
    }

    fn bytes(status: &SupportReport) -> usize {
        serde_json::to_vec(status).unwrap().len()
    }

    /// The status fits, and what was cut is counted.
    fn assert_within_budget(eval: &Evaluation) -> SupportReport {
        let now = parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
        let status = report::report(eval, None, Some(1), now);
        assert!(bytes(&status) <= MAX_STATUS_BYTES, "status is {} bytes", bytes(&status));
        assert_eq!(status.pools.len() + status.pools_omitted as usize, eval.pools.len());
        assert_eq!(status.findings.len() + status.findings_omitted as usize, status.findings_total as usize);
        assert_eq!(status.findings_total as usize, eval.findings.len());
        assert_eq!(status.plan.len() + status.plan_omitted as usize, eval.plan.len());
        status
    }

    fn snapshot(c: char, len: usize, pools: usize, versions: usize) -> ClusterSnapshot {
        let mut nodes = Vec::new();
        for p in 0..pools {
            for v in 0..versions {
                let i = p * versions + v;
                let labels: BTreeMap<String, String> = [
                    ("kubernetes.azure.com/agentpool".to_string(), hostile(c, len, p)),
                    ("kubernetes.azure.com/node-image-version".to_string(), hostile(c, len, i)),
                ]
                .into();
                nodes.push(Arc::new(NodeInfo {
                    name: hostile(c, len, i).into(),
                    labels: labels.into(),
                    kubelet_version: Some(hostile(c, len, i).into()),
                    readiness: Readiness::NotReady { since: None },
                    ..Default::default()
                }));
            }
        }
        ClusterSnapshot {
            server_version: Some(hostile(c, len, 0)),
            nodes,
            api_versions: Some((0..50).map(|i| format!("{}.k8s.io/v1alpha1", hostile(c, len, i))).collect()),
            ..Default::default()
        }
    }

    /// Issue 6, case 9: 100 pools × 10 versions of a 4 KB string made a 4 MB status.
    #[test]
    fn a_hundred_pools_of_ten_huge_versions_fit() {
        let now = parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
        let spec = SupportPolicySpec { platform: Platform::Aks, ..Default::default() };
        for c in ['a', '\u{1}', '😀'] {
            let eval = evaluate(&spec, &snapshot(c, 4096, 100, 10), now);
            let status = assert_within_budget(&eval);
            assert!(status.pools_omitted > 0 || status.findings_omitted > 0, "the cut is said in the status");
        }
    }

    /// An invalid policy with thousands of bad fields: the PolicyInvalid finding and the
    /// PolicyValid condition are capped.
    #[test]
    fn an_invalid_policy_with_thousands_of_errors_fits() {
        let now = parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
        let hb = |i: usize| HeartbeatSpec {
            name: hostile('\u{1}', 300, i),
            lease: LeaseReference { namespace: String::new(), name: hostile('"', 300, i) },
            warn_after_days: Some(9999),
            unsupported_after_days: Some(1),
        };
        let spec = SupportPolicySpec {
            platform: Platform::Aks,
            heartbeats: (0..2000).map(hb).collect(),
            ..Default::default()
        };
        assert_within_budget(&evaluate(&spec, &ClusterSnapshot::default(), now));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the strings and however many distinct values across however many pools,
        /// the status stays within its budget and says what it cut.
        #[test]
        fn any_cluster_fits(c in awkward(), len in 0usize..3000, pools in 1usize..160, versions in 1usize..13) {
            let now = parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
            let spec = SupportPolicySpec { platform: Platform::Aks, ..Default::default() };
            assert_within_budget(&evaluate(&spec, &snapshot(c, len, pools, versions), now));
        }
    }
}
