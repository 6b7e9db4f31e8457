//! support-operator: makes managed-Kubernetes support policies visible and alertable.

pub mod crd;
