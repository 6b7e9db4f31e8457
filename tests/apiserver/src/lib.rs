//! An in-process Kubernetes API server emulator for controller tests.
//!
//! [`ApiServer::start`] binds `127.0.0.1:0` and serves the Kubernetes HTTP API (JSON over
//! HTTP/1.1) from an in-memory store, so that a normal [`kube::Client`] (from
//! [`ApiServer::client`]) works against it unchanged: `Api::get/list/create/replace/patch/
//! delete`, `*_status`, `kube::runtime::watcher` (list-watch and streaming-list modes),
//! metadata-only requests (`Api<PartialObjectMeta<K>>`), `kube::runtime::events::Recorder` and
//! `kube::Discovery` (legacy and aggregated). Dropping the handle shuts the server down.
//! It runs on real time: do not use it under `#[tokio::test(start_paused = true)]`, where the
//! paused clock would jump ahead while requests are in flight.
//!
//! # What it models
//! - **Resources** registered at start ([`default_resources`]: nodes, namespaces, core and
//!   `events.k8s.io` events, leases, `SupportPolicy`, `SupportStatus`, TokenReview,
//!   SubjectAccessReview; more with
//!   [`ApiServerBuilder::resource`], e.g. an alpha group, or [`ResourceDef::from_crd`]).
//! - **Discovery**: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`, and
//!   aggregated discovery (`apidiscovery.k8s.io/v2` or `v2beta1`) when the `Accept` header asks
//!   for it (disable with [`ApiServerBuilder::aggregated_discovery`] to emulate an old server,
//!   which falls back to the legacy documents).
//! - **resourceVersion**: one global counter, as with etcd. Writes that change nothing do not
//!   bump it and emit no watch event.
//! - **get / list**: label selectors (full syntax), field selectors on `metadata.name`,
//!   `metadata.namespace` and a few per-resource fields, `limit`/`continue` pagination with
//!   snapshot-consistent pages, `resourceVersion` + `resourceVersionMatch` (`Exact` reads an
//!   older snapshot from the event history), 410 `Expired` for compacted versions, all-namespace
//!   paths, `PartialObjectMetadata` responses.
//! - **watch**: `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK`/`ERROR` lines; resume from a
//!   resourceVersion out of the retained history (10 000 events per resource by default; an
//!   `ERROR` event with a 410 `Expired` Status when it is too old); periodic bookmarks; `timeoutSeconds`; `sendInitialEvents` with the
//!   `k8s.io/initial-events-end` bookmark; objects entering/leaving a label selector are seen as
//!   `ADDED`/`DELETED`, as with the real watch cache.
//! - **writes**: create (generateName, uid, creationTimestamp, name validation, 409
//!   AlreadyExists), update (409 Conflict on a stale resourceVersion; without one, built-in
//!   resources update unconditionally while custom resources answer 422, as a real server
//!   does), merge patch (RFC 7386), JSON patch (RFC 6902), server-side apply with field
//!   ownership and conflicts (201 when it creates), `dryRun=All`, delete with finalizers (`deletionTimestamp`,
//!   removal when the last finalizer goes), preconditions, `propagationPolicy`,
//!   deletecollection, and ownerReference garbage collection (synchronous, right after the
//!   owner is removed). Deleting a Namespace deletes the objects in it. The `note` of an
//!   `events.k8s.io` Event is at most 1 KiB in bytes (422 otherwise).
//! - **`/status` subresource**: writes to the main resource keep the stored `status`; writes
//!   to `/status` change only `status`. `metadata.generation` (custom resources) increments
//!   only when something outside `metadata` and `status` changes. Custom resources drop
//!   `status` on create.
//! - **managedFields**: per manager and operation (`Apply`/`Update`) and subresource, as
//!   `FieldsV1`. Maps are merged key by key; lists are atomic. An apply that sets a field
//!   another manager owns to a different value fails with 409 (listing the conflicts) unless
//!   `force=true`, which takes the field over; fields a manager stops applying are removed when
//!   nobody else owns them. Objects written without managedFields get a `before-first-apply`
//!   owner on their first apply, like a real server.
//! - **CustomResourceDefinitions** (opt-in, [`ApiServerBuilder::custom_resources_from_crds`]):
//!   custom resources are served while a CRD serves their version; CRD writes check the name,
//!   the single storage version and `status.storedVersions`, and set the status the
//!   apiextensions controllers would; deleting a CRD deletes its objects.
//! - **TokenReview and SubjectAccessReview** (`authentication.k8s.io/v1`,
//!   `authorization.k8s.io/v1`, always served): create only (other verbs 405), nothing stored,
//!   the request echoed with a computed `status` (201). Tokens and their users
//!   ([`ApiServerBuilder::token`]) and the non-resource rules that allow a user or group
//!   ([`ApiServerBuilder::allow_non_resource`]) are configured by the test; unknown tokens are
//!   unauthenticated, members of `system:masters` are allowed everything, resource attributes are
//!   never allowed. Validation as on a real server (empty token 400; a SubjectAccessReview needs
//!   exactly one of resource and non-resource attributes, and a user or a group: 422). Details in
//!   `reviews.rs`. The emulator's own clients are still not authenticated.
//! - **OpenAPI v3**: `/openapi/v3` and one document per served group/version with every path,
//!   operation and query parameter (what kubectl reads to use server-side field validation), and
//!   a custom resource's schema from its CRD; no schemas for built-in types.
//! - **Test controls**: the request log ([`ApiServer::requests`], [`ApiServer::count`]; with
//!   each request's `User-Agent`, to tell clients apart),
//!   fault injection ([`ApiServer::fail_next`], [`ApiServer::set_delay`],
//!   [`ApiServer::drop_watches`], [`ApiServer::expire_resource_versions`]), raw insertion
//!   of malformed objects ([`ApiServer::insert_raw`]), counters ([`ApiServer::stats`]), direct
//!   store access and [`eventually`]. A request that never answers is a long
//!   [`ApiServer::delay_when`].
//!
//! # What it does not model
//! - Authentication and authorization of its own clients (every request is served; RBAC is
//!   modelled only as the non-resource rules SubjectAccessReviews answer from), admission
//!   (webhooks, NamespaceLifecycle: objects may be created in namespaces that do not exist),
//!   quotas, API priority and fairness; SelfSubjectAccessReview, LocalSubjectAccessReview,
//!   SelfSubjectReview, TokenRequest.
//! - OpenAPI schema validation (but for the Event `note` limit above), defaulting, pruning of
//!   unknown fields, CEL rules and `fieldValidation`: custom resources are stored as sent.
//! - Strategic merge patch semantics: it is applied as a JSON merge patch (lists replaced,
//!   no `$patch` directives) for built-in resources, and rejected with 415 for custom
//!   resources, as a real server does.
//! - Associative lists in server-side apply (`x-kubernetes-list-type: map`, `patchMergeKey`):
//!   every list is atomic, owned as a whole.
//! - Field selectors beyond `metadata.name`, `metadata.namespace` and the few listed per
//!   resource in [`ResourceDef::field_selectors`]; set-based field selectors.
//! - Conversion between versions, the shared storage of core/v1 and events.k8s.io/v1 events
//!   (they are separate here), protobuf, CBOR, Table output, `kubectl` server-side printing.
//! - Graceful deletion periods (pods), foreground deletion with a `foregroundDeletion`
//!   finalizer (dependents are deleted first, synchronously), dangling owner references to
//!   owners that never existed, `blockOwnerDeletion`.
//! - HTTP/2, TLS, websockets (exec, attach, port-forward), `/healthz`, OpenAPI v2
//!   (`/openapi/v2`), schemas of built-in types in OpenAPI v3.
//! - CRD schema validation, pruning and defaulting, conversion webhooks; a CRD can only serve
//!   versions registered in the emulator.

// Included by several test and bench crates, each using a different part of it.
#![allow(dead_code, unused_imports)]

mod crds;
mod discovery;
mod errors;
mod fields;
pub mod generate;
mod meta;
mod openapi;
mod record;
mod resources;
mod reviews;
mod selectors;
mod server;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use errors::{ApiError, Cause, Subject};
pub use record::{Fault, RequestRecord};
pub use resources::{default_resources, Gvr, NameRule, ResourceDef, Review};
pub use reviews::{RbacSubject, UserInfo, DEFAULT_AUDIENCE};
pub use selectors::{FieldSelector, LabelSelector};
pub use store::{EventType, StoreStats};

use record::{DelayRule, FaultRule};
use resources::Registry;
use reviews::{NonResourceRule, Reviews};
use server::{lock, Counters, Inner};
use store::{DeleteOpts, Store};

/// Default `gitVersion` of `/version`.
pub const DEFAULT_GIT_VERSION: &str = "v1.31.4";

/// Configures and starts an [`ApiServer`].
#[derive(Debug)]
pub struct ApiServerBuilder {
    resources: Vec<ResourceDef>,
    version_info: Value,
    bookmark_interval: Duration,
    history_limit: usize,
    aggregated_discovery: bool,
    crds: bool,
    reviews: Reviews,
}

impl Default for ApiServerBuilder {
    fn default() -> Self {
        Self {
            resources: default_resources(),
            version_info: discovery::version_info(DEFAULT_GIT_VERSION),
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
            aggregated_discovery: true,
            crds: false,
            reviews: Reviews::default(),
        }
    }
}

impl ApiServerBuilder {
    /// The default resources, `v1.31.4`, bookmarks every second, 10 000 events of history per
    /// resource, aggregated discovery on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves no resource unless registered with [`ApiServerBuilder::resource`].
    pub fn without_default_resources(mut self) -> Self {
        self.resources.clear();
        self
    }

    /// Registers a resource (replacing a registration of the same group/version/resource).
    pub fn resource(mut self, def: ResourceDef) -> Self {
        self.resources.push(def);
        self
    }

    /// Sets `gitVersion` of `/version` (`major`/`minor` are derived from it).
    pub fn git_version(mut self, git_version: &str) -> Self {
        self.version_info = discovery::version_info(git_version);
        self
    }

    /// Sets the whole `/version` document.
    pub fn version_info(mut self, info: Value) -> Self {
        self.version_info = info;
        self
    }

    /// Sets the interval of periodic BOOKMARK events (for watches that allow them).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Sets how many events per resource are kept for watch resumption and `Exact` lists;
    /// older resourceVersions answer 410.
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// Whether `/api` and `/apis` answer aggregated discovery when asked (default: yes).
    pub fn aggregated_discovery(mut self, enabled: bool) -> Self {
        self.aggregated_discovery = enabled;
        self
    }

    /// Serves `apiextensions.k8s.io/v1` CustomResourceDefinitions and ties the registered custom
    /// resources to them, as a real server does: a custom resource is served only while a CRD
    /// named `<plural>.<group>` serves its version, a CRD may not drop a version in its
    /// `status.storedVersions`, and deleting a CRD deletes its objects (details in `crds.rs`).
    /// Off by default: custom resources are then served from the start, with no CRD.
    pub fn custom_resources_from_crds(mut self) -> Self {
        self.crds = true;
        self.resources.push(crds::definition());
        self
    }

    /// A bearer token that TokenReviews authenticate as `user`, for the server's own audience
    /// ([`DEFAULT_AUDIENCE`]).
    pub fn token(self, token: &str, user: UserInfo) -> Self {
        self.token_for_audiences(token, user, &[DEFAULT_AUDIENCE])
    }

    /// A bearer token valid only for `audiences` (a TokenReview without audiences asks for the
    /// server's own, [`DEFAULT_AUDIENCE`]).
    pub fn token_for_audiences(mut self, token: &str, user: UserInfo, audiences: &[&str]) -> Self {
        let audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        self.reviews.tokens.insert(token.to_owned(), (user, audiences));
        self
    }

    /// Lets `subject` use `verbs` on the non-resource URLs `urls` (a ClusterRole's
    /// `nonResourceURLs` rule and its binding), as SubjectAccessReviews see it.
    pub fn allow_non_resource(mut self, subject: RbacSubject, verbs: &[&str], urls: &[&str]) -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        self.reviews.rules.push(NonResourceRule { subject, verbs: strings(verbs), urls: strings(urls) });
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    ///
    /// # Panics
    /// If the listener cannot be bound.
    pub async fn start(self) -> ApiServer {
        self.try_start().await.expect("the API emulator binds 127.0.0.1:0")
    }

    /// Like [`ApiServerBuilder::start`], returning the bind error.
    pub async fn try_start(self) -> std::io::Result<ApiServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut registry = Registry::default();
        for def in self.resources {
            registry.register(def);
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let store = Store::new(&registry, self.history_limit);
        let inner = Arc::new(Inner {
            registry,
            store: Mutex::new(store),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            delays: Mutex::new(Vec::new()),
            version: Mutex::new(self.version_info),
            bookmark_interval: Mutex::new(self.bookmark_interval),
            aggregated_discovery: self.aggregated_discovery,
            crds: self.crds,
            reviews: self.reviews,
            server_address: addr.to_string(),
            counters: Counters::default(),
            shutdown: shutdown_rx,
        });

        let accept_inner = inner.clone();
        let accept = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let inner = accept_inner.clone();
                let mut shutdown = inner.shutdown.clone();
                tokio::spawn(async move {
                    let svc_inner = inner.clone();
                    let svc = service_fn(move |req| server::handle(svc_inner.clone(), req));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = shutdown.changed() => {}
                    }
                });
            }
        });

        let tick_inner = inner.clone();
        let ticker = tokio::spawn(async move {
            loop {
                let interval = *lock(&tick_inner.bookmark_interval);
                tokio::time::sleep(interval.max(Duration::from_millis(1))).await;
                tick_inner.store().bookmark_tick();
            }
        });

        Ok(ApiServer { inner, addr, shutdown: shutdown_tx, tasks: vec![accept, ticker] })
    }
}

/// Counters of what the emulator did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The current resourceVersion.
    pub resource_version: u64,
    /// Watch streams currently open.
    pub open_watches: usize,
    /// ADDED/MODIFIED/DELETED events sent on watch streams.
    pub watch_events_sent: u64,
    /// BOOKMARK events sent.
    pub bookmarks_sent: u64,
    /// ERROR events sent (e.g. 410 Expired on resume).
    pub watch_errors_sent: u64,
    /// Requests rejected as malformed (answered 400, 415 or 422).
    pub malformed_requests: u64,
    /// Store counters (no-op writes, garbage-collected objects).
    pub store: StoreStats,
}

/// A running emulator. Dropping it shuts the server down.
pub struct ApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer").field("addr", &self.addr).finish()
    }
}

impl ApiServer {
    /// Starts an emulator with the defaults of [`ApiServerBuilder::new`].
    pub async fn start() -> Self {
        ApiServerBuilder::new().start().await
    }

    /// A builder, to register more resources or change the version.
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder::new()
    }

    // ----- connecting ----------------------------------------------------------------------

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig file with one context, `emulator`, pointing at the emulator, and
    /// returns its path (for processes: the binary under test, kubectl).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::path::PathBuf {
        std::fs::write(path, kubeconfig(&[("emulator", &self.url())])).expect("the kubeconfig is written");
        path.to_path_buf()
    }

    /// A kube config pointing at the emulator (default namespace `default`).
    pub fn config(&self) -> kube::Config {
        let url = self.url().parse().expect("http://127.0.0.1:<port> is a valid URI");
        kube::Config::new(url)
    }

    /// A real kube client over HTTP to the emulator.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a kube client for the emulator")
    }

    // ----- request log -----------------------------------------------------------------------

    /// Every request served so far, in the order the responses were produced.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.requests).clone()
    }

    /// The number of requests served so far that match.
    pub fn count(&self, pred: impl Fn(&RequestRecord) -> bool) -> usize {
        lock(&self.inner.requests).iter().filter(|r| pred(r)).count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    // ----- fault injection --------------------------------------------------------------------

    /// The next `times` requests matching `when` are answered with `fault` (a Status body; 429
    /// carries `Retry-After`). Rules are checked in the order they were added. In `when`, the
    /// record's `status` is 0.
    pub fn fail_next(&self, times: usize, fault: Fault, when: impl Fn(&RequestRecord) -> bool + Send + Sync + 'static) {
        lock(&self.inner.faults).push(FaultRule { remaining: times, fault, when: Box::new(when) });
    }

    /// Removes pending faults.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Delays every response by `delay` (`Duration::ZERO` removes all delays).
    pub fn set_delay(&self, delay: Duration) {
        let mut delays = lock(&self.inner.delays);
        delays.clear();
        if !delay.is_zero() {
            delays.push(DelayRule { delay, when: Box::new(|_| true) });
        }
    }

    /// Delays the responses to requests matching `when` (until [`ApiServer::set_delay`] with
    /// zero).
    pub fn delay_when(&self, delay: Duration, when: impl Fn(&RequestRecord) -> bool + Send + Sync + 'static) {
        lock(&self.inner.delays).push(DelayRule { delay, when: Box::new(when) });
    }

    /// Ends every open watch stream now (cleanly, as an API server restart or a load
    /// balancer timeout would); clients reconnect from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.inner.store().drop_watches();
    }

    /// Compacts the history: every resourceVersion handed out so far becomes too old, so
    /// watches resuming from one get a 410 `Expired` ERROR event and lists at one (`Exact`,
    /// `continue`) get HTTP 410. Open watches are not affected.
    pub fn expire_resource_versions(&self) {
        self.inner.store().expire();
    }

    /// Changes the interval of periodic bookmarks.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.inner.bookmark_interval) = interval;
    }

    /// Changes the `gitVersion` served by `/version`.
    pub fn set_git_version(&self, git_version: &str) {
        *lock(&self.inner.version) = discovery::version_info(git_version);
    }

    // ----- observation ------------------------------------------------------------------------

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store().current_rv()
    }

    /// The number of open watch streams.
    pub fn open_watches(&self) -> usize {
        self.inner.store().watch_count()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let store = self.inner.store();
        Stats {
            resource_version: store.current_rv(),
            open_watches: store.watch_count(),
            watch_events_sent: c.watch_events_sent.load(Ordering::Relaxed),
            bookmarks_sent: c.bookmarks_sent.load(Ordering::Relaxed),
            watch_errors_sent: c.watch_errors_sent.load(Ordering::Relaxed),
            malformed_requests: c.malformed_requests.load(Ordering::Relaxed),
            store: store.stats.clone(),
        }
    }

    /// Requests rejected as malformed so far (answered 400, 415 or 422).
    pub fn malformed_requests(&self) -> u64 {
        self.inner.counters.malformed_requests.load(Ordering::Relaxed)
    }

    // ----- direct store access ------------------------------------------------------------------

    fn resource_id(&self, gvr: &Gvr) -> usize {
        self.inner.registry.id(gvr).unwrap_or_else(|| panic!("resource {gvr} is not registered in the API emulator"))
    }

    /// Creates or replaces an object directly in the store (not a server-side apply): no
    /// validation, no managedFields; `uid` and `creationTimestamp` are filled in when missing,
    /// `generation` maintained for resources that track it. Watchers see the change; a
    /// replacement with identical content is a no-op. Returns the stored object.
    ///
    /// # Panics
    /// If `apiVersion`/`kind` name no registered resource or `metadata.name` is missing.
    pub fn apply_object(&self, obj: Value) -> Value {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let res = self
            .inner
            .registry
            .by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("{api_version} {kind} is not registered in the API emulator"));
        match self.inner.store().upsert(res, obj) {
            Ok(stored) => (*stored).clone(),
            Err(e) => panic!("apply_object: {e}"),
        }
    }

    /// Stores any JSON value as the object `namespace/name` of `gvr`, bypassing every check
    /// (only `metadata.resourceVersion` is set, when the value is an object). Lists and
    /// watches serve it as is: use it to feed malformed objects to a controller.
    pub fn insert_raw(&self, gvr: &Gvr, namespace: Option<&str>, name: &str, obj: Value) -> Value {
        let res = self.resource_id(gvr);
        let stored = self.inner.store().insert_raw(res, namespace.unwrap_or_default(), name, obj);
        (*stored).clone()
    }

    /// An object as stored.
    pub fn get_object(&self, gvr: &Gvr, namespace: Option<&str>, name: &str) -> Option<Value> {
        let res = self.resource_id(gvr);
        self.inner.store().get(res, namespace.unwrap_or_default(), name).map(|o| (*o).clone())
    }

    /// All objects of a resource (of one namespace if given), ordered by namespace and name.
    pub fn list_objects(&self, gvr: &Gvr, namespace: Option<&str>) -> Vec<Value> {
        let res = self.resource_id(gvr);
        self.inner.store().all(res, namespace).into_iter().map(|o| (*o).clone()).collect()
    }

    /// Deletes an object as a DELETE request would (finalizers honoured, dependents
    /// garbage-collected). Returns whether it existed.
    pub fn delete_object(&self, gvr: &Gvr, namespace: Option<&str>, name: &str) -> bool {
        let res = self.resource_id(gvr);
        self.inner.store().delete(res, namespace.unwrap_or_default(), name, &DeleteOpts::default()).is_ok()
    }

    /// Typed [`ApiServer::apply_object`].
    ///
    /// # Panics
    /// If the object does not serialise or the stored object does not deserialise as `K`.
    pub fn put<K>(&self, obj: &K) -> K
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let mut v = serde_json::to_value(obj).expect("the object serialises to JSON");
        if let Some(m) = v.as_object_mut() {
            m.entry("apiVersion").or_insert_with(|| Value::String(K::api_version(&()).into_owned()));
            m.entry("kind").or_insert_with(|| Value::String(K::kind(&()).into_owned()));
        }
        serde_json::from_value(self.apply_object(v)).expect("the stored object deserialises")
    }

    /// Typed [`ApiServer::get_object`].
    ///
    /// # Panics
    /// If the stored object does not deserialise as `K` (use `get_object` for raw ones).
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.get_object(&Gvr::of::<K>(), namespace, name)
            .map(|v| serde_json::from_value(v).expect("the stored object deserialises"))
    }

    /// Typed [`ApiServer::list_objects`].
    ///
    /// # Panics
    /// If a stored object does not deserialise as `K`.
    pub fn list<K>(&self, namespace: Option<&str>) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.list_objects(&Gvr::of::<K>(), namespace)
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("the stored object deserialises"))
            .collect()
    }

    /// Typed [`ApiServer::delete_object`].
    pub fn delete<K>(&self, namespace: Option<&str>, name: &str) -> bool
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.delete_object(&Gvr::of::<K>(), namespace, name)
    }
}

/// Waits until the async condition `cond` holds, polling every 10 ms; panics naming `what` after
/// `timeout`. The one wait helper of the emulator's tests and of the operator's scenarios: a test
/// waits on a condition, never for a fixed time.
///
/// # Panics
/// When `cond` does not hold within `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The text of a kubeconfig with one context per (name, server URL), each with its own cluster
/// and one anonymous user; the first context is the current one.
pub fn kubeconfig(contexts: &[(&str, &str)]) -> String {
    let current = contexts.first().map_or("", |c| c.0);
    let mut text = format!("apiVersion: v1\nkind: Config\ncurrent-context: {current:?}\nclusters:\n");
    for (name, url) in contexts {
        text.push_str(&format!("- name: {name:?}\n  cluster: {{server: {url:?}}}\n"));
    }
    text.push_str("contexts:\n");
    for (name, _) in contexts {
        text.push_str(&format!("- name: {name:?}\n  context: {{cluster: {name:?}, user: anonymous}}\n"));
    }
    text.push_str("users:\n- name: anonymous\n  user: {}\n");
    text
}
