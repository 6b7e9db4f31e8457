//! Tests of the Kubernetes API emulator (this crate), driven through
//! `kube::Api`, `kube::runtime::watcher` and `kube::Discovery` as an operator would.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    VersionMatch, WatchEvent, WatchParams,
};
use kube::core::Status;
use kube::discovery::{Discovery, Scope};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use stand_in::{Platform, SupportPolicy, SupportPolicySpec, SupportReport, SupportStatus, SupportStatusSpec, Verdict};
use test_apiserver::{eventually, ApiServer, Fault, Gvr, ResourceDef};

/// Two custom resources shaped like the ones the emulator registers by default (the operator's
/// own types are checked against the registrations in the operator's tests).
mod stand_in {
    use kube::CustomResource;
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub enum Platform {
        #[default]
        #[serde(rename = "AKS")]
        Aks,
        #[serde(rename = "EKS")]
        Eks,
        #[serde(rename = "GKE")]
        Gke,
    }

    #[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
    #[kube(group = "support.compliance.dev", version = "v1alpha1", kind = "SupportPolicy")]
    pub struct SupportPolicySpec {
        pub platform: Platform,
    }

    #[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Verdict {
        Supported,
        AtRisk,
        Unsupported,
    }

    #[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
    #[kube(group = "support.compliance.dev", version = "v1alpha1", kind = "SupportStatus", plural = "supportstatuses")]
    #[kube(status = "SupportReport")]
    pub struct SupportStatusSpec {
        pub policy: String,
    }

    #[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
    pub struct SupportReport {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub verdict: Option<Verdict>,
        #[serde(default, rename = "observedGeneration", skip_serializing_if = "Option::is_none")]
        pub observed_generation: Option<i64>,
    }
}

const WAIT: Duration = Duration::from_secs(10);

// ----- helpers ---------------------------------------------------------------------------

fn policy(name: &str, platform: Platform) -> SupportPolicy {
    SupportPolicy::new(name, SupportPolicySpec { platform })
}

fn status_obj(name: &str, policy: &str) -> SupportStatus {
    SupportStatus::new(name, SupportStatusSpec { policy: policy.to_owned() })
}

fn node(name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"nodeInfo": {"kubeletVersion": "v1.31.4"}},
    })
}

fn typed_node(name: &str, labels: &[(&str, &str)]) -> Node {
    serde_json::from_value(node(name, labels)).expect("a valid Node")
}

/// The Status of an API error, or a panic naming what was expected.
fn api_error<T: std::fmt::Debug>(res: Result<T, kube::Error>) -> Box<Status> {
    match res {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next item of a stream, failing the test if none arrives in time.
async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a stream item within the timeout")
        .expect("the stream did not end")
}

fn rv<K: Resource>(obj: &K) -> String {
    obj.meta().resource_version.clone().expect("a resourceVersion")
}

fn apply_status(name: &str, status: Value) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "support.compliance.dev/v1alpha1",
        "kind": "SupportStatus",
        "metadata": {"name": name},
        "status": status,
    }))
}

fn apply_spec(name: &str, policy: &str) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "support.compliance.dev/v1alpha1",
        "kind": "SupportStatus",
        "metadata": {"name": name},
        "spec": {"policy": policy},
    }))
}

fn managers(obj: &impl Resource) -> Vec<(String, String, Option<String>)> {
    obj.meta()
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default(), m.subresource.clone())
        })
        .collect()
}

// ----- version and discovery ----------------------------------------------------------------

#[tokio::test]
async fn apiserver_version_is_configurable() {
    let server = ApiServer::builder().git_version("v1.30.7").start().await;
    let client = server.client();
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.git_version, "v1.30.7");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "30"));

    server.set_git_version("v1.31.4");
    let info = client.apiserver_version().await.unwrap();
    assert_eq!((info.git_version.as_str(), info.minor.as_str()), ("v1.31.4", "31"));
}

fn assert_discovered(discovery: &Discovery) {
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("support.compliance.dev", "v1alpha1", "SupportPolicy"))
        .expect("SupportPolicy is discovered");
    assert_eq!(ar.plural, "supportpolicies");
    assert_eq!(caps.scope, Scope::Cluster);
    assert!(caps.subresources.is_empty(), "SupportPolicy has no status subresource");
    let (_, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("support.compliance.dev", "v1alpha1", "SupportStatus"))
        .expect("SupportStatus is discovered");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));

    let resource = discovery.get("resource.k8s.io").expect("the alpha group");
    let versions: Vec<&str> = resource.versions().collect();
    assert!(versions.contains(&"v1alpha3"), "{versions:?}");
    assert_eq!(resource.preferred_version_or_latest(), "v1beta1");

    let (nodes, caps) = discovery.resolve_gvk(&GroupVersionKind::gvk("", "v1", "Node")).expect("core nodes");
    assert_eq!((nodes.plural.as_str(), caps.scope.clone()), ("nodes", Scope::Cluster));
    let (leases, caps) =
        discovery.resolve_gvk(&GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease")).expect("leases");
    assert_eq!((leases.plural.as_str(), caps.scope), ("leases", Scope::Namespaced));
}

fn with_alpha_group() -> test_apiserver::ApiServerBuilder {
    ApiServer::builder()
        .resource(ResourceDef::cluster("resource.k8s.io", "v1alpha3", "deviceclasses", "DeviceClass"))
        .resource(ResourceDef::cluster("resource.k8s.io", "v1beta1", "deviceclasses", "DeviceClass"))
}

#[tokio::test]
async fn discovery_finds_the_crd_group_and_an_alpha_group() {
    let server = with_alpha_group().start().await;
    let legacy = Discovery::new(server.client()).run().await.unwrap();
    assert_discovered(&legacy);

    let aggregated = Discovery::new(server.client()).run_aggregated().await.unwrap();
    assert_discovered(&aggregated);
    assert!(
        server
            .count(|r| r.path == "/apis" && r.accept.as_deref().is_some_and(|a| a.contains("as=APIGroupDiscoveryList")))
            >= 1
    );
}

#[tokio::test]
async fn discovery_falls_back_to_legacy_documents_when_aggregation_is_off() {
    let server = with_alpha_group().aggregated_discovery(false).start().await;
    let discovery = Discovery::new(server.client()).run().await.unwrap();
    assert_discovered(&discovery);
    // An old server answers the aggregated Accept header with the legacy documents, in which
    // kube's aggregated discovery finds no group.
    let aggregated = Discovery::new(server.client()).run_aggregated().await;
    assert!(aggregated.map_or(true, |d| d.groups().next().is_none()), "no aggregated discovery document is served");
    assert!(
        server
            .count(|r| r.path == "/apis" && r.accept.as_deref().is_some_and(|a| a.contains("as=APIGroupDiscoveryList")))
            >= 1
    );
}

// ----- CRUD ---------------------------------------------------------------------------------

#[tokio::test]
async fn create_get_list_and_update_conflict() {
    let server = ApiServer::start().await;
    let api: Api<SupportPolicy> = Api::all(server.client());

    let created = api.create(&PostParams::default(), &policy("p", Platform::Aks)).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(rv(&created), server.resource_version().to_string());

    let dup = api_error(api.create(&PostParams::default(), &policy("p", Platform::Aks)).await);
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let got = api.get("p").await.unwrap();
    assert_eq!(got.spec.platform, Platform::Aks);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.metadata.resource_version, Some(server.resource_version().to_string()));

    // A concurrent writer bumps the resourceVersion.
    let mut theirs = got.clone();
    theirs.spec.platform = Platform::Eks;
    api.replace("p", &PostParams::default(), &theirs).await.unwrap();

    let mut stale = got;
    stale.spec.platform = Platform::Gke;
    let conflict = api_error(api.replace("p", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(conflict.message.contains("the object has been modified"), "{}", conflict.message);
    assert_eq!(api.get("p").await.unwrap().spec.platform, Platform::Eks);

    // Custom resources refuse an update without a resourceVersion…
    stale.metadata.resource_version = None;
    let unversioned = api_error(api.replace("p", &PostParams::default(), &stale).await);
    assert_eq!((unversioned.code, unversioned.reason.as_str()), (422, "Invalid"));
    assert!(unversioned.message.contains("must be specified for an update"), "{}", unversioned.message);

    // …built-in resources update unconditionally.
    let nodes: Api<Node> = Api::all(server.client());
    let n = nodes.create(&PostParams::default(), &typed_node("n", &[])).await.unwrap();
    let mut unconditional = typed_node("n", &[("agentpool", "b")]);
    unconditional.metadata.resource_version = None;
    let replaced = nodes.replace("n", &PostParams::default(), &unconditional).await.unwrap();
    assert_eq!(replaced.labels().get("agentpool").map(String::as_str), Some("b"));
    assert_eq!(replaced.metadata.uid, n.metadata.uid);
    assert_ne!(rv(&replaced), rv(&n));
}

#[tokio::test]
async fn direct_store_helpers_round_trip_typed_objects() {
    let server = ApiServer::start().await;
    let stored = server.put(&typed_node("n1", &[("agentpool", "a")]));
    assert!(stored.metadata.uid.is_some() && stored.metadata.creation_timestamp.is_some());
    let rv_before = server.resource_version();
    // Putting identical content again is a no-op.
    server.put(&typed_node("n1", &[("agentpool", "a")]));
    assert_eq!(server.resource_version(), rv_before);

    let through_api = Api::<Node>::all(server.client()).get("n1").await.unwrap();
    assert_eq!(through_api.metadata.uid, stored.metadata.uid);
    assert_eq!(server.get::<Node>(None, "n1").map(|n| n.metadata.uid), Some(stored.metadata.uid));
    assert_eq!(server.list::<Node>(None).len(), 1);
    assert!(server.delete::<Node>(None, "n1"));
    assert!(!server.delete::<Node>(None, "n1"));
    assert!(server.get::<Node>(None, "n1").is_none());
}

#[tokio::test]
async fn metadata_watcher_streams_partial_objects() {
    let server = ApiServer::start().await;
    server.apply_object(node("a", &[("agentpool", "x")]));
    let api: Api<kube::core::PartialObjectMeta<Node>> = Api::all(server.client());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    match next(&mut stream).await.unwrap() {
        watcher::Event::InitApply(m) => assert_eq!(m.labels().get("agentpool").map(String::as_str), Some("x")),
        other => panic!("expected InitApply, got {other:?}"),
    }
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitDone));
    server.apply_object(node("b", &[]));
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(m) => assert_eq!(m.name_any(), "b"),
        other => panic!("expected Apply, got {other:?}"),
    }
    let metadata_only =
        |r: &test_apiserver::RequestRecord| r.accept.as_deref().is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    assert!(server.count(|r| r.verb == "list" && metadata_only(r)) == 1);
    assert!(server.count(|r| r.verb == "watch" && metadata_only(r)) >= 1);
}

#[tokio::test]
async fn dropping_the_server_shuts_it_down() {
    let server = ApiServer::start().await;
    let addr = server.addr();
    let api: Api<Node> = Api::all(server.client());
    let mut stream = api.watch(&WatchParams::default().disable_bookmarks(), "0").await.unwrap().boxed();
    drop(server);
    // The open watch ends…
    let ended = tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = stream.next().await {} }).await;
    assert!(ended.is_ok(), "the watch stream ends");
    // …and the port is closed.
    eventually(WAIT, "the port is closed", || async { tokio::net::TcpStream::connect(addr).await.is_err() }).await;
}

#[tokio::test]
async fn create_validates_names_and_generates_them() {
    let server = ApiServer::start().await;
    let api: Api<SupportPolicy> = Api::all(server.client());

    let mut generated = policy("", Platform::Aks);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("edge-".to_owned());
    let created = api.create(&PostParams::default(), &generated).await.unwrap();
    let name = created.name_any();
    assert!(name.starts_with("edge-") && name.len() == "edge-".len() + 5, "{name}");

    let invalid = api_error(api.create(&PostParams::default(), &policy("Not_Valid", Platform::Aks)).await);
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    let mut unnamed = policy("", Platform::Aks);
    unnamed.metadata.name = None;
    let missing = api_error(api.create(&PostParams::default(), &unnamed).await);
    assert_eq!(missing.code, 422);
}

#[tokio::test]
async fn errors_are_status_objects_and_unknown_paths_are_404() {
    let server = ApiServer::start().await;
    let client = server.client();
    let api: Api<Node> = Api::all(client.clone());
    let missing = api_error(api.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "nodes \"nope\" not found");
    assert!(api.get_opt("nope").await.unwrap().is_none());

    let unknown =
        client.request::<Value>(hyper::Request::get("/apis/example.com/v1/widgets").body(Vec::new()).unwrap()).await;
    let unknown = api_error(unknown);
    assert_eq!((unknown.code, unknown.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn namespaced_resources_are_listed_per_namespace_and_across_namespaces() {
    let server = ApiServer::start().await;
    let client = server.client();
    for ns in ["azure-arc", "kube-node-lease"] {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "heartbeat"},
            "spec": {"renewTime": "2025-01-01T00:00:00.000000Z"},
        }))
        .unwrap();
        Api::<Lease>::namespaced(client.clone(), ns).create(&PostParams::default(), &lease).await.unwrap();
    }
    let all = Api::<Lease>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    let one = Api::<Lease>::namespaced(client.clone(), "azure-arc").list(&ListParams::default()).await.unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].namespace().as_deref(), Some("azure-arc"));

    let mut wrong_ns: Lease = serde_json::from_value(json!({"metadata": {"name": "x", "namespace": "other"}})).unwrap();
    wrong_ns.metadata.namespace = Some("other".to_owned());
    let err = api_error(
        Api::<Lease>::namespaced(client.clone(), "azure-arc").create(&PostParams::default(), &wrong_ns).await,
    );
    assert_eq!(err.code, 400);
    assert!(server.malformed_requests() >= 1);
}

// ----- list ---------------------------------------------------------------------------------

#[tokio::test]
async fn list_filters_by_label_and_field_selectors() {
    let server = ApiServer::start().await;
    for (name, pool) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        server.apply_object(node(name, &[("agentpool", pool)]));
    }
    server.apply_object(node("bare", &[]));
    let api: Api<Node> = Api::all(server.client());
    let names = |l: kube::api::ObjectList<Node>| -> Vec<String> { l.items.iter().map(ResourceExt::name_any).collect() };

    let pool_a = api.list(&ListParams::default().labels("agentpool=a")).await.unwrap();
    assert_eq!(names(pool_a), ["a1", "a2"]);
    let not_a = api.list(&ListParams::default().labels("agentpool notin (a)")).await.unwrap();
    assert_eq!(names(not_a), ["b1", "bare"]);
    let labelled = api.list(&ListParams::default().labels("agentpool,agentpool!=b")).await.unwrap();
    assert_eq!(names(labelled), ["a1", "a2"]);
    let by_name = api.list(&ListParams::default().fields("metadata.name=b1")).await.unwrap();
    assert_eq!(names(by_name), ["b1"]);

    let unsupported = api_error(api.list(&ListParams::default().fields("spec.podCIDR=x")).await);
    assert_eq!(unsupported.code, 400);
    let bad_selector = api_error(api.list(&ListParams::default().labels("a in (b")).await);
    assert_eq!(bad_selector.code, 400);
}

#[tokio::test]
async fn list_pages_are_consistent_snapshots() {
    let server = ApiServer::start().await;
    for i in 0..25 {
        server.apply_object(node(&format!("n{i:02}"), &[]));
    }
    let api: Api<Node> = Api::all(server.client());
    let first = api.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.metadata.remaining_item_count, Some(15));
    let snapshot_rv = first.metadata.resource_version.clone();

    // Changes after the first page are not part of this list.
    server.apply_object(node("n00a", &[]));
    server.delete_object(&Gvr::nodes(), None, "n20");

    let mut names: Vec<String> = first.items.iter().map(ResourceExt::name_any).collect();
    let mut token = first.metadata.continue_;
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api.list(&ListParams::default().limit(10).continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version, snapshot_rv);
        names.extend(page.items.iter().map(ResourceExt::name_any));
        token = page.metadata.continue_;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("n{i:02}")).collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn list_at_an_exact_resource_version_reads_the_past() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    api.create(&PostParams::default(), &typed_node("old", &[])).await.unwrap();
    let then = server.resource_version().to_string();
    api.create(&PostParams::default(), &typed_node("new", &[])).await.unwrap();
    api.delete("old", &DeleteParams::default()).await.unwrap();

    let past = api.list(&ListParams::default().at(&then).matching(VersionMatch::Exact)).await.unwrap();
    let names: Vec<String> = past.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["old"]);
    assert_eq!(past.metadata.resource_version.as_deref(), Some(then.as_str()));

    server.expire_resource_versions();
    let gone = api_error(api.list(&ListParams::default().at(&then).matching(VersionMatch::Exact)).await);
    assert_eq!((gone.code, gone.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn expired_continue_token_is_410() {
    let server = ApiServer::start().await;
    for i in 0..3 {
        server.apply_object(node(&format!("n{i}"), &[]));
    }
    let api: Api<Node> = Api::all(server.client());
    let first = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = first.metadata.continue_.expect("more pages");
    server.expire_resource_versions();
    let err = api_error(api.list(&ListParams::default().limit(1).continue_token(&token)).await);
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn metadata_only_lists_return_partial_objects() {
    let server = ApiServer::start().await;
    server.apply_object(node("n1", &[("agentpool", "a")]));
    let api: Api<Node> = Api::all(server.client());
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].labels().get("agentpool").map(String::as_str), Some("a"));
    assert_eq!(list.items[0].types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
}

// ----- patch and subresources ------------------------------------------------------------------

#[tokio::test]
async fn merge_and_json_patches() {
    let server = ApiServer::start().await;
    let api: Api<SupportPolicy> = Api::all(server.client());
    api.create(&PostParams::default(), &policy("p", Platform::Aks)).await.unwrap();

    let merged = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "platform"}}, "spec": {"platform": "EKS"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.labels().get("team").map(String::as_str), Some("platform"));
    assert_eq!(merged.spec.platform, Platform::Eks);

    let removed = api
        .patch("p", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": null}}})))
        .await
        .unwrap();
    assert!(!removed.labels().contains_key("team"));

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/platform", "value": "EKS"},
        {"op": "replace", "path": "/spec/platform", "value": "GKE"},
    ]))
    .unwrap();
    let patched = api.patch("p", &PatchParams::default(), &Patch::<Value>::Json(ops)).await.unwrap();
    assert_eq!(patched.spec.platform, Platform::Gke);

    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/platform", "value": "AKS"}])).unwrap();
    let err = api_error(api.patch("p", &PatchParams::default(), &Patch::<Value>::Json(failing)).await);
    assert_eq!(err.code, 422);

    // A merge patch carrying a stale resourceVersion is an optimistic-lock conflict.
    let stale = api_error(
        api.patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"platform": "AKS"}})),
        )
        .await,
    );
    assert_eq!(stale.code, 409);

    // Custom resources do not support strategic merge patch, as on a real server.
    let smp = api_error(
        api.patch("p", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"platform": "AKS"}}))).await,
    );
    assert_eq!(smp.code, 415);

    // Built-in resources accept it (served as a merge patch).
    let nodes: Api<Node> = Api::all(server.client());
    nodes.create(&PostParams::default(), &typed_node("n1", &[])).await.unwrap();
    let n = nodes
        .patch("n1", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"unschedulable": true}})))
        .await
        .unwrap();
    assert_eq!(n.spec.and_then(|s| s.unschedulable), Some(true));
}

#[tokio::test]
async fn status_subresource_isolates_spec_and_status() {
    let server = ApiServer::start().await;
    let api: Api<SupportStatus> = Api::all(server.client());

    let mut with_status = status_obj("s", "p");
    with_status.status = Some(SupportReport { verdict: Some(Verdict::Unsupported), ..SupportReport::default() });
    let created = api.create(&PostParams::default(), &with_status).await.unwrap();
    assert!(created.status.is_none(), "status is dropped on create");

    // A status write changes only the status.
    let mut s = created.clone();
    s.spec.policy = "ignored".to_owned();
    s.metadata.labels = Some([("ignored".to_owned(), "yes".to_owned())].into());
    s.status = Some(SupportReport { verdict: Some(Verdict::Supported), ..SupportReport::default() });
    let after_status = api.replace_status("s", &PostParams::default(), &s).await.unwrap();
    assert_eq!(after_status.spec.policy, "p");
    assert!(after_status.metadata.labels.is_none());
    assert_eq!(after_status.status.as_ref().and_then(|s| s.verdict), Some(Verdict::Supported));
    assert_eq!(after_status.metadata.generation, Some(1));

    // A main-resource write ignores the status.
    let mut m = after_status.clone();
    m.status = Some(SupportReport { verdict: Some(Verdict::AtRisk), ..SupportReport::default() });
    m.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
    let after_main = api.replace("s", &PostParams::default(), &m).await.unwrap();
    assert_eq!(after_main.status.as_ref().and_then(|s| s.verdict), Some(Verdict::Supported));
    assert_eq!(after_main.labels().get("team").map(String::as_str), Some("a"));

    // A merge patch of /status cannot change the spec either.
    let patched = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"policy": "x"}, "status": {"verdict": "AtRisk"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.policy, "p");
    assert_eq!(patched.status.and_then(|s| s.verdict), Some(Verdict::AtRisk));
}

#[tokio::test]
async fn generation_increments_only_on_spec_changes() {
    let server = ApiServer::start().await;
    let api: Api<SupportStatus> = Api::all(server.client());
    let created = api.create(&PostParams::default(), &status_obj("s", "p")).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let labelled = api
        .patch("s", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_ne!(rv(&labelled), rv(&created));

    let status = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(json!({"status": {"verdict": "Supported"}})))
        .await
        .unwrap();
    assert_eq!(status.metadata.generation, Some(1));

    let spec = api.patch("s", &PatchParams::default(), &Patch::Merge(json!({"spec": {"policy": "q"}}))).await.unwrap();
    assert_eq!(spec.metadata.generation, Some(2));

    // Built-in resources without generation tracking have none.
    let nodes: Api<Node> = Api::all(server.client());
    let n = nodes.create(&PostParams::default(), &typed_node("n", &[])).await.unwrap();
    assert_eq!(n.metadata.generation, None);
    assert!(n.status.is_some(), "built-in resources keep status on create");
}

// ----- server-side apply ------------------------------------------------------------------------

#[tokio::test]
async fn server_side_apply_creates_tracks_owners_and_resolves_conflicts() {
    let server = ApiServer::start().await;
    let api: Api<SupportStatus> = Api::all(server.client());
    let operator = PatchParams::apply("support-operator");

    // An apply to a missing object creates it.
    let created = api.patch("s", &operator, &apply_spec("s", "p")).await.unwrap();
    assert_eq!(created.spec.policy, "p");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(managers(&created), [("support-operator".to_owned(), "Apply".to_owned(), None)]);

    // Status through the status subresource.
    let with_status = api
        .patch_status("s", &operator, &apply_status("s", json!({"verdict": "Supported", "observedGeneration": 1})))
        .await
        .unwrap();
    assert_eq!(with_status.status.as_ref().and_then(|s| s.verdict), Some(Verdict::Supported));
    assert_eq!(with_status.metadata.generation, Some(1));
    assert!(managers(&with_status).contains(&(
        "support-operator".to_owned(),
        "Apply".to_owned(),
        Some("status".to_owned())
    )));
    let status_fields = with_status
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.subresource.as_deref() == Some("status"))
        .and_then(|m| m.fields_v1.clone())
        .expect("fieldsV1 of the status manager");
    assert_eq!(status_fields.0, json!({"f:status": {"f:observedGeneration": {}, "f:verdict": {}}}));

    // Another manager setting a field the operator owns to another value conflicts.
    let kubectl = PatchParams::apply("kubectl");
    let conflict = api_error(api.patch("s", &kubectl, &apply_spec("s", "other")).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("support-operator") && conflict.message.contains(".spec.policy"),
        "{}",
        conflict.message
    );
    let causes = conflict.details.as_ref().map(|d| d.causes.clone()).unwrap_or_default();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0].field, ".spec.policy");
    assert_eq!(api.get("s").await.unwrap().spec.policy, "p");

    // Applying the same value is no conflict: both managers own the field.
    api.patch("s", &kubectl, &apply_spec("s", "p")).await.unwrap();

    // Force takes the field over.
    let forced = api.patch("s", &kubectl.clone().force(), &apply_spec("s", "other")).await.unwrap();
    assert_eq!(forced.spec.policy, "other");
    assert_eq!(forced.metadata.generation, Some(2));
    let owners = managers(&forced);
    assert!(owners.contains(&("kubectl".to_owned(), "Apply".to_owned(), None)));
    assert!(!owners.contains(&("support-operator".to_owned(), "Apply".to_owned(), None)));

    // A field the manager stops applying is removed when nobody else owns it.
    let pruned = api.patch_status("s", &operator, &apply_status("s", json!({"observedGeneration": 2}))).await.unwrap();
    let report = pruned.status.expect("status");
    assert_eq!((report.verdict, report.observed_generation), (None, Some(2)));

    assert_eq!(
        server.count(|r| r.is_apply()
            && r.path.ends_with("/status")
            && r.field_manager.as_deref() == Some("support-operator")),
        2
    );
}

#[tokio::test]
async fn apply_accepts_yaml_and_requires_a_field_manager() {
    let server = ApiServer::start().await;
    let client = server.client();
    let yaml = "apiVersion: support.compliance.dev/v1alpha1\nkind: SupportStatus\nmetadata:\n  name: from-yaml\nspec:\n  policy: p\n";
    let request =
        hyper::Request::patch("/apis/support.compliance.dev/v1alpha1/supportstatuses/from-yaml?fieldManager=kubectl")
            .header("content-type", "application/apply-patch+yaml")
            .body(yaml.as_bytes().to_vec())
            .unwrap();
    let created: SupportStatus = client.request(request).await.unwrap();
    assert_eq!(created.spec.policy, "p");

    let api: Api<SupportStatus> = Api::all(client);
    let err = api_error(api.patch("s", &PatchParams::default(), &apply_spec("s", "p")).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.contains("fieldManager"), "{}", err.message);
    assert!(api.get_opt("s").await.unwrap().is_none());
}

#[tokio::test]
async fn no_op_writes_neither_bump_the_resource_version_nor_emit_events() {
    let server = ApiServer::start().await;
    let api: Api<SupportStatus> = Api::all(server.client());
    let operator = PatchParams::apply("support-operator");
    api.patch("s", &operator, &apply_spec("s", "p")).await.unwrap();
    let first = api.patch_status("s", &operator, &apply_status("s", json!({"verdict": "Supported"}))).await.unwrap();
    let first_rv = rv(&first);

    let mut events = api.watch(&WatchParams::default().disable_bookmarks(), &first_rv).await.unwrap().boxed();

    let again = api.patch_status("s", &operator, &apply_status("s", json!({"verdict": "Supported"}))).await.unwrap();
    assert_eq!(rv(&again), first_rv);
    assert_eq!(again.metadata.managed_fields, first.metadata.managed_fields);
    let merge_noop =
        api.patch("s", &PatchParams::default(), &Patch::Merge(json!({"spec": {"policy": "p"}}))).await.unwrap();
    assert_eq!(rv(&merge_noop), first_rv);
    assert_eq!(server.stats().store.noop_writes, 2);

    let changed = api.patch_status("s", &operator, &apply_status("s", json!({"verdict": "AtRisk"}))).await.unwrap();
    // The first event after the no-ops is the real change.
    match next(&mut events).await.unwrap() {
        WatchEvent::Modified(obj) => {
            assert_eq!(rv(&obj), rv(&changed));
            assert_eq!(obj.status.and_then(|s| s.verdict), Some(Verdict::AtRisk));
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    assert_eq!(rv(&changed).parse::<u64>().unwrap(), first_rv.parse::<u64>().unwrap() + 1);
}

// ----- watch ---------------------------------------------------------------------------------

#[tokio::test]
async fn watcher_sees_add_modify_delete() {
    let server = ApiServer::start().await;
    server.apply_object(node("existing", &[]));
    let api: Api<Node> = Api::all(server.client());
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();

    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    match next(&mut stream).await.unwrap() {
        watcher::Event::InitApply(n) => assert_eq!(n.name_any(), "existing"),
        other => panic!("expected InitApply, got {other:?}"),
    }
    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::InitDone));

    api.create(&PostParams::default(), &typed_node("n1", &[])).await.unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(n) => assert_eq!(n.name_any(), "n1"),
        other => panic!("expected Apply, got {other:?}"),
    }
    api.patch("n1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))).await.unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(n) => assert_eq!(n.labels().get("x").map(String::as_str), Some("y")),
        other => panic!("expected Apply, got {other:?}"),
    }
    api.delete("n1", &DeleteParams::default()).await.unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Delete(n) => assert_eq!(n.name_any(), "n1"),
        other => panic!("expected Delete, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    let start = api.list(&ListParams::default()).await.unwrap();
    let from = start.metadata.resource_version.unwrap();

    api.create(&PostParams::default(), &typed_node("n1", &[])).await.unwrap();
    api.patch("n1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))).await.unwrap();
    api.delete("n1", &DeleteParams::default()).await.unwrap();

    let mut stream = api.watch(&WatchParams::default(), &from).await.unwrap().boxed();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(match next(&mut stream).await.unwrap() {
            WatchEvent::Added(n) => format!("ADDED {}", n.name_any()),
            WatchEvent::Modified(n) => format!("MODIFIED {}", n.name_any()),
            WatchEvent::Deleted(n) => format!("DELETED {}", n.name_any()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(kinds, ["ADDED n1", "MODIFIED n1", "DELETED n1"]);
}

#[tokio::test]
async fn label_selectors_filter_watch_events() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    let from = server.resource_version().to_string();
    let mut stream =
        api.watch(&WatchParams::default().labels("agentpool=a").disable_bookmarks(), &from).await.unwrap().boxed();

    server.apply_object(node("n1", &[("agentpool", "b")]));
    server.apply_object(node("n1", &[("agentpool", "a")]));
    server.apply_object(node("n1", &[("agentpool", "b")]));
    server.apply_object(node("n2", &[("agentpool", "a")]));

    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(match next(&mut stream).await.unwrap() {
            WatchEvent::Added(n) => format!("ADDED {}", n.name_any()),
            WatchEvent::Modified(n) => format!("MODIFIED {}", n.name_any()),
            WatchEvent::Deleted(n) => format!("DELETED {}", n.name_any()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED n1", "DELETED n1", "ADDED n2"]);
}

#[tokio::test]
async fn watch_from_an_expired_resource_version_gets_410() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    let from = server.resource_version().to_string();
    server.apply_object(node("n1", &[]));
    server.expire_resource_versions();

    let mut stream = api.watch(&WatchParams::default(), &from).await.unwrap().boxed();
    match next(&mut stream).await.unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    assert!(tokio::time::timeout(WAIT, stream.next()).await.unwrap().is_none());
    assert_eq!(server.stats().watch_errors_sent, 1);
}

#[tokio::test]
async fn watcher_relists_after_410_on_its_own() {
    // No periodic bookmark may move the watcher past the compaction point in this test.
    let server = ApiServer::builder().bookmark_interval(Duration::from_secs(3600)).start().await;
    server.apply_object(node("a", &[]));
    server.apply_object(node("b", &[]));
    let api: Api<Node> = Api::all(server.client());
    let (reader, writer) = reflector::store();
    let driver = tokio::spawn(reflector(writer, watcher(api, watcher::Config::default())).for_each(|_| async {}));
    let names = move || {
        let mut n: Vec<String> = reader.state().iter().map(|n| n.name_any()).collect();
        n.sort();
        n
    };
    eventually(WAIT, "a and b listed, one watch open", || async {
        names() == ["a", "b"] && server.open_watches() == 1
    })
    .await;

    server.expire_resource_versions();
    server.drop_watches();
    server.delete_object(&Gvr::nodes(), None, "a");
    server.apply_object(node("c", &[]));

    eventually(WAIT, "b and c after the relist", || async { names() == ["b", "c"] }).await;
    assert!(server.stats().watch_errors_sent >= 1, "the watcher resumed with an expired version");
    assert_eq!(server.count(|r| r.verb == "list" && r.resource == "nodes"), 2);
    driver.abort();
}

#[tokio::test]
async fn dropped_watches_are_resumed_without_losing_events() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    let (reader, writer) = reflector::store();
    let driver = tokio::spawn(reflector(writer, watcher(api, watcher::Config::default())).for_each(|_| async {}));
    eventually(WAIT, "one watch open", || async { server.open_watches() == 1 }).await;
    server.drop_watches();
    server.apply_object(node("during-reconnect", &[]));
    eventually(WAIT, "the node created during the reconnect", || async { reader.state().len() == 1 }).await;
    assert!(server.count(|r| r.is_watch()) >= 2);
    // A clean resume needs no relist.
    assert_eq!(server.count(|r| r.verb == "list"), 1);
    driver.abort();
}

#[tokio::test]
async fn bookmarks_carry_the_current_resource_version() {
    let server = ApiServer::builder().bookmark_interval(Duration::from_millis(50)).start().await;
    let api: Api<Node> = Api::all(server.client());
    server.apply_object(node("n1", &[]));
    let rv_now = server.resource_version().to_string();
    let mut stream = api.watch(&WatchParams::default(), &rv_now).await.unwrap().boxed();
    match next(&mut stream).await.unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv_now),
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
    // Without allowWatchBookmarks there are none: the next event is the change.
    let mut quiet = api.watch(&WatchParams::default().disable_bookmarks(), &rv_now).await.unwrap().boxed();
    let before = server.stats().bookmarks_sent;
    eventually(WAIT, "two bookmarks to other watches", || async { server.stats().bookmarks_sent >= before + 2 }).await;
    server.apply_object(node("n2", &[]));
    assert!(matches!(next(&mut quiet).await.unwrap(), WatchEvent::Added(_)));
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    let started = Instant::now();
    let mut stream = api.watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0").await.unwrap().boxed();
    assert!(tokio::time::timeout(WAIT, stream.next()).await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(900));
    eventually(WAIT, "no watch open", || async { server.open_watches() == 0 }).await;
}

#[tokio::test]
async fn streaming_list_sends_initial_events_and_an_end_bookmark() {
    let server = ApiServer::start().await;
    server.apply_object(node("a", &[]));
    server.apply_object(node("b", &[]));
    let api: Api<Node> = Api::all(server.client());
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();

    assert!(matches!(next(&mut stream).await.unwrap(), watcher::Event::Init));
    let mut initial = Vec::new();
    loop {
        match next(&mut stream).await.unwrap() {
            watcher::Event::InitApply(n) => initial.push(n.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(initial, ["a", "b"]);
    assert_eq!(server.count(|r| r.verb == "list"), 0);
    assert_eq!(
        server.count(|r| r.is_watch()
            && r.query_param("sendInitialEvents").as_deref() == Some("true")
            && r.query_param("resourceVersionMatch").as_deref() == Some("NotOlderThan")),
        1
    );

    api.create(&PostParams::default(), &typed_node("c", &[])).await.unwrap();
    match next(&mut stream).await.unwrap() {
        watcher::Event::Apply(n) => assert_eq!(n.name_any(), "c"),
        other => panic!("expected Apply, got {other:?}"),
    }
}

// ----- faults --------------------------------------------------------------------------------

#[tokio::test]
async fn injected_500_reaches_the_client() {
    let server = ApiServer::start().await;
    server.apply_object(node("n1", &[]));
    let api: Api<Node> = Api::all(server.client());
    server.fail_next(1, Fault::InternalError, |r| r.verb == "get");
    let err = api_error(api.get("n1").await);
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    // Only the next matching request fails.
    assert!(api.get("n1").await.is_ok());
    assert_eq!(server.count(|r| r.status == 500), 1);
}

#[tokio::test]
async fn injected_429_is_retried_by_the_client_after_retry_after() {
    let server = ApiServer::start().await;
    let api: Api<SupportStatus> = Api::all(server.client());
    server.fail_next(1, Fault::TooManyRequests { retry_after_secs: 1 }, |r| {
        r.method == "PATCH" && r.path.ends_with("/status")
    });
    api.patch("s", &PatchParams::apply("op"), &apply_spec("s", "p")).await.unwrap();
    let started = Instant::now();
    api.patch_status("s", &PatchParams::apply("op"), &apply_status("s", json!({"verdict": "Supported"})))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");
    assert_eq!(server.count(|r| r.status == 429), 1);
    assert_eq!(server.count(|r| r.method == "PATCH" && r.path.ends_with("/status")), 2);
}

#[tokio::test]
async fn delays_slow_down_responses() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    server.delay_when(Duration::from_millis(300), |r| r.verb == "list");
    let started = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.set_delay(Duration::ZERO);
    let started = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn raw_malformed_objects_are_served_as_is() {
    let server = ApiServer::start().await;
    server.apply_object(node("good", &[]));
    server.insert_raw(
        &Gvr::nodes(),
        None,
        "bad",
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "bad"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "yesterday"}]},
        }),
    );
    let client = server.client();
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<Node>(&()));
    let items = dynamic.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(items.len(), 2);
    let bad = items.iter().find(|o| o.name_any() == "bad").unwrap();
    assert_eq!(bad.data.pointer("/status/conditions/0/lastTransitionTime"), Some(&json!("yesterday")));
    // The typed client cannot decode it: exactly what a controller must survive.
    assert!(Api::<Node>::all(client).list(&ListParams::default()).await.is_err());
}

// ----- deletion --------------------------------------------------------------------------------

fn owner_ref(owner: &SupportPolicy) -> OwnerReference {
    owner.controller_owner_ref(&()).expect("owner has a uid")
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let server = ApiServer::start().await;
    let client = server.client();
    let policies: Api<SupportPolicy> = Api::all(client.clone());
    let statuses: Api<SupportStatus> = Api::all(client.clone());
    let p = policies.create(&PostParams::default(), &policy("p", Platform::Aks)).await.unwrap();
    let q = policies.create(&PostParams::default(), &policy("q", Platform::Aks)).await.unwrap();

    let mut only_p = status_obj("only-p", "p");
    only_p.metadata.owner_references = Some(vec![owner_ref(&p)]);
    statuses.create(&PostParams::default(), &only_p).await.unwrap();
    let mut shared = status_obj("shared", "p");
    let mut q_ref = owner_ref(&q);
    q_ref.controller = None;
    shared.metadata.owner_references = Some(vec![owner_ref(&p), q_ref]);
    statuses.create(&PostParams::default(), &shared).await.unwrap();

    let deleted = policies.delete("p", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "removed at once: a Status is returned");

    let gvr = Gvr::support_statuses();
    eventually(WAIT, "only-p garbage-collected", || async { server.get_object(&gvr, None, "only-p").is_none() }).await;
    let shared = statuses.get("shared").await.unwrap();
    let owners: Vec<String> = shared.owner_references().iter().map(|o| o.name.clone()).collect();
    assert_eq!(owners, ["q"]);
    assert_eq!(server.stats().store.garbage_collected, 1);
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let server = ApiServer::start().await;
    let api: Api<SupportStatus> = Api::all(server.client());
    let mut s = status_obj("s", "p");
    s.metadata.finalizers = Some(vec!["support.compliance.dev/cleanup".to_owned()]);
    api.create(&PostParams::default(), &s).await.unwrap();

    let pending = api.delete("s", &DeleteParams::default()).await.unwrap();
    let pending = pending.left().expect("the object is still there");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(api.get("s").await.unwrap().metadata.deletion_timestamp.is_some());

    api.patch("s", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert!(api.get_opt("s").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let server = ApiServer::start().await;
    let client = server.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "azure-arc"}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "hb"}})).unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "azure-arc");
    leases.create(&PostParams::default(), &lease).await.unwrap();
    Api::<Namespace>::all(client).delete("azure-arc", &DeleteParams::default()).await.unwrap();
    assert!(leases.get_opt("hb").await.unwrap().is_none());
}

// ----- events ----------------------------------------------------------------------------------

/// A policy `p` and a recorder of Events about it.
async fn recorder_and_policy(server: &ApiServer) -> (kube::runtime::events::Recorder, SupportPolicy) {
    let client = server.client();
    let p = Api::<SupportPolicy>::all(client.clone())
        .create(&PostParams::default(), &policy("p", Platform::Aks))
        .await
        .unwrap();
    (kube::runtime::events::Recorder::new(client, "support-operator".into()), p)
}

#[tokio::test]
async fn kube_event_recorder_creates_then_patches_a_series() {
    use kube::runtime::events::{Event, EventType};
    let server = ApiServer::start().await;
    let (recorder, p) = recorder_and_policy(&server).await;
    let event = Event {
        type_: EventType::Warning,
        reason: "KubeletVersionEndOfSupport".to_owned(),
        note: Some("kubelet v1.28 is out of support".to_owned()),
        action: "Evaluate".to_owned(),
        secondary: None,
    };
    recorder.publish(&event, &p.object_ref(&())).await.unwrap();
    recorder.publish(&event, &p.object_ref(&())).await.unwrap();
    let events = server.list_objects(&Gvr::events(), Some("default"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].pointer("/series/count"), Some(&json!(2)));
    assert_eq!(events[0].pointer("/regarding/name"), Some(&json!("p")));
}

#[tokio::test]
async fn an_event_note_over_1_kib_in_bytes_is_refused() {
    use kube::runtime::events::{Event, EventType};
    let server = ApiServer::start().await;
    let (recorder, p) = recorder_and_policy(&server).await;
    let event = |note: String| Event {
        type_: EventType::Normal,
        reason: format!("Note{}", note.len()),
        note: Some(note),
        action: "Evaluate".to_owned(),
        secondary: None,
    };
    // 1,024 bytes pass; 1,023 characters of which one takes three bytes do not.
    recorder.publish(&event("a".repeat(1024)), &p.object_ref(&())).await.unwrap();
    let err = recorder.publish(&event(format!("{}…", "b".repeat(1022))), &p.object_ref(&())).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("note: Too long: may not be more than 1024 bytes"), "{}", s.message);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn an_apply_that_creates_answers_201() {
    let server = ApiServer::start().await;
    let api: Api<Node> = Api::all(server.client());
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "labels": {"a": "b"}}});
    for _ in 0..2 {
        api.patch("n", &PatchParams::apply("t"), &Patch::Apply(&node)).await.unwrap();
    }
    let codes: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(codes, [201, 200]);
}

#[tokio::test]
async fn the_request_log_records_the_user_agent() {
    let server = ApiServer::start().await;
    let mut config = server.config();
    config.headers.push((hyper::header::USER_AGENT, hyper::header::HeaderValue::from_static("tester/1")));
    let client = kube::Client::try_from(config).unwrap();
    Api::<Node>::all(client).list(&ListParams::default()).await.unwrap();
    Api::<Node>::all(server.client()).list(&ListParams::default()).await.unwrap();
    let agents: Vec<Option<String>> = server.requests().into_iter().map(|r| r.user_agent).collect();
    assert_eq!(agents, [Some("tester/1".to_string()), None]);
}

// ----- scale ------------------------------------------------------------------------------------

#[tokio::test]
async fn five_thousand_nodes_list_and_stream_quickly() {
    let server = ApiServer::start().await;
    let started = Instant::now();
    for i in 0..5000 {
        server.apply_object(node(&format!("node-{i:05}"), &[("agentpool", "a")]));
    }
    let api: Api<Node> = Api::all(server.client());
    let listed = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .take_while(|e| std::future::ready(!matches!(e, Ok(watcher::Event::InitDone))))
        .try_fold(0usize, |n, e| async move { Ok(n + usize::from(matches!(e, watcher::Event::InitApply(_)))) })
        .await
        .unwrap();
    assert_eq!(listed, 5000);
    assert_eq!(server.count(|r| r.verb == "list"), 10, "pages of 500");

    let streamed = watcher(api, watcher::Config::default().streaming_lists())
        .take_while(|e| std::future::ready(!matches!(e, Ok(watcher::Event::InitDone))))
        .try_fold(0usize, |n, e| async move { Ok(n + usize::from(matches!(e, watcher::Event::InitApply(_)))) })
        .await
        .unwrap();
    assert_eq!(streamed, 5000);
    // Generous bound for debug builds on a small machine; quadratic behaviour takes minutes.
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
}

// ----- CustomResourceDefinitions ---------------------------------------------------------------

#[tokio::test]
async fn with_crds_on_custom_resources_live_and_die_with_their_crd() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;

    let server = ApiServer::builder().custom_resources_from_crds().start().await;
    let client = server.client();
    let policies: Api<SupportPolicy> = Api::all(client.clone());
    let statuses: Api<SupportStatus> = Api::all(client.clone());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());

    // No CRD: the paths and the discovery group do not exist.
    assert_eq!(api_error(policies.list(&ListParams::default()).await).code, 404);
    let discovery = Discovery::new(client.clone()).run_aggregated().await.unwrap();
    assert!(discovery.get("support.compliance.dev").is_none(), "no group before its CRDs");

    for crd in [SupportPolicy::crd(), SupportStatus::crd()] {
        let created = crds.create(&PostParams::default(), &crd).await.unwrap();
        let status = created.status.expect("the controllers' status");
        assert_eq!(status.stored_versions, Some(vec!["v1alpha1".to_owned()]));
        let conditions = status.conditions.unwrap_or_default();
        assert!(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"));
    }
    let discovery = Discovery::new(client.clone()).run_aggregated().await.unwrap();
    assert_discovered_support(&discovery);
    let owner = policies.create(&PostParams::default(), &policy("p", Platform::Aks)).await.unwrap();
    let mut st = status_obj("p", "p");
    st.metadata.owner_references = Some(vec![owner_ref(&owner)]);
    statuses.create(&PostParams::default(), &st).await.unwrap();

    // Dropping the stored version is refused, and changes nothing.
    let mut renamed = SupportPolicy::crd();
    renamed.spec.versions[0].name = "v1beta1".into();
    renamed.metadata.resource_version = crds.get(&renamed.name_any()).await.unwrap().metadata.resource_version;
    let err = api_error(crds.replace(&renamed.name_any(), &PostParams::default(), &renamed).await);
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains(r#"status.storedVersions[0]: Invalid value: "v1alpha1": must appear in spec.versions"#),
        "{}",
        err.message
    );
    assert_eq!(policies.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // Not served any more: 404, though the objects are kept.
    let mut unserved = crds.get("supportpolicies.support.compliance.dev").await.unwrap();
    unserved.spec.versions[0].served = false;
    crds.replace(&unserved.name_any(), &PostParams::default(), &unserved).await.unwrap();
    assert_eq!(api_error(policies.get("p").await).code, 404);
    assert_eq!(server.list_objects(&Gvr::support_policies(), None).len(), 1);

    // Deleting a CRD deletes its objects (and their dependents).
    crds.delete("supportpolicies.support.compliance.dev", &DeleteParams::default()).await.unwrap();
    assert!(server.list_objects(&Gvr::support_policies(), None).is_empty());
    assert!(server.list_objects(&Gvr::support_statuses(), None).is_empty(), "the owned status was collected");
    assert_eq!(api_error(crds.get("supportpolicies.support.compliance.dev").await).code, 404);
}

fn assert_discovered_support(discovery: &Discovery) {
    for kind in ["SupportPolicy", "SupportStatus"] {
        discovery
            .resolve_gvk(&GroupVersionKind::gvk("support.compliance.dev", "v1alpha1", kind))
            .unwrap_or_else(|| panic!("{kind} is discovered once its CRD exists"));
    }
}

#[tokio::test]
async fn openapi_v3_lists_served_group_versions_and_their_operations() {
    let server = ApiServer::builder().custom_resources_from_crds().start().await;
    let root = get_json(&server, "/openapi/v3").await;
    assert!(root["paths"].get("api/v1").is_some());
    assert!(root["paths"].get("apis/support.compliance.dev/v1alpha1").is_none(), "not served without its CRD");
    let url = root["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"].as_str().unwrap().to_owned();
    let doc = get_json(&server, &url).await;
    let patch = &doc["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Lease");
    assert!(patch["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"));
}

/// A GET through the kube client's raw request API, parsed as JSON.
async fn get_json(server: &ApiServer, path: &str) -> Value {
    let req = hyper::Request::get(path).body(Vec::new()).unwrap();
    server.client().request::<Value>(req).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

// ----- TokenReview and SubjectAccessReview ---------------------------------------------------------

/// A delegating authenticator and authorizer (what a metrics endpoint does) through `kube::Api`:
/// the configured token authenticates, an unknown one does not; the configured non-resource rule
/// allows, nothing else does; both are create-only and stored nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_subject_access_reviews_answer_as_a_delegating_client_expects() {
    use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
    use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
    use test_apiserver::{RbacSubject, UserInfo};

    let prometheus = UserInfo::service_account("monitoring", "prometheus");
    let server = ApiServer::builder()
        .token("scrape", prometheus.clone())
        .token("stranger", UserInfo::service_account("default", "default"))
        .allow_non_resource(RbacSubject::User(prometheus.username.clone()), &["get"], &["/metrics"])
        .start()
        .await;
    let tokens: Api<TokenReview> = Api::all(server.client());
    let review = |token: &str| TokenReview {
        spec: TokenReviewSpec { token: Some(token.into()), ..Default::default() },
        ..Default::default()
    };
    let ok = tokens.create(&PostParams::default(), &review("scrape")).await.unwrap().status.unwrap();
    assert_eq!(ok.authenticated, Some(true));
    let user = ok.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("system:serviceaccount:monitoring:prometheus"));
    assert!(user.groups.unwrap().contains(&"system:serviceaccounts:monitoring".to_string()));
    let bad = tokens.create(&PostParams::default(), &review("guess")).await.unwrap().status.unwrap();
    assert_ne!(bad.authenticated, Some(true));
    assert!(bad.error.is_some());
    let empty = tokens.create(&PostParams::default(), &review("")).await.unwrap_err();
    assert!(matches!(empty, kube::Error::Api(ref s) if s.code == 400), "{empty}");

    let sars: Api<SubjectAccessReview> = Api::all(server.client());
    let access = |user: &str, verb: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some("/metrics".into()),
                verb: Some(verb.into()),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let allowed = |user: &str, verb: &str| {
        let sars = sars.clone();
        let sar = access(user, verb);
        async move { sars.create(&PostParams::default(), &sar).await.unwrap().status.unwrap().allowed }
    };
    assert!(allowed(&prometheus.username, "get").await);
    assert!(!allowed(&prometheus.username, "post").await);
    assert!(!allowed("system:serviceaccount:default:default", "get").await);
    let invalid = sars.create(&PostParams::default(), &SubjectAccessReview::default()).await.unwrap_err();
    assert!(matches!(invalid, kube::Error::Api(ref s) if s.code == 422), "{invalid}");

    // Create only: a list is refused; discovery says so; every create answered 201.
    let list = tokens.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(list, kube::Error::Api(ref s) if s.code == 405), "{list}");
    let discovery = Discovery::new(server.client()).run().await.unwrap();
    let (_, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("authentication.k8s.io", "v1", "TokenReview"))
        .expect("tokenreviews in discovery");
    assert_eq!(caps.operations, ["create"]);
    assert_eq!(server.count(|r| r.resource == "tokenreviews" && r.verb == "create" && r.status == 201), 2);
    assert_eq!(server.count(|r| r.resource == "subjectaccessreviews" && r.status == 201), 3);
}
