//! A release calendar from the endoflife.date API (v1): the JSON that
//! `GET /api/v1/products/{product}` serves (`ProductResponse` in the API's OpenAPI document,
//! `api_v1/openapi.yml` of the endoflife-date/endoflife.date repository), turned into the
//! `kubernetesVersion.releases` of a SupportPolicy.
//!
//! Per release cycle: `name` → `minor`, `releaseDate` → `released`, `eolFrom` (the end of
//! standard support on every Kubernetes product there) → `endOfSupport`, `eoesFrom` (the end of
//! extended support: EKS extended support, AKS long-term support) → `ltsEndOfSupport`. The other
//! fields (`isLts`, `ltsFrom`, `eoasFrom`, `isEol`, `latest`, …) are read past: `ltsFrom` is the
//! start of an LTS phase, which a policy has no field for, and the `is*` flags are derived from
//! the dates at the time the JSON was generated.
//!
//! The input is a file a user hands over: everything is bounded (bytes, releases, nesting) and
//! every error names its field (`result.releases[3].eolFrom`) and a reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;

use crate::crd::v1alpha1::{Platform, ReleaseSpec};
use crate::text::snippet;
use crate::version::Minor;

/// The largest input read (the `kubernetes` product is about 20 KB).
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// The most release cycles accepted in one product.
pub const MAX_INPUT_RELEASES: usize = 1000;
/// The most releases written: the CRD's bound on `kubernetesVersion.releases`. Older cycles
/// beyond it are left out (and counted).
pub const MAX_RELEASES: usize = 100;

/// Why a product file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Over [`MAX_INPUT_BYTES`].
    #[error("is larger than {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Syntax(String),
    /// A field is missing or wrong.
    #[error("{field}: {reason}")]
    Field {
        /// Its path, e.g. `result.releases[3].eolFrom`.
        field: String,
        /// Why.
        reason: String,
    },
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> ImportError {
    ImportError::Field { field: field.into(), reason: reason.into() }
}

/// The endoflife.date product that publishes a platform's calendar.
pub fn product_of(platform: Platform) -> Option<&'static str> {
    match platform {
        Platform::Aks => Some("azure-kubernetes-service"),
        Platform::Eks => Some("amazon-eks"),
        Platform::Gke => Some("google-kubernetes-engine"),
        Platform::Upstream => Some("kubernetes"),
        Platform::AksArc | Platform::Custom => None,
    }
}

/// An imported calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The product (`amazon-eks`).
    pub product: String,
    /// When endoflife.date last changed it (`last_modified`).
    pub last_modified: Option<DateTime<FixedOffset>>,
    /// The releases, oldest minor first, at most [`MAX_RELEASES`].
    pub releases: Vec<ReleaseSpec>,
    /// How many older cycles were left out to stay within [`MAX_RELEASES`].
    pub left_out: usize,
}

#[derive(Deserialize)]
struct ProductResponse {
    schema_version: String,
    #[serde(default)]
    last_modified: Option<DateTime<FixedOffset>>,
    result: ProductDetails,
}

#[derive(Deserialize)]
struct ProductDetails {
    name: String,
    releases: Vec<ProductRelease>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductRelease {
    name: String,
    release_date: NaiveDate,
    #[serde(default)]
    eol_from: Option<NaiveDate>,
    #[serde(default)]
    eoes_from: Option<NaiveDate>,
}

/// Reads the JSON of `GET /api/v1/products/{product}` for `platform`.
pub fn import_endoflife(bytes: &[u8], platform: Platform) -> Result<Imported, ImportError> {
    let Some(expected) = product_of(platform) else {
        return Err(field(
            "--platform",
            format!("endoflife.date publishes no calendar for {} (AKS, EKS, GKE or Upstream)", platform.as_str()),
        ));
    };
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(ImportError::TooLarge { max: MAX_INPUT_BYTES });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let response: ProductResponse = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if path != "." => field(path, inner.to_string()),
            _ => ImportError::Syntax(inner.to_string()),
        }
    })?;
    de.end().map_err(|e| ImportError::Syntax(e.to_string()))?;

    let major = response.schema_version.split('.').next().unwrap_or_default();
    if major != "1" {
        return Err(field(
            "schema_version",
            format!("'{}' is not an endoflife.date API v1 schema (1.x.y)", snippet(&response.schema_version)),
        ));
    }
    let product = response.result;
    if product.name != expected {
        return Err(field(
            "result.name",
            format!(
                "'{}' is not the endoflife.date product of {} ({expected})",
                snippet(&product.name),
                platform.as_str()
            ),
        ));
    }
    if product.releases.is_empty() {
        return Err(field("result.releases", "lists no release cycle"));
    }
    if product.releases.len() > MAX_INPUT_RELEASES {
        return Err(field(
            "result.releases",
            format!("{} release cycles, more than {MAX_INPUT_RELEASES}", product.releases.len()),
        ));
    }

    let mut by_minor: BTreeMap<Minor, (usize, ReleaseSpec)> = BTreeMap::new();
    for (i, r) in product.releases.iter().enumerate() {
        let at = |name: &str| format!("result.releases[{i}].{name}");
        let minor: Minor = r.name.parse().map_err(|_| {
            field(at("name"), format!("'{}' is not a Kubernetes minor (MAJOR.MINOR, e.g. 1.31)", snippet(&r.name)))
        })?;
        for (name, end) in [("eolFrom", r.eol_from), ("eoesFrom", r.eoes_from)] {
            if let Some(end) = end.filter(|end| *end <= r.release_date) {
                return Err(field(at(name), format!("{end} is not after releaseDate ({})", r.release_date)));
            }
        }
        if let (Some(eol), Some(eoes)) = (r.eol_from, r.eoes_from) {
            if eoes < eol {
                return Err(field(at("eoesFrom"), format!("{eoes} is before eolFrom ({eol})")));
            }
        }
        let spec = ReleaseSpec {
            minor: minor.to_string(),
            released: r.release_date,
            end_of_support: r.eol_from,
            lts_end_of_support: r.eoes_from,
        };
        if let Some((first, _)) = by_minor.insert(minor, (i, spec)) {
            return Err(field(at("name"), format!("{minor} is listed twice (also result.releases[{first}])")));
        }
    }
    let left_out = by_minor.len().saturating_sub(MAX_RELEASES);
    let releases = by_minor.into_values().skip(left_out).map(|(_, spec)| spec).collect();
    Ok(Imported { product: product.name, last_modified: response.last_modified, releases, left_out })
}

/// The `kubernetesVersion.releases` block for a SupportPolicy's `spec`, one release per line
/// (a refreshed calendar is a reviewable diff). With `policy`, a SupportPolicy of that name
/// holding the platform and the releases: a patch for a kustomize overlay (it replaces the
/// policy's `releases` list) or, alone, a policy with the preset's numbers.
pub fn render(imported: &Imported, platform: Platform, policy: Option<&str>) -> String {
    let mut out = String::new();
    let modified = imported.last_modified.map(|m| format!(" (last modified {})", m.to_rfc3339()));
    let _ = writeln!(
        out,
        "# kubernetesVersion.releases for a SupportPolicy with platform {}, from endoflife.date product {}{}.",
        platform.as_str(),
        imported.product,
        modified.unwrap_or_default()
    );
    let _ = writeln!(out, "# Generated by `support-operator calendar import`; review the diff before applying.");
    if imported.left_out > 0 {
        let _ = writeln!(
            out,
            "# {} older release cycles left out (a policy holds at most {MAX_RELEASES}).",
            imported.left_out
        );
    }
    let indent = match policy {
        Some(name) => {
            let _ = writeln!(out, "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportPolicy");
            let _ = writeln!(out, "metadata:\n  name: {}", serde_json::Value::String(name.to_string()));
            let _ = writeln!(out, "spec:\n  platform: {}", platform.as_str());
            "  "
        }
        None => "",
    };
    let _ = writeln!(out, "{indent}kubernetesVersion:\n{indent}  releases:");
    for r in &imported.releases {
        // Dates quoted: YAML 1.1 tools (kustomize) turn a bare 2026-11-30 into a timestamp.
        let mut line = format!("{{minor: \"{}\", released: \"{}\"", r.minor, r.released);
        if let Some(d) = r.end_of_support {
            let _ = write!(line, ", endOfSupport: \"{d}\"");
        }
        if let Some(d) = r.lts_end_of_support {
            let _ = write!(line, ", ltsEndOfSupport: \"{d}\"");
        }
        let _ = writeln!(out, "{indent}    - {line}}}");
    }
    out
}

#[cfg(test)]
mod tests;
