//! `support.compliance.dev/v1alpha1`: the API users see. Doc comments become the schema's
//! descriptions (`kubectl explain supportpolicy.spec…`).

mod policy;
mod status;

pub use policy::*;
pub use status::*;
