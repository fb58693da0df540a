//! A minimal OpenAPI v3 index: per group-version documents that list each kind's PATCH operation
//! with its `fieldValidation` parameter, which is all kubectl reads to choose server-side
//! validation (so `kubectl create -f` and `apply` work without downloading `/openapi/v2`).
//! Full schemas (for `kubectl explain`) are still to come.

use serde_json::{Value, json};

use super::resources::RESOURCES;
use crate::consts;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group-version's document lives.
pub fn root() -> Value {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES {
        let p = gv_path(r.group, r.version);
        let url = format!("/openapi/v3/{p}?hash={}", hash());
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// Documents change only with the binary, so the version is a fine cache key.
fn hash() -> String {
    consts::KUBE_VERSION
        .bytes()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        })
        .to_string()
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<g>/<v>`.
pub fn group_version(path: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let mut found = false;
    for r in RESOURCES
        .iter()
        .filter(|r| gv_path(r.group, r.version) == path)
    {
        found = true;
        let base = format!("/{path}");
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        paths.insert(
            item,
            json!({"patch": {
                "operationId": format!("patch{}", r.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    found.then(|| {
        json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": consts::KUBE_VERSION},
            "paths": paths,
            "components": {"schemas": {}},
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_patch_advertises_field_validation() {
        let doc = group_version("api/v1").unwrap();
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(group_version("apis/apps/v1").is_none());
        assert!(root()["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"].is_string());
    }
}
