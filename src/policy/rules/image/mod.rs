//! `nodeImage`: how old each node's image is, from the release date in its version (a label or
//! an annotation) or, where platforms replace nodes to patch, from the node's creation.

mod date;
#[cfg(test)]
mod tests;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Column, Family, InScope, Input, Output, Rules};
use crate::crd::v1alpha1::{NodeImageSource, NodeImageSpec, Severity};
use crate::policy::ids::RuleId;
use crate::policy::outcome::{ImageOrigin, NodeImage};
use crate::policy::settings::{merged, Errors, PolicyError};
use crate::policy::signal::{escalation, Cause, Fact, Signal, Steps, Who};
use crate::snapshot::{NodeField, NodeKeys};
use crate::text::snippet;
use crate::time::{plus_days, start_of_day, when};
use date::{ImageDateError, ImageDateParser};

/// A node image at or past its age limits (Warning, then Unsupported).
pub(crate) const NODE_IMAGE_OUTDATED: RuleId = RuleId::new("NodeImageOutdated");
/// A node whose image age cannot be told.
pub(crate) const NODE_IMAGE_UNKNOWN: RuleId = RuleId::new("NodeImageUnknown");

pub(super) const FAMILY: Family = Family {
    rules: &[NODE_IMAGE_OUTDATED, NODE_IMAGE_UNKNOWN],
    resolve: |sources| {
        let user = sources.spec.node_image.clone().map(with_implied_source);
        let preset = sources.preset.and_then(|p| p.spec.node_image.clone());
        let Some(section) = merged(preset, user.clone()) else { return Ok(None) };
        let patterns = match (&section.date_pattern, sources.preset) {
            (Some(p), _) => vec![p.clone()],
            (None, Some(preset)) => preset.node_image_date_patterns.clone(),
            (None, None) => Vec::new(),
        };
        let resolving = Resolving {
            both: user.as_ref().is_some_and(|u| u.label.is_some() && u.annotation.is_some()),
            explicit: user.and_then(|u| u.source),
            section,
            patterns,
        };
        Ok(Some(Box::new(ImageRules::try_from(resolving)?)))
    },
};

/// A label or an annotation named in the policy says where the version is, whatever the
/// preset reads.
fn with_implied_source(mut s: NodeImageSpec) -> NodeImageSpec {
    s.source = s.source.or(if s.label.is_some() {
        Some(NodeImageSource::Label)
    } else if s.annotation.is_some() {
        Some(NodeImageSource::Annotation)
    } else {
        None
    });
    s
}

/// Where the image version comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ImageSource {
    Label(String),
    Annotation(String),
    NodeCreation,
}

/// The node image settings, resolved.
#[derive(Debug, Clone)]
struct ImageRules {
    source: ImageSource,
    parser: ImageDateParser,
    warn_after_days: Option<u32>,
    unsupported_after_days: Option<u32>,
}

/// The merged section and what the resolution needs besides.
struct Resolving {
    section: NodeImageSpec,
    patterns: Vec<String>,
    /// The policy sets both a label and an annotation.
    both: bool,
    /// The source the policy names (explicitly or through its label or annotation).
    explicit: Option<NodeImageSource>,
}

impl TryFrom<Resolving> for ImageRules {
    type Error = Vec<PolicyError>;

    fn try_from(r: Resolving) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        let s = r.section;
        if r.both {
            errors.push("spec.nodeImage", "set label or annotation, not both");
        }
        let source = match s.source {
            Some(NodeImageSource::Label) => s.label.clone().map(ImageSource::Label),
            Some(NodeImageSource::Annotation) => s.annotation.clone().map(ImageSource::Annotation),
            Some(NodeImageSource::NodeCreation) => Some(ImageSource::NodeCreation),
            None => None,
        };
        let source = source.unwrap_or_else(|| {
            match r.explicit {
                Some(NodeImageSource::Annotation) => {
                    errors.push("spec.nodeImage.annotation", "required with source: Annotation")
                }
                Some(NodeImageSource::Label) => errors.push("spec.nodeImage.label", "required with source: Label"),
                _ => errors.push("spec.nodeImage.source", "required: set label, annotation or source: NodeCreation"),
            }
            ImageSource::NodeCreation
        });
        if r.patterns.is_empty() && source != ImageSource::NodeCreation {
            errors
                .push("spec.nodeImage.datePattern", "required when the image version comes from a label or annotation");
        }
        let parser = ImageDateParser::new(&r.patterns).unwrap_or_else(|(_, e)| {
            errors.push("spec.nodeImage.datePattern", e.to_string());
            ImageDateParser::default()
        });
        let (warn, unsupported) = (s.warn_after_days, s.unsupported_after_days);
        errors.pair("spec.nodeImage", warn, unsupported);
        if warn.is_none() && unsupported.is_none() {
            errors.push("spec.nodeImage.warnAfterDays", "set warnAfterDays or unsupportedAfterDays");
        }
        errors.into_result(ImageRules { source, parser, warn_after_days: warn, unsupported_after_days: unsupported })
    }
}

/// Why a node's image age cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unreadable {
    #[error("the node has no creationTimestamp")]
    NoCreation,
    #[error("the node has no {kind} {key}")]
    Missing { kind: &'static str, key: String },
    #[error("no date pattern matches its image version '{0}'")]
    NoMatch(String),
    #[error("{0}")]
    NotADay(ImageDateError),
}

/// What a node's image tells, shared by every node with the same image: its release day, the
/// signal's steps and its fact.
#[derive(Clone)]
struct Judged {
    image: ImageOrigin,
    released: DateTime<Utc>,
    steps: Steps,
    fact: Arc<ImageFact>,
}

/// The versions judged so far (each distinct one once, by content), and the last one read in
/// each pool (by address: a pool's nodes share one interned version).
#[derive(Default)]
struct Versions<'a> {
    judged: Vec<Result<Judged, Unreadable>>,
    by_content: HashMap<&'a str, usize>,
    last: Vec<Option<(&'a Arc<str>, usize)>>,
}

/// A node's image read: judged before (an index in `Versions::judged`) or just now.
enum Read {
    Judged(usize),
    Now(Result<Judged, Unreadable>),
}

impl ImageRules {
    fn judge(&self, image: ImageOrigin, released: DateTime<Utc>) -> Judged {
        let warn_at = self.warn_after_days.map(|d| plus_days(released, d));
        let unsupported_at = self.unsupported_after_days.map(|d| plus_days(released, d));
        let fact = Arc::new(ImageFact { image: image.clone(), date: released, warn_at, unsupported_at });
        Judged { image, released, steps: escalation(warn_at, unsupported_at).into(), fact }
    }

    /// The image of `node`, judging each distinct version once (a pool's nodes share one).
    fn read<'a>(&self, node: &InScope<'a>, label: &Column<'_, 'a>, versions: &mut Versions<'a>) -> Read {
        let (kind, key, value) = match &self.source {
            ImageSource::NodeCreation => {
                return Read::Now(match node.created {
                    Some(created) => Ok(self.judge(ImageOrigin::NodeCreation, created)),
                    None => Err(Unreadable::NoCreation),
                });
            }
            ImageSource::Label(key) => ("label", key, label.get(node)),
            ImageSource::Annotation(key) => ("annotation", key, node.node.annotations.shared(key)),
        };
        let Some(value) = value else { return Read::Now(Err(Unreadable::Missing { kind, key: snippet(key) })) };
        let pool = node.pool_id as usize;
        if let Some(Some((last, i))) = versions.last.get(pool) {
            if std::ptr::eq(*last, value) || Arc::ptr_eq(last, value) {
                return Read::Judged(*i);
            }
        }
        let judged = &mut versions.judged;
        let i = *versions.by_content.entry(&**value).or_insert_with(|| {
            judged.push(match self.parser.parse(value) {
                Ok(date) => Ok(self.judge(ImageOrigin::Version(value.clone()), start_of_day(date))),
                Err(ImageDateError::NoMatch(v)) => Err(Unreadable::NoMatch(v)),
                Err(e) => Err(Unreadable::NotADay(e)),
            });
            judged.len() - 1
        });
        if versions.last.len() <= pool {
            versions.last.resize(pool + 1, None);
        }
        versions.last[pool] = Some((value, i));
        Read::Judged(i)
    }
}

impl Rules for ImageRules {
    fn node_keys(&self, keys: &mut NodeKeys) {
        match &self.source {
            ImageSource::Label(key) => {
                keys.label(key);
            }
            ImageSource::Annotation(key) => {
                keys.annotation(key);
            }
            ImageSource::NodeCreation => {}
        }
    }

    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        let mut versions = Versions::default();
        let label = input.columns.column(match &self.source {
            ImageSource::Label(key) => key,
            _ => "",
        });
        let mut unknown: HashMap<String, (Arc<str>, Arc<UnknownFact>)> = HashMap::new();
        // The samples are written after the signals, in a loop of their own: copying a node's
        // name reads the node's memory, and a short loop has many such reads in flight.
        let mut images = Vec::with_capacity(input.nodes.len());
        for node in input.nodes {
            let pool = node.pool;
            let now;
            let read = match self.read(node, &label, &mut versions) {
                Read::Judged(i) => &versions.judged[i],
                Read::Now(read) => {
                    now = read;
                    &now
                }
            };
            match read {
                Ok(Judged { image, released, steps, fact }) => {
                    let cause = match image {
                        ImageOrigin::Version(v) => Cause::Value(v.clone()),
                        ImageOrigin::NodeCreation => Cause::Rule,
                    };
                    images.push((node.name, pool, image.clone(), *released));
                    let signal = Signal::node(NODE_IMAGE_OUTDATED, node.name, pool, cause, fact.clone());
                    out.signals.push(signal.steps(steps.clone()).origin(Some(*released)));
                }
                Err(reason) => {
                    if node.problems.iter().any(|p| matches!(p.field, NodeField::Labels | NodeField::Annotations)) {
                        continue; // unreadable labels are reported as a problem of the node
                    }
                    let (reason, fact) = unknown
                        .entry(reason.to_string())
                        .or_insert_with_key(|r| (Arc::from(r.as_str()), Arc::new(UnknownFact { reason: r.clone() })))
                        .clone();
                    let signal = Signal::node(NODE_IMAGE_UNKNOWN, node.name, pool, Cause::Value(reason), fact);
                    out.signals.push(signal.base(Severity::Info));
                }
            }
        }
        out.image_nodes.extend(images.iter().map(|(name, ..)| *name));
        out.samples.node_images.extend(images.into_iter().map(|(name, pool, image, released)| NodeImage {
            node: name.clone(),
            pool: pool.clone(),
            image,
            released,
            warning: false,
        }));
    }
}

/// A node's image and its age limits.
#[derive(Debug)]
struct ImageFact {
    image: ImageOrigin,
    date: DateTime<Utc>,
    warn_at: Option<DateTime<Utc>>,
    unsupported_at: Option<DateTime<Utc>>,
}

impl Fact for ImageFact {
    fn message(&self, who: &Who<'_>, severity: Severity) -> String {
        let (age, action) = match &self.image {
            ImageOrigin::NodeCreation => (
                format!("{} created on {} (its image is at least that old)", who.subject(), when(self.date)),
                "Replace the nodes (upgrade or roll the pool)",
            ),
            ImageOrigin::Version(image) => (
                format!(
                    "{} run{} node image {}, released on {}",
                    who.subject(),
                    who.s(),
                    snippet(image),
                    self.date.date_naive()
                ),
                "Upgrade the node image",
            ),
        };
        match (severity, self.unsupported_at) {
            (Severity::Unsupported, Some(u)) => format!("{age}: out of support since {}. {action}.", when(u)),
            (_, Some(u)) => format!("{age}: out of support from {}. {action} before then.", when(u)),
            (_, None) => format!(
                "{age}: older than the policy's {} days. {action}.",
                self.warn_at.map(|w| (w - self.date).num_days()).unwrap_or_default()
            ),
        }
    }
}

/// Why a node's image age is unknown.
#[derive(Debug)]
struct UnknownFact {
    reason: String,
}

impl Fact for UnknownFact {
    fn message(&self, who: &Who<'_>, _: Severity) -> String {
        format!("Cannot tell the node image age of {}: {}.", who.describe(), self.reason)
    }
}
