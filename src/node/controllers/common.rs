//! What the workload controllers share: label selectors, controller references, pod readiness
//! and availability, and events recorded the way client-go's event recorder writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Event, EventSource, ObjectReference, Pod, ServicePort, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, PostParams};

/// `selector` matches `labels`, with matchLabels and matchExpressions as
/// apimachinery's `LabelSelectorAsSelector` reads them.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expr = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let have = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            // An unknown operator selects nothing, as the API server would have refused it.
            _ => false,
        }
    });
    by_label && by_expr
}

pub fn labels_of(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A controller reference as upstream's controllers set it on what they create or adopt.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Neither finished nor being deleted: the pods a ReplicaSet counts (`FilterActivePods`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Not Succeeded or Failed (it may be being deleted).
pub fn is_active_phase(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition turned True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Option<jiff::Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (`IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => {
            t.as_millisecond() + i64::from(min_ready_seconds) * 1000 <= now.as_millisecond()
        }
    }
}

/// Record a Normal or Warning event about `obj` from `component`, as client-go's recorder does
/// (`<name>.<unique>` names, source and reportingComponent set, count 1).
pub async fn record(
    client: &kube::Client,
    involved: ObjectReference,
    component: &str,
    type_: &str,
    reason: &str,
    message: String,
) {
    let ns = involved
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let now = now_time();
    let ev = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", involved.name.as_deref().unwrap_or_default())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(component.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        eprintln!("kube-controller-manager: could not record event {reason}: {e}");
    }
}

/// Upstream's `FindPort`: a Service port's targetPort as a number in `pod`, a name looked up
/// among the containers' ports of the same protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

/// Upstream's `ShouldPodBeInEndpoints`: has an IP, is not finished (as its restart policy
/// reads it), and is not terminating unless terminating pods are wanted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
    if ip.is_none_or(str::is_empty) {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => !matches!(phase, Some("Failed" | "Succeeded")),
        Some("OnFailure") => phase != Some("Succeeded"),
        _ => true,
    }
}

/// The hostname a pod publishes in its Service's endpoints (`ShouldSetHostname`).
pub fn endpoint_hostname(pod: &Pod, svc_name: &str, svc_ns: Option<&str>) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.clone().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc_name) && pod.metadata.namespace.as_deref() == svc_ns)
        .then_some(hostname)
}

/// `selector` as a label-selector query string, so lists ask the API server for just the
/// pods a controller can own (`a=b,c in (d,e),!f`).
/// The pods `selector` matches whose controller is the object with `uid` (the pods a Job,
/// DaemonSet or StatefulSet owns); `what` names that object in an error.
pub async fn owned_pods(
    pods: &Api<Pod>,
    selector: &LabelSelector,
    uid: &str,
    what: String,
) -> Result<Vec<Pod>, super::Error> {
    let lp = ListParams::default().labels(&selector_query(selector));
    Ok(pods
        .list(&lp)
        .await
        .map_err(|e| super::Error::Api(what, e))?
        .items
        .into_iter()
        .filter(|p| controller_of(&p.metadata).is_some_and(|r| r.uid == uid))
        .collect())
}

pub fn selector_query(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Now, as a metav1.Time (whole seconds).
pub fn now_time() -> Time {
    Time(crate::node::now_seconds())
}

/// `t` as a metav1.Time (whole seconds).
pub fn now_time_at(t: jiff::Timestamp) -> Time {
    Time(crate::node::whole_seconds(t))
}

/// Upstream's `ToleratesTaint`: key (or an empty key with Exists), effect (or any) and value
/// (unless Exists) all match.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = match t.key.as_deref() {
        None | Some("") => t.operator.as_deref() == Some("Exists"),
        Some(k) => k == taint.key,
    };
    let value_ok = match t.operator.as_deref() {
        Some("Exists") => true,
        _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
    };
    effect_ok && key_ok && value_ok
}

/// The message of an API error, as controllers quote it in events.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// 404 and 409 are the normal outcomes of racing another writer (or the garbage collector).
pub fn gone_or_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

/// The reference an event about `meta` of `kind` carries.
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

/// Logs a failed reconcile of the `what` that `meta` names and tries it again after `after`:
/// every controller's error policy.
pub fn retry_after(
    what: &str,
    meta: &ObjectMeta,
    e: &dyn std::fmt::Display,
    after: std::time::Duration,
) -> kube::runtime::controller::Action {
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) => eprintln!("kube-controller-manager: {what} {ns}/{name}: {e}"),
        None => eprintln!("kube-controller-manager: {what} {name}: {e}"),
    }
    kube::runtime::controller::Action::requeue(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_combine_match_labels_and_expressions() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(selector_matches(
            &sel,
            &l(&[("app", "web"), ("tier", "edge")])
        ));
        assert!(!selector_matches(&sel, &l(&[("app", "web")])));
        assert!(!selector_matches(
            &sel,
            &l(&[("app", "web"), ("tier", "edge"), ("canary", "1")])
        ));
        assert!(!selector_matches(
            &sel,
            &l(&[("app", "db"), ("tier", "front")])
        ));
    }
}
