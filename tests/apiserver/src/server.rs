//! The HTTP side: routing, request decoding, responses, watch streams.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::discovery;
use super::errors::{ApiError, Cause, Subject};
use super::record::{parse_query, DelayRule, FaultRule, RequestRecord};
use super::resources::{Registry, ResourceDef, Review};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{
    DeleteOpts, Deleted, ListPage, ListQuery, PatchBody, Propagation, RvMatch, Store, Sub, WatchMsg, WatchQuery,
    WriteCtx,
};
use super::{crds, openapi};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Counters of what the server sent or rejected.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) malformed_requests: AtomicU64,
    pub(crate) watch_events_sent: AtomicU64,
    pub(crate) bookmarks_sent: AtomicU64,
    pub(crate) watch_errors_sent: AtomicU64,
}

/// State shared by the server tasks and the [`ApiServer`](super::ApiServer) handle.
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) store: Mutex<Store>,
    pub(crate) requests: Mutex<Vec<RequestRecord>>,
    pub(crate) faults: Mutex<Vec<FaultRule>>,
    pub(crate) delays: Mutex<Vec<DelayRule>>,
    pub(crate) version: Mutex<Value>,
    pub(crate) bookmark_interval: Mutex<Duration>,
    pub(crate) aggregated_discovery: bool,
    /// Custom resources are served only while a CRD defines them (see `crds`).
    pub(crate) crds: bool,
    /// What TokenReviews and SubjectAccessReviews answer from.
    pub(crate) reviews: super::reviews::Reviews,
    pub(crate) server_address: String,
    pub(crate) counters: Counters,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Locks a mutex, recovering from poisoning (a panicking test thread must not wedge the
/// server for the rest of the test).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Whether a registered resource is served now: a custom resource needs its CRD when CRDs are on.
    fn served(&self, def: &ResourceDef) -> bool {
        !(self.crds && def.custom) || crds::serves(self.store().crd(&crds::crd_name(def)).as_deref(), def)
    }

    /// The served part of the registry, as discovery and OpenAPI show it.
    fn served_registry(&self) -> Registry {
        self.registry.filtered(|d| self.served(d))
    }

    /// The `openAPIV3Schema` of a custom resource, from its stored CRD.
    fn crd_schema(&self, def: &ResourceDef) -> Option<Value> {
        if !def.custom {
            return None;
        }
        let crd = self.store().crd(&crds::crd_name(def))?;
        crd["spec"]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == def.version.as_str())
            .map(|v| v["schema"]["openAPIV3Schema"].clone())
            .filter(|s| !s.is_null())
    }
}

// ----- routing ---------------------------------------------------------------------------

struct ResourceRoute {
    res: usize,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    legacy_watch: bool,
}

enum Route {
    Version,
    OpenApiRoot,
    OpenApi(String, String),
    CoreVersions,
    Groups,
    Group(String),
    GroupVersion(String, String),
    Resource(ResourceRoute),
}

fn route(registry: &Registry, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["openapi", "v3"] => return Ok(Route::OpenApiRoot),
        ["openapi", "v3", rest @ ..] => {
            return openapi::parse(rest).map(|(g, v)| Route::OpenApi(g, v)).ok_or(ApiError::PathNotFound)
        }
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["apis", g] => return Ok(Route::Group((*g).to_owned())),
        ["api", v] => return Ok(Route::GroupVersion(String::new(), (*v).to_owned())),
        ["apis", g, v] => return Ok(Route::GroupVersion((*g).to_owned(), (*v).to_owned())),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::PathNotFound),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let namespaced_target = match rest {
        ["namespaces", ns, resource, tail @ ..] => registry
            .lookup(group, version, resource)
            .filter(|id| registry.def(*id).namespaced)
            .map(|id| (id, Some((*ns).to_owned()), tail)),
        _ => None,
    };
    let (res, namespace, tail) = match namespaced_target {
        Some(t) => t,
        None => {
            let [resource, tail @ ..] = rest else {
                return Err(ApiError::PathNotFound);
            };
            let id = registry.lookup(group, version, resource).ok_or(ApiError::PathNotFound)?;
            if registry.def(id).namespaced && !tail.is_empty() {
                return Err(ApiError::PathNotFound);
            }
            (id, None, tail)
        }
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] => (Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Err(ApiError::PathNotFound),
    };
    if let Some(sub) = &sub {
        if sub != "status" || !registry.def(res).status_subresource {
            return Err(ApiError::PathNotFound);
        }
    }
    Ok(Route::Resource(ResourceRoute { res, namespace, name, sub, legacy_watch }))
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn is_watch(&self) -> bool {
        self.flag("watch")
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => {
                Err(ApiError::BadRequest(format!("unsupported dryRun value {other:?}: only \"All\" is supported")))
            }
        }
    }
}

fn verb(method: &Method, r: &ResourceRoute, params: &Params) -> &'static str {
    match (method.as_str(), r.name.is_some()) {
        ("GET", _) if r.legacy_watch || params.is_watch() => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
}

// ----- responses ---------------------------------------------------------------------------

fn full(code: u16, content_type: &str, bytes: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    full(code, "application/json", v.to_string().into_bytes())
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code(), &e.to_status())
}

/// The PartialObjectMetadata form of an object (`Accept: …;as=PartialObjectMetadata…`).
fn partial(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn object_response(obj: &Value, metadata_only: bool) -> Response<Body> {
    if metadata_only {
        json_response(200, &partial(obj))
    } else {
        json_response(200, obj)
    }
}

fn list_response(def: &ResourceDef, page: &ListPage, metadata_only: bool) -> Response<Body> {
    let mut meta = json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let (api_version, kind) = if metadata_only {
        ("meta.k8s.io/v1".to_owned(), "PartialObjectMetadataList".to_owned())
    } else {
        (def.api_version(), format!("{}List", def.kind))
    };
    let mut out = Vec::with_capacity(256 + page.items.len() * 1024);
    out.extend_from_slice(
        format!("{{\"apiVersion\":{},\"kind\":{},\"metadata\":{},\"items\":[", json!(api_version), json!(kind), meta)
            .as_bytes(),
    );
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let written = if metadata_only {
            serde_json::to_writer(&mut out, &partial(item))
        } else {
            serde_json::to_writer(&mut out, item.as_ref())
        };
        // Serialising a serde_json::Value into a Vec cannot fail.
        debug_assert!(written.is_ok());
    }
    out.extend_from_slice(b"]}");
    full(200, "application/json", out)
}

// ----- request handling ----------------------------------------------------------------------

/// Serves one HTTP request.
pub(crate) async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error_response(&ApiError::BadRequest(format!("failed to read the request body: {e}")))),
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let params = Params(parse_query(&query));
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let route = route(&inner.registry, &path);
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path,
        query,
        content_type: header("content-type"),
        accept: header("accept"),
        user_agent: header("user-agent"),
        field_manager: params.get("fieldManager").map(str::to_owned),
        body: String::from_utf8_lossy(&body).into_owned(),
        ..RequestRecord::default()
    };
    match &route {
        Ok(Route::Resource(r)) => {
            let def = inner.registry.def(r.res);
            record.verb = verb(&parts.method, r, &params).to_owned();
            record.group = def.group.clone();
            record.resource = def.plural.clone();
            record.subresource = r.sub.clone();
            record.namespace = r.namespace.clone();
            record.name = r.name.clone();
        }
        Ok(Route::Version) => record.verb = "version".to_owned(),
        Ok(_) => record.verb = "discovery".to_owned(),
        Err(_) => {}
    }

    let delay = lock(&inner.delays).iter().filter(|d| (d.when)(&record)).map(|d| d.delay).max();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }

    let fault = {
        let mut faults = lock(&inner.faults);
        let hit = faults.iter_mut().find(|f| f.remaining > 0 && (f.when)(&record)).map(|f| {
            f.remaining -= 1;
            f.fault.clone()
        });
        faults.retain(|f| f.remaining > 0);
        hit
    };
    let resp = match fault {
        Some(fault) => {
            let mut resp = error_response(&fault.to_error());
            if let Some(after) = fault.retry_after() {
                resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(after.as_secs()));
            }
            resp
        }
        None => match dispatch(&inner, &parts.method, &parts.headers, route, &params, &body, &record) {
            Ok(Reply::Response(r)) => r,
            Ok(Reply::Watch(w)) => start_watch(&inner, w),
            Err(e) => error_response(&e),
        },
    };
    let status = resp.status().as_u16();
    if matches!(status, 400 | 415 | 422) {
        inner.counters.malformed_requests.fetch_add(1, Ordering::Relaxed);
    }
    record.status = status;
    lock(&inner.requests).push(record);
    Ok(resp)
}

enum Reply {
    Response(Response<Body>),
    Watch(WatchRequest),
}

struct WatchRequest {
    res: usize,
    query: WatchQuery,
    timeout: Option<Duration>,
    metadata_only: bool,
}

fn dispatch(
    inner: &Inner,
    method: &Method,
    headers: &HeaderMap,
    route: Result<Route, ApiError>,
    params: &Params,
    body: &Bytes,
    record: &RequestRecord,
) -> Result<Reply, ApiError> {
    let route = route?;
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !matches!(route, Route::Resource(_)) && method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let aggregated = discovery::wants_aggregated(accept).filter(|_| inner.aggregated_discovery);
    let reply = |v: Value| Ok(Reply::Response(json_response(200, &v)));
    let served = || inner.served_registry();
    let schema_of = |def: &ResourceDef| inner.crd_schema(def);
    match route {
        Route::Version => reply(lock(&inner.version).clone()),
        Route::OpenApiRoot => reply(openapi::root(&served(), &schema_of)),
        Route::OpenApi(g, v) => openapi::group_version(&served(), &g, &v, &schema_of)
            .map(|v| Reply::Response(json_response(200, &v)))
            .ok_or(ApiError::PathNotFound),
        Route::CoreVersions => match aggregated {
            Some(v) => Ok(Reply::Response(full(
                200,
                discovery::aggregated_content_type(v),
                discovery::aggregated(&served(), true, v).to_string().into_bytes(),
            ))),
            None => reply(discovery::core_versions(&served(), &inner.server_address)),
        },
        Route::Groups => match aggregated {
            Some(v) => Ok(Reply::Response(full(
                200,
                discovery::aggregated_content_type(v),
                discovery::aggregated(&served(), false, v).to_string().into_bytes(),
            ))),
            None => reply(discovery::group_list(&served())),
        },
        Route::Group(g) => discovery::group(&served(), &g)
            .map(|v| Reply::Response(json_response(200, &v)))
            .ok_or(ApiError::PathNotFound),
        Route::GroupVersion(g, v) => discovery::resource_list(&served(), &g, &v)
            .map(|v| Reply::Response(json_response(200, &v)))
            .ok_or(ApiError::PathNotFound),
        Route::Resource(r) => {
            if !inner.served(inner.registry.def(r.res)) {
                return Err(ApiError::PathNotFound);
            }
            let metadata_only = accept.contains("as=PartialObjectMetadata");
            resource_request(inner, headers, r, params, body, record, metadata_only)
        }
    }
}

fn parse_json_body(body: &Bytes, content_type: &str) -> Result<Value, ApiError> {
    let parsed = if content_type.contains("yaml") {
        serde_json::from_slice(body)
            .or_else(|_| {
                std::str::from_utf8(body)
                    .map_err(|e| e.to_string())
                    .and_then(|text| serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string()))
            })
            .map_err(|e: String| e)
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    let v =
        parsed.map_err(|e| ApiError::BadRequest(format!("the body of the request was in an unknown format: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::BadRequest("the body of the request was in an unknown format: expected an object".to_owned()))
    }
}

fn options_invalid(kind: &str, field: &str, reason: &str, message: &str) -> ApiError {
    ApiError::invalid_field("meta.k8s.io", kind, field, reason, message)
}

fn selectors(def: &ResourceDef, params: &Params) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(params.get("fieldSelector").unwrap_or_default(), &def.field_selectors)?;
    Ok((labels, fields))
}

fn rv_match(params: &Params) -> Result<Option<RvMatch>, ApiError> {
    match params.get("resourceVersionMatch") {
        None | Some("") => Ok(None),
        Some("NotOlderThan") => Ok(Some(RvMatch::NotOlderThan)),
        Some("Exact") => Ok(Some(RvMatch::Exact)),
        Some(other) => Err(options_invalid(
            "ListOptions",
            "resourceVersionMatch",
            "FieldValueNotSupported",
            &format!("Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""),
        )),
    }
}

/// The field manager of a non-apply write: `fieldManager`, else the User-Agent's product name.
fn update_manager(params: &Params, headers: &HeaderMap) -> String {
    if let Some(m) = params.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    inner: &Inner,
    headers: &HeaderMap,
    r: ResourceRoute,
    params: &Params,
    body: &Bytes,
    record: &RequestRecord,
    metadata_only: bool,
) -> Result<Reply, ApiError> {
    let def = inner.registry.def(r.res).clone();
    let sub = if r.sub.is_some() { Sub::Status } else { Sub::Main };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if let Some(m) = params.get("fieldManager") {
        if m.len() > 128 {
            return Err(options_invalid(
                "PatchOptions",
                "fieldManager",
                "FieldValueTooLong",
                "Too long: may not be more than 128 bytes",
            ));
        }
    }
    if def.namespaced && r.namespace.is_none() && record.verb != "list" && record.verb != "watch" {
        return Err(ApiError::MethodNotAllowed);
    }
    let ns = r.namespace.clone().unwrap_or_default();
    if let Some(review) = def.review {
        if record.verb != "create" || r.name.is_some() {
            return Err(ApiError::MethodNotAllowed);
        }
        let obj = parse_json_body(body, &media)?;
        params.dry_run()?;
        let answer = match review {
            Review::Token => inner.reviews.token_review(&obj)?,
            Review::SubjectAccess => inner.reviews.subject_access_review(&obj)?,
        };
        return Ok(Reply::Response(json_response(201, &answer)));
    }
    let respond = |obj: &Value| Ok(Reply::Response(object_response(obj, metadata_only)));
    match record.verb.as_str() {
        "watch" => {
            let (labels, mut fields) = selectors(&def, params)?;
            if let Some(name) = &r.name {
                fields = FieldSelector::parse(&format!("metadata.name={name}"), &[])?;
            }
            let send_initial_events = match params.get("sendInitialEvents") {
                None | Some("") => None,
                Some("true" | "1") => Some(true),
                Some(_) => Some(false),
            };
            let bookmarks = params.flag("allowWatchBookmarks");
            let rv_match = rv_match(params)?;
            match (send_initial_events, rv_match) {
                (Some(_), Some(RvMatch::NotOlderThan)) => {}
                (Some(_), _) => {
                    return Err(options_invalid(
                        "ListOptions",
                        "resourceVersionMatch",
                        "FieldValueForbidden",
                        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    ))
                }
                (None, Some(_)) => {
                    return Err(options_invalid(
                        "ListOptions",
                        "resourceVersionMatch",
                        "FieldValueForbidden",
                        "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ))
                }
                (None, None) => {}
            }
            if send_initial_events == Some(true) && !bookmarks {
                return Err(options_invalid(
                    "ListOptions",
                    "allowWatchBookmarks",
                    "FieldValueForbidden",
                    "Forbidden: allowWatchBookmarks must be set to true when sendInitialEvents is true",
                ));
            }
            let timeout = match params.get("timeoutSeconds") {
                None | Some("") => None,
                Some(t) => Some(Duration::from_secs(
                    t.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds: {t:?}")))?,
                )),
            };
            Ok(Reply::Watch(WatchRequest {
                res: r.res,
                query: WatchQuery {
                    namespace: r.namespace.clone(),
                    labels,
                    fields,
                    resource_version: params.get("resourceVersion").map(str::to_owned),
                    send_initial_events,
                    bookmarks,
                },
                timeout,
                metadata_only,
            }))
        }
        "list" => {
            let (labels, fields) = selectors(&def, params)?;
            let limit = match params.get("limit") {
                None | Some("") => None,
                Some(l) => Some(l.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("invalid limit: {l:?}")))?),
            };
            let query = ListQuery {
                namespace: r.namespace.clone(),
                labels,
                fields,
                limit,
                continue_token: params.get("continue").filter(|c| !c.is_empty()).map(str::to_owned),
                resource_version: params.get("resourceVersion").map(str::to_owned),
                rv_match: rv_match(params)?,
            };
            let page = inner.store().list(r.res, &query)?;
            Ok(Reply::Response(list_response(&def, &page, metadata_only)))
        }
        "get" => {
            let name = r.name.as_deref().unwrap_or_default();
            let obj = inner.store().get_or_404(r.res, &ns, name)?;
            respond(&obj)
        }
        "create" => {
            if r.name.is_some() {
                return Err(ApiError::MethodNotAllowed);
            }
            let obj = parse_json_body(body, &media)?;
            let ctx = WriteCtx { sub, manager: Some(update_manager(params, headers)), dry_run: params.dry_run()? };
            let created = inner.store().create(r.res, &ns, obj, &ctx)?;
            Ok(Reply::Response(json_response(201, &created)))
        }
        "update" => {
            let name = r.name.as_deref().unwrap_or_default();
            let obj = parse_json_body(body, &media)?;
            let ctx = WriteCtx { sub, manager: Some(update_manager(params, headers)), dry_run: params.dry_run()? };
            let updated = inner.store().update(r.res, &ns, name, obj, &ctx)?;
            respond(&updated)
        }
        "patch" => {
            let name = r.name.as_deref().unwrap_or_default();
            let dry_run = params.dry_run()?;
            if media == "application/apply-patch+yaml" {
                let manager = params.get("fieldManager").filter(|m| !m.is_empty());
                let Some(manager) = manager else {
                    return Err(options_invalid(
                        "PatchOptions",
                        "fieldManager",
                        "FieldValueRequired",
                        "Required value: is required for apply patch",
                    ));
                };
                let obj = parse_json_body(body, "yaml")?;
                let ctx = WriteCtx { sub, manager: Some(manager.to_owned()), dry_run };
                let force = params.flag("force");
                // An apply that creates the object answers 201 Created, as a real server does
                // (and is authorized as `create` too).
                let (applied, created) = {
                    let mut store = inner.store();
                    let existed = store.get(r.res, &ns, name).is_some();
                    (store.apply(r.res, &ns, name, obj, &ctx, force)?, !existed)
                };
                let body = if metadata_only { partial(&applied) } else { (*applied).clone() };
                return Ok(Reply::Response(json_response(if created { 201 } else { 200 }, &body)));
            }
            if params.get("force").is_some() {
                return Err(options_invalid(
                    "PatchOptions",
                    "force",
                    "FieldValueForbidden",
                    "Forbidden: may not be specified for non-apply patch",
                ));
            }
            let patch = match media.as_str() {
                "application/merge-patch+json" => PatchBody::Merge(
                    serde_json::from_slice(body).map_err(|e| {
                        ApiError::BadRequest(format!("invalid merge patch: {e}"))
                    })?,
                ),
                "application/strategic-merge-patch+json" if def.custom => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for custom resources like {})",
                        def.qualified()
                    )));
                }
                // Strategic merge patch is served as a JSON merge patch: no list merge keys,
                // no `$patch` directives.
                "application/strategic-merge-patch+json" => PatchBody::Merge(
                    serde_json::from_slice(body).map_err(|e| {
                        ApiError::BadRequest(format!("invalid strategic merge patch: {e}"))
                    })?,
                ),
                "application/json-patch+json" => PatchBody::Json(
                    serde_json::from_slice(body).map_err(|e| {
                        ApiError::BadRequest(format!("invalid JSON patch: {e}"))
                    })?,
                ),
                other => {
                    return Err(ApiError::UnsupportedMediaType(format!(
                        "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                    )))
                }
            };
            let ctx = WriteCtx { sub, manager: Some(update_manager(params, headers)), dry_run };
            let patched = inner.store().patch(r.res, &ns, name, &patch, &ctx)?;
            respond(&patched)
        }
        "delete" | "deletecollection" => {
            let opts = delete_options(params, body)?;
            if let Some(name) = r.name.as_deref() {
                let deleted = inner.store().delete(r.res, &ns, name, &opts)?;
                return Ok(Reply::Response(match deleted {
                    Deleted::Pending(obj) => json_response(200, &obj),
                    Deleted::Gone(obj) => json_response(
                        200,
                        &json!({
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Success",
                            "details": {
                                "name": name,
                                "group": def.group,
                                "kind": def.plural,
                                "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
                            },
                        }),
                    ),
                }));
            }
            let (labels, fields) = selectors(&def, params)?;
            let query = ListQuery {
                namespace: r.namespace.clone(),
                labels,
                fields,
                limit: None,
                continue_token: None,
                resource_version: None,
                rv_match: None,
            };
            let mut store = inner.store();
            let page = store.list(r.res, &query)?;
            let mut items = Vec::new();
            for item in &page.items {
                let ins = item.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
                let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                match store.delete(r.res, ins, name, &opts) {
                    Ok(Deleted::Gone(o) | Deleted::Pending(o)) => items.push(o),
                    Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let page = ListPage { items, resource_version: store.current_rv(), continue_token: None, remaining: None };
            Ok(Reply::Response(list_response(&def, &page, false)))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn delete_options(params: &Params, body: &Bytes) -> Result<DeleteOpts, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    let propagation = body.get("propagationPolicy").and_then(Value::as_str).or_else(|| params.get("propagationPolicy"));
    let propagation = match propagation {
        None | Some("") | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(options_invalid(
                "DeleteOptions",
                "propagationPolicy",
                "FieldValueNotSupported",
                &format!("Unsupported value: {other:?}"),
            ))
        }
    };
    let dry_run = match body.get("dryRun").and_then(Value::as_array) {
        Some(d) => d.iter().any(|v| v == "All"),
        None => params.dry_run()?,
    };
    let precondition =
        |k: &str| body.pointer(&format!("/preconditions/{k}")).and_then(Value::as_str).map(str::to_owned);
    Ok(DeleteOpts { propagation, uid: precondition("uid"), resource_version: precondition("resourceVersion"), dry_run })
}

// ----- watch streams ----------------------------------------------------------------------

/// A response body fed by a channel; the sender notices when the client goes away.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn push_event(buf: &mut Vec<u8>, kind: &str, obj: &Value) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    // Serialising a serde_json::Value into a Vec cannot fail.
    let written = serde_json::to_writer(&mut *buf, obj);
    debug_assert!(written.is_ok());
    buf.extend_from_slice(b"}\n");
}

fn bookmark(def: &ResourceDef, rv: u64, initial_end: bool, metadata_only: bool) -> Value {
    let (api_version, kind) = if metadata_only {
        ("meta.k8s.io/v1".to_owned(), "PartialObjectMetadata".to_owned())
    } else {
        (def.api_version(), def.kind.clone())
    };
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    json!({ "apiVersion": api_version, "kind": kind, "metadata": meta })
}

/// Removes the subscriber when the stream task ends, however it ends.
struct Unsubscribe {
    inner: Arc<Inner>,
    res: usize,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.inner.store().unsubscribe(self.res, self.id);
    }
}

fn start_watch(inner: &Arc<Inner>, w: WatchRequest) -> Response<Body> {
    let def = inner.registry.def(w.res).clone();
    let registered = inner.store().watch(w.res, w.query);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut resp = Response::new(ChannelBody(rx).boxed_unsync());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut sub = match registered {
        Ok(sub) => sub,
        Err(e @ (ApiError::Expired(_) | ApiError::Timeout(_))) => {
            // A real server answers 200 and sends the error as an ERROR event.
            let mut buf = Vec::new();
            push_event(&mut buf, "ERROR", &e.to_status());
            inner.counters.watch_errors_sent.fetch_add(1, Ordering::Relaxed);
            let _ = tx.try_send(Bytes::from(buf));
            return resp;
        }
        Err(e) => return error_response(&e),
    };
    let inner = inner.clone();
    let metadata_only = w.metadata_only;
    let deadline = w.timeout.map(|t| tokio::time::Instant::now() + t);
    tokio::spawn(async move {
        let _guard = Unsubscribe { inner: inner.clone(), res: w.res, id: sub.id };
        let mut shutdown = inner.shutdown.clone();
        let render = |obj: &Value| if metadata_only { partial(obj) } else { obj.clone() };
        let mut buf = Vec::new();
        let mut events = 0u64;
        for (kind, obj) in std::mem::take(&mut sub.initial) {
            push_event(&mut buf, kind.as_str(), &render(&obj));
            events += 1;
            if buf.len() > 64 * 1024 && tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_err() {
                return;
            }
        }
        if let Some(rv) = sub.initial_end {
            push_event(&mut buf, "BOOKMARK", &bookmark(&def, rv, true, metadata_only));
            inner.counters.bookmarks_sent.fetch_add(1, Ordering::Relaxed);
        }
        inner.counters.watch_events_sent.fetch_add(events, Ordering::Relaxed);
        if !buf.is_empty() && tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_err() {
            return;
        }
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            let msg = tokio::select! {
                msg = sub.rx.recv() => msg,
                () = &mut expired => None,
                () = tx.closed() => None,
                _ = shutdown.changed() => None,
            };
            let Some(first) = msg else { break };
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    WatchMsg::Event(kind, obj) => {
                        push_event(&mut buf, kind.as_str(), &render(&obj));
                        inner.counters.watch_events_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    WatchMsg::Bookmark(rv) => {
                        push_event(&mut buf, "BOOKMARK", &bookmark(&def, rv, false, metadata_only));
                        inner.counters.bookmarks_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next = if buf.len() < 64 * 1024 { sub.rx.try_recv().ok() } else { None };
            }
            if tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_err() {
                break;
            }
        }
    });
    resp
}
