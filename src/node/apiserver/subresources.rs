//! Subresources that speak another kind than their parent: `scale` (autoscaling/v1 Scale over
//! spec.replicas), and pods' `binding` and `eviction`.

use serde_json::{Value, json};

use super::resources::ResourceType;
use super::status::ApiError;
use super::table;

/// The Scale a parent shows: its desired replicas, current replicas and pod selector as a string.
pub fn to_scale(parent: &Value) -> Value {
    let meta = &parent["metadata"];
    let mut m = json!({});
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            m[f] = v.clone();
        }
    }
    let selector = match table::label_selector(&parent["spec"]["selector"]).as_str() {
        "<none>" => String::new(),
        s => s.to_string(),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": parent["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": parent["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// The parent after a Scale was written to it: only spec.replicas changes, and the Scale's
/// resourceVersion (if any) guards the write like the parent's own.
pub fn from_scale(rt: &ResourceType, parent: &Value, scale: &Value) -> Result<Value, ApiError> {
    let name = parent["metadata"]["name"].as_str().unwrap_or_default();
    let replicas = &scale["spec"]["replicas"];
    let n = match replicas {
        Value::Null => 0,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to decode the Scale: spec.replicas must be an integer, got {v}"
            ))
        })?,
    };
    if n < 0 {
        let mut e = ApiError::invalid(
            rt,
            name,
            vec![(
                "FieldValueInvalid",
                "spec.replicas".into(),
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            )],
        );
        // The object refused is the Scale, whatever its parent's kind.
        let rest = e
            .message
            .split_once(' ')
            .map(|(_, r)| r)
            .unwrap_or_default();
        e.message = format!("Scale.autoscaling {rest}");
        return Err(e);
    }
    let mut out = parent.clone();
    out["spec"]["replicas"] = json!(n);
    match scale["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() => out["metadata"]["resourceVersion"] = json!(rv),
        _ => {}
    }
    Ok(out)
}

/// A pod after a Binding: assigned to the target node, once.
pub fn bind(pod: &Value, binding: &Value) -> Result<Value, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let node = binding["target"]["name"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request("the binding has no target node"));
    }
    if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{current}\""
            ),
        ));
    }
    let mut out = pod.clone();
    out["spec"]["nodeName"] = json!(node);
    Ok(out)
}

/// The `Status` binding and eviction answer with.
pub fn created_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "7"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 1}})
    }

    #[test]
    fn scale_shows_replicas_and_the_selector_as_a_string() {
        let s = to_scale(&deployment());
        assert_eq!(s["apiVersion"], "autoscaling/v1");
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"], json!({"replicas": 1, "selector": "app=web"}));
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn writing_a_scale_changes_only_spec_replicas() {
        let rt = find("apps", "v1", "deployments").unwrap();
        let out = from_scale(rt, &deployment(), &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
        assert_eq!(out["spec"]["selector"], deployment()["spec"]["selector"]);
        let err = from_scale(rt, &deployment(), &json!({"spec": {"replicas": -1}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .starts_with("Scale.autoscaling \"web\" is invalid: spec.replicas")
        );
    }

    #[test]
    fn a_pod_is_bound_once() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let bound = bind(&pod, &json!({"target": {"kind": "Node", "name": "n1"}})).unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(
            bind(&bound, &json!({"target": {"name": "n2"}}))
                .unwrap_err()
                .code,
            409
        );
    }
}
