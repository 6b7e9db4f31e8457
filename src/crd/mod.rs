//! The custom resources of support-operator: `SupportPolicy` (written by users) and
//! `SupportStatus` (written by the operator). Only types live here; behaviour lives in `policy`.

pub mod v1alpha1;

use kube::CustomResourceExt;

/// The CRDs, as `support-operator crd` prints them and `make crds` writes them to `crds/`.
///
/// The output is deterministic: the same binary always prints the same bytes.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in [v1alpha1::SupportPolicy::crd(), v1alpha1::SupportStatus::crd()] {
        out.push_str("---\n");
        // Serialising a CRD we built ourselves cannot fail.
        out.push_str(&serde_yaml::to_string(&crd).expect("CRD serialises to YAML"));
    }
    out
}
