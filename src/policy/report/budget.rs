//! The status fits in a byte budget whatever the cluster holds. Every string in it is capped
//! where it is made (names, versions, messages, conditions), so the part that is not a list is
//! small (about 100 KiB at worst, every character a control character escaped as `\u00XX`);
//! what remains over the budget is cut from the lists, pools first, then the least severe
//! findings, and counted in `poolsOmitted` and `findingsOmitted`.

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
