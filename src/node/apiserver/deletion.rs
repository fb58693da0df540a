//! Deleting the Kubernetes way: DeleteOptions (propagation, preconditions, dryRun), finalizers
//! holding an object back with a deletionTimestamp, and removal once the last one is gone.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::collector;
use super::resources::ResourceType;
use super::status::ApiError;
use super::storage::{self, Store};

/// The finalizer that holds an owner until its dependents are gone (Foreground).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that holds an owner until its dependents no longer point at it (Orphan).
pub const ORPHAN: &str = "orphan";
/// The namespace finalizer (in spec.finalizers) released once the namespace is empty.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// What happens to an object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// A DeleteOptions body merged with the query parameters of the same names.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// `dryRun` values: only `All` exists upstream.
pub fn parse_dry_run<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<bool, ApiError> {
    let mut dry = false;
    for v in values {
        match v {
            "All" => dry = true,
            "" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other}"
                )));
            }
        }
    }
    Ok(dry)
}

impl DeleteOptions {
    /// From the body (null when there was none) and the query; the body wins where both speak,
    /// as upstream decodes the body over the query's values.
    pub fn parse(body: &Value, q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let policy = body["propagationPolicy"]
            .as_str()
            .map(str::to_string)
            .or_else(|| q.get("propagationPolicy").cloned());
        let orphan = body["orphanDependents"]
            .as_bool()
            .or_else(|| q.get("orphanDependents").map(|v| v == "true"));
        let propagation = match (policy.as_deref(), orphan) {
            (Some("Orphan"), _) => Some(Propagation::Orphan),
            (Some("Background"), _) => Some(Propagation::Background),
            (Some("Foreground"), _) => Some(Propagation::Foreground),
            (Some(""), _) | (None, None) => None,
            (Some(other), _) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                ));
            }
            (None, Some(true)) => Some(Propagation::Orphan),
            (None, Some(false)) => Some(Propagation::Background),
        };
        let grace = body["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
        let body_dry: Vec<&str> = body["dryRun"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let query_dry = q.get("dryRun").map(String::as_str);
        let dry_run = parse_dry_run(body_dry.into_iter().chain(query_dry))?;
        let pre = &body["preconditions"];
        Ok(DeleteOptions {
            propagation,
            grace_period_seconds: grace,
            uid: pre["uid"].as_str().map(str::to_string),
            resource_version: pre["resourceVersion"].as_str().map(str::to_string),
            dry_run,
        })
    }
}

/// How a delete ended.
#[derive(Debug)]
pub enum Deleted {
    /// Gone from storage; the object as it was.
    Gone(Value),
    /// Held by finalizers: marked with a deletionTimestamp and still there.
    Pending(Value),
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Namespace"
}

/// Whether nothing holds the object any more: no finalizers (and, for a namespace, no
/// spec.finalizers either).
pub fn is_released(rt: &ResourceType, obj: &Value) -> bool {
    finalizers(obj).is_empty()
        && !(is_namespace(rt)
            && obj["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty()))
}

fn precondition_failed(what: &str, wanted: &str, actual: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!(
            "Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}"
        ),
    )
}

/// How long a pod is given to stop: `None` when it goes at once (not bound to a node, already
/// finished, or a grace period of 0 was asked for, as `kubectl delete --grace-period=0 --force`
/// does); else the DeleteOptions' grace period, the pod's terminationGracePeriodSeconds, or 30.
pub fn pod_grace(rt: &ResourceType, pod: &Value, opts: &DeleteOptions) -> Option<i64> {
    if !(rt.group.is_empty() && rt.kind == "Pod") {
        return None;
    }
    let bound = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let grace = opts
        .grace_period_seconds
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(DEFAULT_POD_GRACE_SECONDS)
        .max(0);
    (bound && !finished && grace > 0).then_some(grace)
}

/// Upstream's default `terminationGracePeriodSeconds`.
pub const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

fn rfc3339(t: jiff::Timestamp) -> String {
    crate::node::whole_seconds(t).to_string()
}

/// The pod marked for deletion in `grace` seconds (the kubelet stops it and removes it), or
/// `None` when it already is, as soon or sooner: a second delete may only shorten the grace,
/// moving the deadline back by the difference as upstream does.
fn graceful(pod: &Value, grace: i64, fins: &[String]) -> Option<Value> {
    let meta = &pod["metadata"];
    let now = jiff::Timestamp::now();
    let deadline = match (
        meta["deletionGracePeriodSeconds"].as_i64(),
        meta["deletionTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok()),
    ) {
        (Some(old), Some(_)) if old <= grace => return None,
        (Some(old), Some(at)) => at - jiff::SignedDuration::from_secs(old - grace),
        _ => now + jiff::SignedDuration::from_secs(grace),
    };
    let mut marked = pod.clone();
    marked["metadata"]["deletionTimestamp"] = json!(rfc3339(deadline));
    marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    if !fins.is_empty() {
        marked["metadata"]["finalizers"] = json!(fins);
    }
    Some(marked)
}

/// Delete one object as `opts` say. Objects with finalizers (or a propagation that needs one)
/// get a deletionTimestamp and stay until the finalizers are removed; the collector takes care
/// of dependents and of namespaces' contents.
pub async fn delete(
    store: &Store,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    let err = |e| super::handlers::map_storage(rt, name, e);
    loop {
        let current = store.get(rt, ns, name).await.map_err(err)?;
        let meta = &current["metadata"];
        let uid = meta["uid"].as_str().unwrap_or_default().to_string();
        let rv = meta["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(want) = opts.uid.as_deref().filter(|u| *u != uid) {
            return Err(precondition_failed("UID", want, &uid));
        }
        if let Some(want) = opts.resource_version.as_deref().filter(|v| *v != rv) {
            return Err(precondition_failed("ResourceVersion", want, &rv));
        }
        let policy = opts.propagation.unwrap_or(Propagation::Background);
        let mut fins = finalizers(&current);
        let wanted = match policy {
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
            Propagation::Background => None,
        };
        if let Some(f) = wanted.filter(|f| !fins.iter().any(|x| x == f)) {
            fins.push(f.to_string());
        }
        let deleting = !meta["deletionTimestamp"].is_null();
        if let Some(grace) = pod_grace(rt, &current, opts) {
            let Some(marked) = graceful(&current, grace, &fins) else {
                return Ok(Deleted::Pending(current));
            };
            if opts.dry_run {
                return Ok(Deleted::Pending(marked));
            }
            match store.update(rt, ns, name, |_| Ok(marked.clone())).await {
                Ok(written) => return Ok(Deleted::Pending(written)),
                Err(storage::Error::Conflict) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        if fins.is_empty() && !is_namespace(rt) {
            if opts.dry_run {
                return Ok(Deleted::Gone(current));
            }
            match store.delete(rt, ns, name, rv.parse().ok()).await {
                Ok(gone) => {
                    collector::spawn_dependents(store.clone(), rt, ns, uid);
                    return Ok(Deleted::Gone(gone));
                }
                Err(storage::Error::Conflict) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        let mut marked = current.clone();
        if !deleting {
            marked["metadata"]["deletionTimestamp"] = json!(super::handlers::now_rfc3339());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if !fins.is_empty() {
            marked["metadata"]["finalizers"] = json!(fins);
        }
        if is_namespace(rt) {
            marked["status"]["phase"] = json!("Terminating");
        }
        if opts.dry_run || marked == current {
            if !opts.dry_run {
                collector::spawn_finalizers(store.clone(), rt, ns, name);
            }
            return Ok(Deleted::Pending(marked));
        }
        // The write is conditional on what was read, so a racing writer makes us start over.
        match store.update(rt, ns, name, |_| Ok(marked.clone())).await {
            Ok(written) => {
                collector::spawn_finalizers(store.clone(), rt, ns, name);
                return Ok(Deleted::Pending(written));
            }
            Err(storage::Error::Conflict) => continue,
            Err(e) => return Err(err(e)),
        }
    }
}

/// After an update: an object being deleted whose last finalizer just went is removed, and its
/// dependents are collected. Returns whether it was removed.
pub async fn remove_if_released(
    store: &Store,
    rt: &'static ResourceType,
    ns: Option<&str>,
    obj: &Value,
) -> Result<bool, ApiError> {
    if obj["metadata"]["deletionTimestamp"].is_null() || !is_released(rt, obj) {
        return Ok(false);
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let rv = storage::sent_revision(obj);
    match store.delete(rt, ns, name, rv).await {
        Ok(_) => {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
            collector::spawn_dependents(store.clone(), rt, ns, uid.to_string());
            Ok(true)
        }
        // Someone else removed it or wrote after us; they carry on from here.
        Err(storage::Error::NotFound | storage::Error::Conflict) => Ok(false),
        Err(e) => Err(super::handlers::map_storage(rt, name, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_come_from_the_body_or_the_query() {
        let o = DeleteOptions::parse(
            &json!({"kind": "DeleteOptions", "propagationPolicy": "Foreground", "preconditions": {"uid": "u"}}),
            &q(&[("dryRun", "All")]),
        )
        .unwrap();
        assert_eq!(o.propagation, Some(Propagation::Foreground));
        assert_eq!(o.uid.as_deref(), Some("u"));
        assert!(o.dry_run);
        let o = DeleteOptions::parse(
            &Value::Null,
            &q(&[("propagationPolicy", "Orphan"), ("gracePeriodSeconds", "0")]),
        )
        .unwrap();
        assert_eq!(o.propagation, Some(Propagation::Orphan));
        assert_eq!(o.grace_period_seconds, Some(0));
    }

    #[test]
    fn unknown_propagation_and_dry_run_values_are_refused() {
        let e =
            DeleteOptions::parse(&json!({"propagationPolicy": "Sideways"}), &q(&[])).unwrap_err();
        assert_eq!(e.code, 422);
        let e = DeleteOptions::parse(&Value::Null, &q(&[("dryRun", "Some")])).unwrap_err();
        assert_eq!(e.message, "Invalid dry run value: Some");
    }

    #[test]
    fn bound_running_pods_get_a_grace_period_and_the_rest_go_at_once() {
        let pods = crate::node::apiserver::resources::find("", "v1", "pods").unwrap();
        let bound = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5},
            "status": {"phase": "Running"}});
        let none = DeleteOptions::default();
        assert_eq!(pod_grace(pods, &bound, &none), Some(5));
        let zero = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(pod_grace(pods, &bound, &zero), None);
        let mut done = bound.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod_grace(pods, &done, &none), None);
        let unbound = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(pod_grace(pods, &unbound, &none), None);
        let mut default = bound.clone();
        default["spec"]
            .as_object_mut()
            .unwrap()
            .remove("terminationGracePeriodSeconds");
        assert_eq!(pod_grace(pods, &default, &none), Some(30));
    }

    #[test]
    fn a_second_delete_may_only_shorten_the_grace_period() {
        let pod = json!({"metadata": {"name": "p", "deletionTimestamp": "2030-01-01T00:01:00Z",
            "deletionGracePeriodSeconds": 60}});
        assert!(graceful(&pod, 60, &[]).is_none());
        assert!(graceful(&pod, 90, &[]).is_none());
        let shorter = graceful(&pod, 10, &[]).unwrap();
        assert_eq!(
            shorter["metadata"]["deletionTimestamp"],
            "2030-01-01T00:00:10Z"
        );
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 10);
    }

    #[test]
    fn a_namespace_is_released_only_when_its_spec_finalizers_are_gone_too() {
        let rt = crate::node::apiserver::resources::find("", "v1", "namespaces").unwrap();
        let ns = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(!is_released(rt, &ns));
        assert!(is_released(
            rt,
            &json!({"metadata": {"name": "x"}, "spec": {}})
        ));
    }
}
