//! The pure engine: `evaluate(policy, snapshot, now)`. No client, no clock, no I/O.
//!
//! A policy resolves into rule families (`rules`), each with its settings merged from the
//! preset and the policy (`settings`). Every family turns what it reads into *signals*: a
//! subject's severity as a step function of time (`signal`). The engine groups signals of many
//! nodes with the same cause into one finding, reads each finding's severity at `now`, and takes
//! the next deadline and the upcoming transitions from the steps after `now` (`evaluate`). Time
//! is an input, so evaluating at any instant, past or future, is deterministic. The outcome is
//! typed (`outcome`, `ids`); `report` turns it into the v1alpha1 status.
//!
//! The upgrade plan (`plan`) is a family of outputs: it reads the families' signals and the
//! version family's calendar, and adds steps (no finding).
//!
//! Modules, bottom up: `ids`, `settings`, `signal`, `outcome` → `rules` → `model` →
//! `summary`, `plan`, `evaluate` → `report`.

pub mod evaluate;
mod group;
pub mod ids;
pub mod limits;
pub mod model;
pub mod outcome;
mod plan;
pub mod report;
pub(crate) mod rules;
pub mod selector;
pub mod settings;
pub(crate) mod signal;
mod summary;
mod tally;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use evaluate::{evaluate, evaluate_resolved, invalid};
pub use ids::{RuleId, Subject};
pub use model::Policy;
pub use outcome::{Evaluation, Finding, Transition};
pub use rules::all_rules;
pub use settings::PolicyError;
