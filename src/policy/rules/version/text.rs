//! What the version rules say.

use crate::calendar::{EndReason, Standing};
use crate::crd::v1alpha1::Severity;
use crate::policy::outcome::Component;
use crate::policy::signal::{Fact, Who};
use crate::text::snippet;
use crate::time::when;
use crate::version::Minor;

/// A minor in use and how it stands.
#[derive(Debug)]
pub(super) struct VersionFact {
    pub component: Component,
    pub version: String,
    pub standing: Standing,
    pub upgrade_path_removed: bool,
}

/// A version that cannot be judged.
#[derive(Debug)]
pub(super) struct UnparsedFact {
    component: Component,
    reason: String,
}

impl UnparsedFact {
    pub fn control_plane(reason: String) -> Self {
        UnparsedFact { component: Component::ControlPlane, reason }
    }

    pub fn kubelet(reason: String) -> Self {
        UnparsedFact { component: Component::Kubelet, reason }
    }
}

/// A kubelet outside the skew the control plane supports.
#[derive(Debug)]
pub(super) struct SkewFact {
    pub kubelet: Minor,
    pub control_plane: Minor,
    pub max: u32,
}

fn upgrade_to(target: Option<Minor>) -> String {
    match target {
        Some(m) => format!("{m} or newer"),
        None => "a supported minor".into(),
    }
}

impl Fact for VersionFact {
    fn message(&self, who: &Who<'_>, severity: Severity) -> String {
        let version = snippet(&self.version);
        let (what, action) = match self.component {
            Component::ControlPlane => {
                (format!("The control plane runs Kubernetes {version}"), "Upgrade the control plane")
            }
            Component::Kubelet => {
                (format!("{} run{} kubelet {version}", who.subject(), who.s()), "Upgrade the node pool")
            }
        };
        match &self.standing {
            Standing::Known { minor, end: Some(end), reason, oldest_supported_at_end } => {
                let why = match reason {
                    EndReason::Calendar => "its end of support".to_string(),
                    EndReason::Lts => "the end of its long-term support".to_string(),
                    EndReason::Window(days) => format!("the end of its {days}-day support window"),
                    EndReason::Displaced { n, by } => format!(
                        "the release of {}, after which it is no longer among the {n} newest minors",
                        by.last().map(ToString::to_string).unwrap_or_default()
                    ),
                };
                let target = upgrade_to(*oldest_supported_at_end);
                let end = when(*end);
                if severity == Severity::Unsupported {
                    let mut m =
                        format!("{what}: minor {minor} is out of support since {end} ({why}). {action} to {target}.");
                    if self.upgrade_path_removed {
                        m.push_str(
                            " The minor has been removed from the update servers: the incremental upgrade path is \
                             gone, so upgrade to the latest release (an unhealthy cluster may need a redeploy).",
                        );
                    }
                    m
                } else {
                    let mut m =
                        format!("{what}: minor {minor} reaches {why} on {end}. {action} to {target} before then.");
                    if self.upgrade_path_removed {
                        m.push_str(
                            " After that date the minor is removed from the update servers and only a jump to the \
                             latest release remains.",
                        );
                    }
                    m
                }
            }
            Standing::Known { minor, end: None, .. } => {
                format!("{what}: minor {minor} has no end of support in the calendar.")
            }
            Standing::TooOld { minor, oldest, newest } => format!(
                "{what}: minor {minor} is older than every minor in the calendar (oldest {oldest}) and out of \
                 support. {action} to a supported minor{}.",
                newest.map(|n| format!(" (the calendar's newest is {n})")).unwrap_or_default()
            ),
            Standing::Unknown { minor, newest } => format!(
                "{what}: minor {minor} is not in the calendar{}, so its end of support is unknown. Add it under \
                 spec.kubernetesVersion.releases.",
                newest.map(|n| format!(" (newest {n})")).unwrap_or_default()
            ),
        }
    }
}

impl Fact for UnparsedFact {
    fn message(&self, who: &Who<'_>, _: Severity) -> String {
        match self.component {
            Component::ControlPlane => format!("Cannot tell the control plane's support: {}.", self.reason),
            Component::Kubelet => format!("Cannot tell the kubelet support of {}: {}.", who.describe(), self.reason),
        }
    }
}

impl Fact for SkewFact {
    fn message(&self, who: &Who<'_>, _: Severity) -> String {
        let (kubelet, control_plane) = (self.kubelet, self.control_plane);
        if kubelet > control_plane {
            format!(
                "{} run{} kubelet {kubelet}, newer than the control plane ({control_plane}): a kubelet must not be \
                 newer than the API server. Upgrade the control plane first or replace the nodes.",
                who.subject(),
                who.s()
            )
        } else {
            format!(
                "{} run{} kubelet {kubelet}, {} minors behind the control plane ({control_plane}); at most {} are \
                 supported. Upgrade the node pool.",
                who.subject(),
                who.s(),
                kubelet.minors_behind(control_plane),
                self.max
            )
        }
    }
}
