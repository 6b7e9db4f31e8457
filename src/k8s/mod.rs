//! Everything that talks to the Kubernetes API: cached object types, one-shot gathering for
//! `check`, status writes, events and leader election.

pub mod gather;
pub mod leader;
pub mod objects;
pub mod openreports;
pub mod status;
