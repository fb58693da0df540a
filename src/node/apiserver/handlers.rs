//! Request handling: authentication outcome, routing, authorization, then the generic verbs
//! (get, list, watch, create, update, patch, delete) over any registered resource type.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::auth::{self, Attributes, User};
use super::deletion::{self, DeleteOptions, Deleted};
use super::discovery;
use super::openapi::strict;
use super::patch;
use super::resources::ResourceType;
use super::routes::{self, ResourcePath, Route};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::storage::{self, Filter, Store, WatchOut};
use super::subresources;
use super::table::{self, IncludeObject};
use super::validation;
use super::{apply, collector, review, services};

/// The Content-Type of server-side apply.
const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// Request bodies above this are refused with 413, as upstream's 3 MiB limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How much of an oversized body is read and dropped before the connection is given up.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;
/// Namespaces upstream refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
/// How long a watch lasts when the client names no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a watch with `allowWatchBookmarks` reports its progress.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler shares.
pub struct State {
    pub store: Store,
    /// `host:port` clients are told to use (`/api`'s serverAddressByClientCIDRs).
    pub server_address: String,
    /// Set once the default namespaces exist; `/readyz` fails before.
    pub bootstrapped: AtomicBool,
    /// Where Services get their ClusterIPs and NodePorts.
    pub services: services::Ranges,
    /// What new pods are given on create.
    pub admission: super::defaults::Admission,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .expect("static response parts are valid")
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

fn text(code: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "text/plain; charset=utf-8")
        .body(full(body.to_string()))
        .expect("static response parts are valid")
}

/// Percent-decoding for query strings (`+` is a space, as Go's url.ParseQuery has it).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn is_true(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("1" | "true" | "True"))
}

/// Answer one request from `user` (None: no valid client certificate).
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    user: Option<User>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let public = auth::PUBLIC_PATHS.contains(&path.as_str());
    let Some(user) = user.or_else(|| {
        public.then(|| User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        })
    }) else {
        return error_response(&ApiError::unauthorized());
    };
    match dispatch(&state, req, &user, &path, public).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn dispatch(
    state: &Arc<State>,
    req: Request<Incoming>,
    user: &User,
    path: &str,
    public: bool,
) -> Result<Response<Body>, ApiError> {
    let route = routes::parse(path);
    let get_only = |doc: Value| -> Result<Response<Body>, ApiError> {
        if req.method() != Method::GET {
            return Err(ApiError::method_not_allowed(req.method().as_str()));
        }
        Ok(json_response(200, &doc))
    };
    let aggregated = discovery::wants_aggregated(header(&req, "accept").unwrap_or_default());
    // `/api` and `/apis` answer aggregated discovery when asked, labelled so client-go knows.
    let discovery_doc = |core: bool, legacy: Value| match aggregated {
        Some(v) => get_only(discovery::aggregated(core, v)).map(|mut r| {
            r.headers_mut().insert(
                "content-type",
                discovery::aggregated_content_type(v)
                    .parse()
                    .expect("the content type is a valid header value"),
            );
            r
        }),
        None => get_only(legacy),
    };
    if !matches!(route, Route::Resource(_)) && !public {
        auth::authorize_path(user, &req.method().as_str().to_lowercase(), path)?;
    }
    match route {
        Route::Health(which) => Ok(health(state, which).await),
        Route::Version => get_only(discovery::version()),
        Route::CoreVersions => discovery_doc(true, discovery::core_versions(&state.server_address)),
        Route::Groups => discovery_doc(false, discovery::group_list()),
        Route::Group(g) => get_only(discovery::api_group(&g).ok_or_else(ApiError::not_found_path)?),
        Route::ResourceList { group, version } => {
            get_only(discovery::resource_list(&group, &version))
        }
        Route::OpenApiV2 | Route::OpenApiV3(Some(_)) if req.method() != Method::GET => {
            Err(ApiError::method_not_allowed(req.method().as_str()))
        }
        Route::OpenApiV2 => {
            let accept = req.headers().get("accept").and_then(|h| h.to_str().ok());
            Ok(super::openapi::v2_response(accept.unwrap_or_default()))
        }
        Route::OpenApiV3(None) => get_only(super::openapi::root()),
        Route::OpenApiV3(Some(gv)) => {
            super::openapi::group_version_response(&gv).ok_or_else(ApiError::not_found_path)
        }
        Route::NotFound => Err(ApiError::not_found_path()),
        Route::Resource(rp) => resource(state, req, user, rp).await,
    }
}

async fn health(state: &State, which: &str) -> Response<Body> {
    if which != "readyz" {
        return text(200, "ok");
    }
    let etcd = state.store.etcd.current_revision().await.is_ok();
    let boot = state.bootstrapped.load(Ordering::SeqCst);
    if etcd && boot {
        return text(200, "ok");
    }
    let mut body = String::new();
    body.push_str(if etcd {
        "[+]etcd ok\n"
    } else {
        "[-]etcd failed: reason withheld\n"
    });
    body.push_str(if boot {
        "[+]poststarthook/bootstrap-controller ok\n"
    } else {
        "[-]poststarthook/bootstrap-controller failed: reason withheld\n"
    });
    body.push_str("readyz check failed\n");
    text(500, &body)
}

fn header<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|h| h.to_str().ok())
}

/// The verb upstream's authorizer would see.
fn verb_of(
    method: &Method,
    rp: &ResourcePath,
    q: &HashMap<String, String>,
) -> Result<&'static str, ApiError> {
    let verb = verb_of_request(method, rp, q)?;
    // Review types take only create; subresources say their own verbs in discovery.
    let allowed = match rp.subresource.as_deref() {
        None => rp.rt.verbs.contains(&verb),
        Some(sub) => super::resources::subresource(rp.rt, sub)
            .verbs
            .contains(&verb),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    Ok(verb)
}

fn verb_of_request(
    method: &Method,
    rp: &ResourcePath,
    q: &HashMap<String, String>,
) -> Result<&'static str, ApiError> {
    Ok(match (method, rp.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if rp.watch || is_true(q, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) if rp.subresource.is_none() => "create",
        // binding and eviction are created on a pod.
        (&Method::POST, true) if rp.subresource.is_some() => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) if rp.subresource.is_none() => "delete",
        (&Method::DELETE, false) => "deletecollection",
        (m, _) => return Err(ApiError::method_not_allowed(m.as_str())),
    })
}

async fn resource(
    state: &Arc<State>,
    req: Request<Incoming>,
    user: &User,
    rp: ResourcePath,
) -> Result<Response<Body>, ApiError> {
    let q = parse_query(req.uri().query());
    let verb = verb_of(req.method(), &rp, &q)?;
    auth::authorize(
        user,
        &Attributes {
            verb,
            resource: rp.rt.plural,
            subresource: rp.subresource.as_deref(),
            group: rp.rt.group,
            namespace: rp.namespace.as_deref(),
            name: rp.name.as_deref(),
        },
    )?;
    if let (Some("log"), Some(ns), Some(name)) = (
        rp.subresource.as_deref(),
        rp.namespace.as_deref(),
        rp.name.as_deref(),
    ) {
        if req.method() != Method::GET {
            return Err(ApiError::method_not_allowed(req.method().as_str()));
        }
        return super::proxy::pod_log(state, ns, name, &q).await;
    }
    if let (Some(sub @ ("exec" | "attach" | "portforward")), Some(ns), Some(name)) = (
        rp.subresource.as_deref(),
        rp.namespace.as_deref(),
        rp.name.as_deref(),
    ) {
        return super::stream::pod_stream(state, req, ns, name, sub).await;
    }
    let accept = req
        .headers()
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    // Work left over from before a restart (finalizers, orphaned dependents) is picked up
    // once etcd has answered a request.
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| {
        let store = state.store.clone();
        tokio::spawn(async move {
            if let Err(e) = collector::sweep(&store).await {
                eprintln!("garbage collection sweep failed: {e}");
            }
        });
    });
    // Upstream names a manager that gave no fieldManager by its user agent's program name.
    let agent = header(&req, "user-agent").unwrap_or_default();
    let manager = q
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| agent.split('/').next().unwrap_or_default().to_string());
    let ctx = Ctx {
        state: state.clone(),
        rt: rp.rt,
        ns: rp.namespace.clone(),
        table: table::wants_table(&accept),
        include: IncludeObject::parse(q.get("includeObject").map(String::as_str)),
        dry_run: deletion::parse_dry_run(q.get("dryRun").map(String::as_str))?,
        manager: Some(manager).filter(|m| !m.is_empty()),
        explicit_manager: q.contains_key("fieldManager"),
        force: is_true(&q, "force"),
        validation: strict::Mode::parse(&q),
        warnings: Default::default(),
    };
    if !rp.rt.stored() {
        let body = read_body(req).await?;
        let answer = review::answer(rp.rt, user, &decode_body(&body, &content_type)?)?;
        return Ok(json_response(201, &answer));
    }
    let response = match verb {
        "get" => {
            ctx.get(
                rp.name.as_deref().unwrap_or_default(),
                rp.subresource.as_deref(),
            )
            .await
        }
        "list" => ctx.list(&q).await,
        "watch" => ctx.watch(&q).await,
        "deletecollection" => ctx.delete_collection(&q).await,
        _ => {
            let body = read_body(req).await?;
            let name = rp.name.clone().unwrap_or_default();
            // `?fieldValidation=Strict` (kubectl's default) refuses unknown fields; `scale`
            // bodies are Scale objects, not this type, so only the object and status are checked.
            let strict_applies = matches!(rp.subresource.as_deref(), None | Some("status"));
            let strict = |obj| {
                if !strict_applies {
                    return Ok(obj);
                }
                // Duplicate keys only survive in JSON text; serde keeps the last, as upstream.
                let dups = match content_type.starts_with("application/json") {
                    true => strict::duplicate_fields(&body),
                    false => Vec::new(),
                };
                if ctx.validation == strict::Mode::Warn {
                    ctx.warn(dups.iter().map(|d| strict::duplicate_warning(d)));
                }
                strict::check_types(rp.rt, &obj)?;
                strict::check_object(rp.rt, &q, obj, &dups)
            };
            match verb {
                "create" if rp.subresource.is_some() => {
                    let sub = rp.subresource.as_deref().unwrap_or_default();
                    ctx.create_subresource(&name, sub, decode_body(&body, &content_type)?)
                        .await
                }
                "create" => {
                    ctx.create(strict(decode_body(&body, &content_type)?)?)
                        .await
                }
                "update" => {
                    ctx.update(
                        &name,
                        rp.subresource.as_deref(),
                        strict(decode_body(&body, &content_type)?)?,
                    )
                    .await
                }
                "patch" => {
                    if strict_applies {
                        strict::check_patch(rp.rt, &q, &content_type, &body)?;
                    }
                    ctx.patch(&name, rp.subresource.as_deref(), &content_type, &body)
                        .await
                }
                _ => {
                    let opts = if body.is_empty() {
                        Value::Null
                    } else {
                        decode_body(&body, &content_type)?
                    };
                    ctx.delete(&name, &DeleteOptions::parse(&opts, &q)?).await
                }
            }
        }
    }?;
    Ok(ctx.with_warnings(response))
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let mut too_big = declared > MAX_BODY;
    let mut body = req.into_body();
    let mut buf = Vec::new();
    let mut total = 0usize;
    // An oversized body is still read (up to a bound) and dropped, so the client finishes
    // sending and gets the 413 Status instead of a broken pipe.
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total > MAX_BODY {
                too_big = true;
                buf = Vec::new();
            } else if !too_big {
                buf.extend_from_slice(&data);
            }
        }
        if total > DRAIN_LIMIT {
            break;
        }
    }
    if too_big {
        return Err(ApiError::too_large());
    }
    Ok(Bytes::from(buf))
}

/// JSON, YAML or Kubernetes protobuf, by Content-Type.
fn decode_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    let v: Value = match ct {
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let s = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            serde_saphyr::from_str(s)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?
        }
        super::protobuf::CONTENT_TYPE => super::protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!("could not decode the protobuf request body: {e}"))
        })?,
        _ => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?,
    };
    Ok(v)
}

pub(super) fn map_storage(rt: &ResourceType, name: &str, e: storage::Error) -> ApiError {
    match e {
        storage::Error::NotFound => ApiError::not_found(rt, name),
        storage::Error::AlreadyExists => ApiError::already_exists(rt, name),
        storage::Error::Conflict => ApiError::conflict(rt, name),
        storage::Error::Rejected(e) => e,
        storage::Error::BadContinue => ApiError::bad_request("continue key is not valid"),
        storage::Error::Etcd(super::etcd::Error::Compacted(_)) => ApiError::gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ),
        other => ApiError::internal(other),
    }
}

/// One request's view of a resource type.
struct Ctx {
    state: Arc<State>,
    rt: &'static ResourceType,
    ns: Option<String>,
    table: bool,
    include: IncludeObject,
    /// `dryRun=All`: everything but the write.
    dry_run: bool,
    /// Who writes, for managedFields: `fieldManager`, else the user agent's program name.
    manager: Option<String>,
    /// Whether the manager was named by `fieldManager` (server-side apply requires it).
    explicit_manager: bool,
    /// `force=true`: an apply takes over fields other appliers own.
    force: bool,
    /// `fieldValidation`: what unknown and duplicate fields get.
    validation: strict::Mode,
    /// Warnings for the client, sent as `Warning` headers with the answer.
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Ctx {
    fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }

    fn warn(&self, texts: impl IntoIterator<Item = String>) {
        if let Ok(mut w) = self.warnings.lock() {
            w.extend(texts);
        }
    }

    /// Drop the fields the schema does not know, as upstream's decoder does; with
    /// `fieldValidation=Warn` (the default) each one becomes a warning.
    fn prune(&self, obj: &mut Value) -> Vec<String> {
        let gone = strict::prune(self.rt, obj);
        match self.validation {
            strict::Mode::Warn => gone.iter().map(|g| strict::unknown_warning(g)).collect(),
            _ => Vec::new(),
        }
    }

    /// `resp` with one `Warning: 299 - "..."` header per warning, as upstream sends them.
    fn with_warnings(&self, mut resp: Response<Body>) -> Response<Body> {
        let warnings = self.warnings.lock().map(|w| w.clone()).unwrap_or_default();
        for w in warnings {
            let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
            if let Ok(v) = format!("299 - \"{quoted}\"").parse() {
                resp.headers_mut().append("warning", v);
            }
        }
        resp
    }

    fn err(&self, name: &str) -> impl Fn(storage::Error) -> ApiError + '_ {
        let name = name.to_string();
        move |e| map_storage(self.rt, &name, e)
    }

    fn respond(&self, code: u16, obj: &Value) -> Response<Body> {
        if self.table {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            let t = table::table(
                self.rt.printer,
                std::slice::from_ref(obj),
                rv,
                None,
                self.include,
                true,
            );
            return json_response(code, &t);
        }
        json_response(code, obj)
    }

    async fn get(&self, name: &str, sub: Option<&str>) -> Result<Response<Body>, ApiError> {
        let obj = self
            .state
            .store
            .get(self.rt, self.ns(), name)
            .await
            .map_err(self.err(name))?;
        if sub == Some("scale") {
            return Ok(json_response(200, &subresources::to_scale(&obj)));
        }
        Ok(self.respond(200, &obj))
    }

    fn filter(&self, q: &HashMap<String, String>) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(
            q.get("labelSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(
            q.get("fieldSelector")
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Arc::new(move |o: &Value| {
            labels.matches(o) && fields.matches(o)
        }))
    }

    async fn list(&self, q: &HashMap<String, String>) -> Result<Response<Body>, ApiError> {
        let filter = self.filter(q)?;
        let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        let page = self
            .state
            .store
            .list(
                self.rt,
                self.ns(),
                &filter,
                limit,
                q.get("continue").map(String::as_str),
            )
            .await
            .map_err(self.err(""))?;
        let rv = page.revision.to_string();
        if self.table {
            let t = table::table(
                self.rt.printer,
                &page.items,
                &rv,
                page.continue_token.as_deref(),
                self.include,
                true,
            );
            return Ok(json_response(200, &t));
        }
        let mut metadata = json!({"resourceVersion": rv});
        if let Some(c) = &page.continue_token {
            metadata["continue"] = json!(c);
        }
        Ok(json_response(
            200,
            &json!({
                "kind": format!("{}List", self.rt.kind),
                "apiVersion": self.rt.group_version(),
                "metadata": metadata,
                "items": page.items,
            }),
        ))
    }

    async fn watch(&self, q: &HashMap<String, String>) -> Result<Response<Body>, ApiError> {
        let filter = self.filter(q)?;
        let rv = q
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or_default();
        let bookmarks = is_true(q, "allowWatchBookmarks");
        let send_initial = q.get("sendInitialEvents").map(String::as_str) == Some("true");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT);
        let store = &self.state.store;
        // "" and "0" (or sendInitialEvents) mean: the current state as ADDED events, then changes.
        let mut initial = Vec::new();
        let from = if rv.is_empty() || rv == "0" || send_initial {
            let page = store
                .list(self.rt, self.ns(), &filter, 0, None)
                .await
                .map_err(self.err(""))?;
            initial = page.items;
            page.revision
        } else {
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?
        };
        let mut first: Vec<WatchOut> = initial
            .into_iter()
            .map(|object| WatchOut::Event {
                kind: "ADDED",
                object,
                revision: from,
            })
            .collect();
        if send_initial && bookmarks {
            first.push(WatchOut::Progress(-from));
        }
        let events = store.watch(self.rt, self.ns(), from, filter).await;
        let events: std::pin::Pin<Box<dyn Stream<Item = WatchOut> + Send>> = match events {
            Ok(s) => Box::pin(s),
            Err(storage::Error::Etcd(super::etcd::Error::Compacted(c))) => {
                Box::pin(futures::stream::iter([WatchOut::Error(ApiError::gone(
                    format!("too old resource version: {from} ({c})"),
                ))]))
            }
            Err(e) => return Err(map_storage(self.rt, "", e)),
        };
        let ticks = futures::stream::unfold((), |()| async {
            tokio::time::sleep(BOOKMARK_INTERVAL).await;
            Some((WatchOut::Progress(0), ()))
        });
        let merged = futures::stream::select(
            events,
            ticks.filter(move |_| futures::future::ready(bookmarks)),
        );
        let all = futures::stream::iter(first).chain(merged);
        let rt = self.rt;
        let (as_table, include) = (self.table, self.include);
        let encoder = WatchEncoder {
            rt,
            as_table,
            include,
            last_rev: from,
            columns_sent: false,
            bookmarks,
            done: false,
        };
        let lines = all
            .scan(encoder, |enc, item| {
                futures::future::ready(if enc.done {
                    None
                } else {
                    Some(enc.encode(item))
                })
            })
            .filter_map(futures::future::ready)
            .take_until(tokio::time::sleep(timeout));
        let body = StreamBody::new(lines.map(|b| Ok::<_, Infallible>(Frame::data(b))));
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(BodyExt::boxed_unsync(body))
            .expect("static response parts are valid"))
    }

    async fn create(&self, obj: Value) -> Result<Response<Body>, ApiError> {
        let (name, mut obj) = self.prepare_new(obj)?;
        if let Some(m) = &self.manager {
            apply::record_update(None, &mut obj, m, &self.rt.group_version());
        }
        let created = self.insert(&name, obj).await?;
        Ok(self.respond(201, &created))
    }

    /// A new object checked and defaulted for storing, with its name.
    fn prepare_new(&self, mut obj: Value) -> Result<(String, Value), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        self.check_kind(&obj)?;
        obj["kind"] = json!(self.rt.kind);
        obj["apiVersion"] = json!(self.rt.group_version());
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = &mut obj["metadata"];
        if self.rt.namespaced {
            let ns = self.ns.clone().ok_or_else(|| {
                ApiError::bad_request("a namespace is required to create this resource")
            })?;
            match meta["namespace"].as_str() {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta["namespace"] = json!(ns),
            }
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        let name = match meta["name"].as_str().filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match meta["generateName"].as_str().filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", validation::random_suffix()),
                None => String::new(),
            },
        };
        validation::validate_name(self.rt, &name)?;
        meta["name"] = json!(name);
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("selfLink");
        }
        validation::validate_metadata(self.rt, &obj)?;
        let warnings = self.prune(&mut obj);
        self.warn(warnings);
        prepare_for_create(self.rt, &mut obj);
        super::defaults::apply(self.rt, &mut obj, Some(&self.state.admission));
        super::spec_validation::validate(self.rt, &obj)?;
        Ok((name, obj))
    }

    /// Store a prepared object (or, dry run, check that it could be stored).
    async fn insert(&self, name: &str, obj: Value) -> Result<Value, ApiError> {
        if let Some(ns) = self.ns().filter(|_| self.rt.namespaced) {
            let nsrt =
                super::resources::find("", "v1", "namespaces").expect("namespaces are registered");
            let namespace = self
                .state
                .store
                .get(nsrt, None, ns)
                .await
                .map_err(|e| map_storage(nsrt, ns, e))?;
            if !namespace["metadata"]["deletionTimestamp"].is_null() {
                let mut e = ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        self.rt.qualified()
                    ),
                );
                e.details = Some(json!({"name": name, "kind": self.rt.plural}));
                return Err(e);
            }
        }
        let service = services::is_service(self.rt);
        let mut attempt = 0;
        loop {
            let mut obj = obj.clone();
            let explicit = match service {
                true => {
                    let used = services::Used::read(&self.state.store)
                        .await
                        .map_err(self.err(name))?;
                    services::prepare_create(&self.state.services, &used, &mut obj)?
                }
                false => Vec::new(),
            };
            if self.dry_run {
                return match self.state.store.get(self.rt, self.ns(), name).await {
                    Ok(_) => Err(ApiError::already_exists(self.rt, name)),
                    Err(storage::Error::NotFound) => Ok(obj),
                    Err(e) => Err(map_storage(self.rt, name, e)),
                };
            }
            match self
                .state
                .store
                .create(self.rt, self.ns(), name, obj.clone())
                .await
            {
                // A picked address or port was taken meanwhile: pick again.
                Err(storage::Error::Claimed(k)) if !explicit.contains(&k) && attempt < 5 => {
                    attempt += 1;
                }
                Err(storage::Error::Claimed(k)) => return Err(services::claimed_error(&obj, &k)),
                other => return other.map_err(self.err(name)),
            }
        }
    }

    /// POST to a pod's `binding` or `eviction`.
    async fn create_subresource(
        &self,
        name: &str,
        sub: &str,
        body: Value,
    ) -> Result<Response<Body>, ApiError> {
        match sub {
            "binding" => {
                self.write(name, true, false, |cur| subresources::bind(cur, &body))
                    .await?;
            }
            "eviction" => {
                let opts = DeleteOptions::parse(&body["deleteOptions"], &HashMap::new())?;
                let opts = DeleteOptions {
                    dry_run: opts.dry_run || self.dry_run,
                    ..opts
                };
                deletion::delete(&self.state.store, self.rt, self.ns(), name, &opts).await?;
            }
            _ => return Err(ApiError::method_not_allowed("POST")),
        }
        Ok(json_response(201, &subresources::created_status()))
    }

    /// Read-modify-write one object: `change` maps the stored object to the new one; a write
    /// of the main resource (`main`) then goes through the type's update rules (immutable
    /// fields, Service allocations); the writer is recorded in managedFields (unless `record`
    /// is off: apply records itself), and an object being deleted whose last finalizer just
    /// went is removed.
    async fn write<F>(
        &self,
        name: &str,
        record: bool,
        main: bool,
        mut change: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError>,
    {
        let rt = self.rt;
        let gv = rt.group_version();
        let manager = self.manager.clone().filter(|_| record);
        let service = main && services::is_service(rt);
        let mut attempt = 0;
        let written = loop {
            let used = match service {
                true => Some(
                    services::Used::read(&self.state.store)
                        .await
                        .map_err(self.err(name))?,
                ),
                false => None,
            };
            let (mut explicit, mut last) = (Vec::new(), Value::Null);
            let mut warnings = Vec::new();
            let result = self
                .state
                .store
                .update_opts(rt, self.ns(), name, self.dry_run, |cur| {
                    let mut new = change(&cur)?;
                    if main {
                        warnings = self.prune(&mut new);
                        fold_string_data(rt, &mut new);
                        super::defaults::apply(rt, &mut new, None);
                        // Upstream reports invalid and immutable fields together.
                        let invalid = super::spec_validation::validate(rt, &new).err();
                        new = match (invalid, super::immutable::check_update(rt, &cur, new)) {
                            (Some(a), Err(b)) => return Err(a.with_causes_of(b)),
                            (Some(a), Ok(_)) => return Err(a),
                            (None, r) => r?,
                        };
                    }
                    if let Some(used) = &used {
                        explicit = services::prepare_update(
                            &self.state.services,
                            used.clone(),
                            &cur,
                            &mut new,
                        )?;
                        last = new.clone();
                    }
                    if let Some(m) = &manager {
                        apply::record_update(Some(&cur), &mut new, m, &gv);
                    }
                    Ok(new)
                })
                .await;
            match result {
                Ok(w) => {
                    self.warn(warnings);
                    break w;
                }
                // A value picked for the update was taken meanwhile: pick again.
                Err(storage::Error::Claimed(k)) if !explicit.contains(&k) && attempt < 5 => {
                    attempt += 1;
                }
                Err(storage::Error::Claimed(k)) => return Err(services::claimed_error(&last, &k)),
                Err(e) => return Err(self.err(name)(e)),
            }
        };
        if !self.dry_run {
            deletion::remove_if_released(&self.state.store, rt, self.ns(), &written).await?;
        }
        Ok(written)
    }

    fn check_kind(&self, obj: &Value) -> Result<(), ApiError> {
        if let Some(k) = obj["kind"].as_str().filter(|k| !k.is_empty())
            && k != self.rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                self.rt.kind
            )));
        }
        Ok(())
    }

    async fn update(
        &self,
        name: &str,
        sub: Option<&str>,
        body: Value,
    ) -> Result<Response<Body>, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        self.check_kind(&body)?;
        if let Some(n) = body["metadata"]["name"].as_str().filter(|n| !n.is_empty())
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let rt = self.rt;
        if sub == Some("scale") {
            let updated = self
                .write(name, true, false, |cur| {
                    subresources::from_scale(rt, cur, &body)
                })
                .await?;
            return Ok(json_response(200, &subresources::to_scale(&updated)));
        }
        let updated = self
            .write(name, true, sub.is_none(), |cur| {
                Ok(merge_update(rt, sub, cur, body.clone()))
            })
            .await?;
        Ok(self.respond(200, &updated))
    }

    async fn patch(
        &self,
        name: &str,
        sub: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        if content_type.split(';').next().map(str::trim) == Some(APPLY_PATCH) {
            return self.apply(name, sub, body).await;
        }
        let kind = patch::Kind::from_content_type(content_type)
            .map_err(|_| ApiError::unsupported_media(content_type))?;
        let p: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let rt = self.rt;
        let invalid = |e: patch::Error| ApiError::new(422, "Invalid", e.to_string());
        if sub == Some("scale") {
            let updated = self
                .write(name, true, false, |cur| {
                    let scale =
                        patch::apply(kind, &subresources::to_scale(cur), &p).map_err(invalid)?;
                    subresources::from_scale(rt, cur, &scale)
                })
                .await?;
            return Ok(json_response(200, &subresources::to_scale(&updated)));
        }
        let updated = self
            .write(name, true, sub.is_none(), |current| {
                let mut patched = patch::apply(kind, current, &p).map_err(invalid)?;
                if !patched.is_object() {
                    return Err(ApiError::bad_request(
                        "the patched object is not a JSON object",
                    ));
                }
                strict::check_types(rt, &patched)?;
                // Identity fields are not the patch's to change.
                patched["metadata"]["name"] = current["metadata"]["name"].clone();
                patched["metadata"]["uid"] = current["metadata"]["uid"].clone();
                Ok(merge_update(rt, sub, current, patched))
            })
            .await?;
        Ok(self.respond(200, &updated))
    }

    /// Server-side apply: create the object from the configuration if it is missing, else
    /// merge the configuration in for its field manager.
    async fn apply(
        &self,
        name: &str,
        sub: Option<&str>,
        body: &[u8],
    ) -> Result<Response<Body>, ApiError> {
        let manager = match &self.manager {
            Some(m) if self.explicit_manager => m.clone(),
            _ => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
        };
        // JSON is YAML too, but JSON's own parser gives the better error for JSON bodies.
        let mut applied: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let text =
                    std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
                serde_saphyr::from_str(text)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            }
        };
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration is not an object",
            ));
        }
        self.check_kind(&applied)?;
        strict::check_types(self.rt, &applied)?;
        let gv = self.rt.group_version();
        match applied["apiVersion"].as_str() {
            Some(v) if v != gv => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({gv})"
                )));
            }
            _ => {}
        }
        match applied["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() && n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => applied["metadata"]["name"] = json!(name),
        }
        match self.state.store.get(self.rt, self.ns(), name).await {
            Err(storage::Error::NotFound) if sub.is_none() => {
                let (name, mut obj) = self.prepare_new(applied)?;
                apply::record_create_by_apply(&mut obj, &manager, &gv);
                let created = self.insert(&name, obj).await?;
                Ok(self.respond(201, &created))
            }
            Err(e) => Err(map_storage(self.rt, name, e)),
            Ok(_) => {
                let rt = self.rt;
                let updated = self
                    .write(name, false, sub.is_none(), |cur| {
                        let merged = apply::apply(cur, &applied, &manager, &gv, self.force)
                            .map_err(|e| {
                                let mut err = ApiError::new(409, "Conflict", e.to_string());
                                err.details = Some(json!({"name": name, "kind": rt.plural}));
                                err
                            })?;
                        Ok(merge_update(rt, sub, cur, merged))
                    })
                    .await?;
                Ok(self.respond(200, &updated))
            }
        }
    }

    async fn delete(&self, name: &str, opts: &DeleteOptions) -> Result<Response<Body>, ApiError> {
        if self.rt.group.is_empty()
            && self.rt.kind == "Namespace"
            && IMMORTAL_NAMESPACES.contains(&name)
        {
            let mut e = ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            );
            e.details = Some(json!({"name": name, "kind": "namespaces"}));
            return Err(e);
        }
        let opts = DeleteOptions {
            dry_run: opts.dry_run || self.dry_run,
            ..opts.clone()
        };
        let (Deleted::Gone(obj) | Deleted::Pending(obj)) =
            deletion::delete(&self.state.store, self.rt, self.ns(), name, &opts).await?;
        Ok(self.respond(200, &obj))
    }

    async fn delete_collection(
        &self,
        q: &HashMap<String, String>,
    ) -> Result<Response<Body>, ApiError> {
        let filter = self.filter(q)?;
        let opts = DeleteOptions::parse(&Value::Null, q)?;
        let page = self
            .state
            .store
            .list(self.rt, self.ns(), &filter, 0, None)
            .await
            .map_err(self.err(""))?;
        let mut items = Vec::new();
        for o in page.items {
            let name = o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = o["metadata"]["namespace"].as_str().map(str::to_string);
            match deletion::delete(&self.state.store, self.rt, ns.as_deref(), &name, &opts).await {
                Ok(Deleted::Gone(d) | Deleted::Pending(d)) => items.push(d),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            200,
            &json!({"kind": format!("{}List", self.rt.kind), "apiVersion": self.rt.group_version(),
                    "metadata": {"resourceVersion": page.revision.to_string()}, "items": items}),
        ))
    }
}

/// The object an update writes: identity and creation fields stay; a type with a status
/// subresource keeps its stored status on the main resource, and `/status` changes only status.
fn merge_update(rt: &ResourceType, sub: Option<&str>, current: &Value, incoming: Value) -> Value {
    let mut new = if sub == Some("status") {
        let mut n = current.clone();
        n["status"] = incoming["status"].clone();
        if let Some(rv) = incoming["metadata"].get("resourceVersion") {
            n["metadata"]["resourceVersion"] = rv.clone();
        }
        n
    } else {
        let mut n = incoming;
        if rt.has_status() {
            match current.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    n.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        n
    };
    new["kind"] = json!(rt.kind);
    new["apiVersion"] = json!(rt.group_version());
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    // Deletion is the delete verb's to start: updates keep what it set.
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match current["metadata"].get(f) {
            Some(v) => new["metadata"][f] = v.clone(),
            None => {
                new["metadata"].as_object_mut().map(|m| m.remove(f));
            }
        }
    }
    let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
    let spec_changed = new.get("spec") != current.get("spec");
    new["metadata"]["generation"] = json!(if spec_changed {
        generation + 1
    } else {
        generation
    });
    // Without a resourceVersion from the client, the write is unconditional (last one wins).
    if new["metadata"]["resourceVersion"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    }
    new
}

/// Per-type defaults upstream's create strategies apply.
fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group, rt.kind) {
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
            // The namespace lifecycle's finalizer: released once everything inside is gone.
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!([deletion::NAMESPACE_FINALIZER]);
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet")
            if obj["spec"]["replicas"].is_null() =>
        {
            obj["spec"]["replicas"] = json!(1)
        }
        ("", "Pod") if obj["status"]["phase"].is_null() => {
            obj["status"] = json!({"phase": "Pending"})
        }
        ("", "Secret") => {
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
            fold_string_data(rt, obj);
        }
        _ => {}
    }
}

/// A Secret's write-only `stringData` merged into `data` (base64), as upstream stores it.
fn fold_string_data(rt: &ResourceType, obj: &mut Value) {
    use base64::Engine;
    if !(rt.group.is_empty() && rt.kind == "Secret") {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

pub fn now_rfc3339() -> String {
    crate::node::now_seconds().to_string()
}

/// Turns watch items into newline-terminated JSON events, remembering the last revision for
/// bookmarks and whether a Table's columns were sent yet.
struct WatchEncoder {
    rt: &'static ResourceType,
    as_table: bool,
    include: IncludeObject,
    last_rev: i64,
    columns_sent: bool,
    bookmarks: bool,
    done: bool,
}

impl WatchEncoder {
    fn line(v: Value) -> Option<Bytes> {
        let mut s = v.to_string();
        s.push('\n');
        Some(Bytes::from(s))
    }

    fn encode(&mut self, item: WatchOut) -> Option<Bytes> {
        match item {
            WatchOut::Event {
                kind,
                object,
                revision,
            } => {
                self.last_rev = self.last_rev.max(revision);
                let object = if self.as_table {
                    let rv = object["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let t = table::table(
                        self.rt.printer,
                        std::slice::from_ref(&object),
                        &rv,
                        None,
                        self.include,
                        !self.columns_sent,
                    );
                    self.columns_sent = true;
                    t
                } else {
                    object
                };
                Self::line(json!({"type": kind, "object": object}))
            }
            WatchOut::Progress(rev) => {
                // A negative revision marks the end of the initial events (sendInitialEvents).
                let initial_end = rev < 0;
                self.last_rev = self.last_rev.max(rev.abs());
                if !self.bookmarks {
                    return None;
                }
                let mut meta = json!({"resourceVersion": self.last_rev.to_string()});
                if initial_end {
                    meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                Self::line(json!({"type": "BOOKMARK", "object": {
                    "kind": self.rt.kind, "apiVersion": self.rt.group_version(), "metadata": meta}}))
            }
            WatchOut::Error(e) => {
                self.done = true;
                Self::line(json!({"type": "ERROR", "object": e.to_status()}))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    #[test]
    fn query_strings_are_percent_decoded() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert!(is_true(&q, "watch"));
        assert_eq!(q["x"], "");
    }

    #[test]
    fn updating_the_main_resource_keeps_stored_status_and_bumps_generation_on_spec_change() {
        let nodes = find("", "v1", "nodes").unwrap();
        let current = json!({"metadata": {"name": "n", "uid": "u1", "generation": 1, "creationTimestamp": "t", "resourceVersion": "5"},
            "spec": {}, "status": {"phase": "Running"}});
        let incoming = json!({"metadata": {"name": "n", "uid": "other"}, "spec": {"unschedulable": true}, "status": {"phase": "X"}});
        let out = merge_update(nodes, None, &current, incoming);
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["generation"], 2);
        assert_eq!(out["metadata"]["resourceVersion"], "5");
    }

    #[test]
    fn status_updates_change_only_status() {
        let nodes = find("", "v1", "nodes").unwrap();
        let current = json!({"metadata": {"name": "n", "generation": 3}, "spec": {"podCIDR": "a"}});
        let incoming = json!({"metadata": {"name": "n", "labels": {"x": "y"}}, "spec": {"podCIDR": "b"}, "status": {"phase": "Ready"}});
        let out = merge_update(nodes, Some("status"), &current, incoming);
        assert_eq!(out["spec"]["podCIDR"], "a");
        assert_eq!(out["status"]["phase"], "Ready");
        assert!(out["metadata"]["labels"].is_null());
        assert_eq!(out["metadata"]["generation"], 3);
    }

    #[test]
    fn timestamps_are_rfc3339_seconds_in_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z'));
    }
}
