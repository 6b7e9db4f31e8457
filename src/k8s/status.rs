//! Writing SupportStatus: the object (owned by its policy) and its status, both by server-side
//! apply with one field manager.

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::crd::v1alpha1::{SupportPolicy, SupportReport, SupportStatus};
use crate::policy::report::status_object;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "support-operator";

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Creates (or re-owns) the SupportStatus of `policy`: name, owner reference and spec.
pub async fn apply_object(api: &Api<SupportStatus>, policy: &SupportPolicy) -> Result<(), kube::Error> {
    let mut object = status_object(policy, SupportReport::default());
    object.status = None;
    let name = object.metadata.name.clone().unwrap_or_default();
    let body = json!({
        "apiVersion": "support.compliance.dev/v1alpha1",
        "kind": "SupportStatus",
        "metadata": {"name": name, "ownerReferences": object.metadata.owner_references},
        "spec": object.spec,
    });
    api.patch(&name, &params(), &Patch::Apply(body)).await.map(|_| ())
}

/// Applies `status` to the status subresource of SupportStatus `name`; returns the
/// resourceVersion of the written object.
pub async fn apply_status(
    api: &Api<SupportStatus>,
    name: &str,
    status: &SupportReport,
) -> Result<Option<String>, kube::Error> {
    let body = json!({
        "apiVersion": "support.compliance.dev/v1alpha1",
        "kind": "SupportStatus",
        "metadata": {"name": name},
        "status": status,
    });
    api.patch_status(name, &params(), &Patch::Apply(body)).await.map(|o| o.metadata.resource_version)
}
