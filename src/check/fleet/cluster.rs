//! One cluster of the fleet: connect through its context, find its policies, read it once,
//! evaluate each policy. Every failure becomes a row; the whole is bounded by a deadline.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

use super::render::printable;
use super::{PolicySource, Row, ERROR_CHARS, MAX_POLICIES_PER_CLUSTER};
use crate::crd::v1alpha1::{LeaseReference, SupportPolicy};
use crate::k8s::gather;
use crate::policy::{self, report, Policy};
use crate::snapshot::NodeKeys;

/// The rows of one cluster, within `timeout`: past it, one `Unknown` row says so.
pub(super) async fn check(
    kubeconfig: &Kubeconfig,
    context: &str,
    source: &PolicySource,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Vec<Row> {
    let rows = async {
        match client(kubeconfig, context, timeout).await {
            Ok(client) => evaluate(&client, context, source, now).await,
            Err(error) => vec![Row::failed(context, given_name(source), error)],
        }
    };
    match tokio::time::timeout(timeout, rows).await {
        Ok(rows) => rows,
        Err(_) => vec![Row::failed(
            context,
            given_name(source),
            format!("no answer within {} s (--cluster-timeout-seconds)", timeout.as_secs()),
        )],
    }
}

fn given_name(source: &PolicySource) -> Option<String> {
    match source {
        PolicySource::Given(p) => p.metadata.name.clone(),
        PolicySource::Named(n) => Some(n.clone()),
        PolicySource::InCluster => None,
    }
}

/// An error and its causes, one line, capped: kube's errors put the useful part (`Connection
/// refused`) in their sources.
fn reason(what: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{what}: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    crate::text::cap(&printable(&text), ERROR_CHARS)
}

async fn client(kubeconfig: &Kubeconfig, context: &str, timeout: Duration) -> Result<Client, String> {
    let options = KubeConfigOptions { context: Some(context.to_string()), ..Default::default() };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| reason("cannot use the context", &e))?;
    config.connect_timeout = Some(timeout.min(Duration::from_secs(10)));
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let agent = format!("support-operator/{} check", env!("CARGO_PKG_VERSION"));
    if let Ok(value) = http::HeaderValue::from_str(&agent) {
        config.headers.push((http::header::USER_AGENT, value));
    }
    Client::try_from(config).map_err(|e| reason("cannot build a client for the context", &e))
}

/// A policy of the cluster that cannot be read: its name and why.
type Unreadable = (Option<String>, String);

/// The cluster's policies, each readable or not.
async fn policies(
    client: &Client,
    context: &str,
    source: &PolicySource,
) -> Result<Vec<Result<SupportPolicy, Unreadable>>, Row> {
    let failed = |policy: Option<String>, error: String| Row::failed(context, policy, error);
    match source {
        PolicySource::Given(p) => Ok(vec![Ok(p.as_ref().clone())]),
        PolicySource::Named(name) => {
            let api: Api<SupportPolicy> = Api::all(client.clone());
            match api.get_opt(name).await {
                Ok(Some(p)) => Ok(vec![Ok(p)]),
                Ok(None) => Err(failed(Some(name.clone()), format!("no SupportPolicy {name} in this cluster"))),
                Err(e) => Err(failed(Some(name.clone()), reason(&format!("cannot read SupportPolicy {name}"), &e))),
            }
        }
        PolicySource::InCluster => {
            // Read as plain objects: one malformed policy is a row, not a failed list.
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<SupportPolicy>(&()));
            let list = match api.list(&ListParams::default().limit(MAX_POLICIES_PER_CLUSTER as u32)).await {
                Ok(list) => list,
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Err(failed(None, "the SupportPolicy API is not served (CRDs not installed)".into()))
                }
                Err(e) => return Err(failed(None, reason("cannot list SupportPolicies", &e))),
            };
            if list.metadata.continue_.as_deref().is_some_and(|c| !c.is_empty()) {
                eprintln!(
                    "warning: context {}: more than {MAX_POLICIES_PER_CLUSTER} SupportPolicies, only the first \
                     {MAX_POLICIES_PER_CLUSTER} are evaluated",
                    printable(context)
                );
            }
            if list.items.is_empty() {
                return Err(failed(None, "no SupportPolicy in this cluster".into()));
            }
            let mut out: Vec<Result<SupportPolicy, Unreadable>> = list
                .items
                .into_iter()
                .take(MAX_POLICIES_PER_CLUSTER)
                .map(|item| {
                    let name = item.metadata.name.clone();
                    let value = serde_json::to_value(&item).unwrap_or_default();
                    serde_path_to_error::deserialize::<_, SupportPolicy>(value).map_err(|e| {
                        let error = format!("SupportPolicy cannot be read: {}: {}", e.path(), e.inner());
                        (name.clone(), crate::text::cap(&printable(&error), ERROR_CHARS))
                    })
                })
                .collect();
            out.sort_by_key(sort_key);
            Ok(out)
        }
    }
}

fn sort_key(p: &Result<SupportPolicy, Unreadable>) -> Option<String> {
    match p {
        Ok(p) => p.metadata.name.clone(),
        Err((name, _)) => name.clone(),
    }
}

/// Every row of the cluster (without the deadline).
async fn evaluate(client: &Client, context: &str, source: &PolicySource, now: DateTime<Utc>) -> Vec<Row> {
    let policies = match policies(client, context, source).await {
        Ok(p) => p,
        Err(row) => return vec![row],
    };
    let resolved: Vec<Result<(SupportPolicy, Result<Policy, _>), Unreadable>> =
        policies.into_iter().map(|p| p.map(|p| (Policy::resolve(&p.spec), p)).map(|(r, p)| (p, r))).collect();
    let mut leases: Vec<LeaseReference> = resolved
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(Policy::leases)
        .collect();
    leases.sort();
    leases.dedup();
    let mut keys = NodeKeys::none();
    for p in resolved.iter().filter_map(|r| r.as_ref().ok()).filter_map(|(_, r)| r.as_ref().ok()) {
        keys.extend(&p.node_keys());
    }
    let snapshot = match gather::live_snapshot_reading(client, &leases, &keys, &|_| {}).await {
        Ok(s) => s,
        Err(e) => return vec![Row::failed(context, given_name(source), reason("cannot read the cluster", &e))],
    };
    resolved
        .into_iter()
        .map(|r| match r {
            Err((name, error)) => Row::failed(context, name, error),
            Ok((policy, resolved)) => {
                let evaluation = match resolved {
                    Ok(p) => policy::evaluate_resolved(&p, &snapshot, now),
                    Err(errors) => policy::invalid(errors),
                };
                let error = (!evaluation.policy_errors.is_empty()).then(|| {
                    let text: Vec<String> = evaluation.policy_errors.iter().map(ToString::to_string).collect();
                    crate::text::cap(&printable(&format!("the policy is invalid: {}", text.join("; "))), ERROR_CHARS)
                });
                let status = report::report(&evaluation, None, policy.metadata.generation, now);
                Row {
                    context: context.to_string(),
                    policy: policy.metadata.name.clone(),
                    status: Some(report::status_object(&policy, status)),
                    error,
                }
            }
        })
        .collect()
}
