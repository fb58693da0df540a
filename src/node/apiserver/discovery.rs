//! Legacy discovery documents (`/api`, `/apis`, `/apis/<g>`, APIResourceLists) and `/version`.

use serde_json::{Value, json};

use super::resources::{self, RESOURCES, SUB_VERBS, VERBS};
use crate::consts;

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group(name: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

/// `/apis`
pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .iter()
        .map(|(g, vs)| group(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`
pub fn api_group(name: &str) -> Option<Value> {
    let (g, vs) = resources::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut doc = group(g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/<group>/<version>`, subresources listed as `plural/sub`.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut out = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut doc = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        out.push(doc);
        for sub in r.subresources {
            let verbs: &[&str] = if *sub == "finalize" {
                &["update"]
            } else {
                SUB_VERBS
            };
            out.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

/// `/version`, from the constants so every component reports the same.
pub fn version() -> Value {
    json!({
        "major": consts::KUBE_MAJOR,
        "minor": consts::KUBE_MINOR,
        "emulationMajor": consts::KUBE_MAJOR,
        "emulationMinor": consts::KUBE_MINOR,
        "gitVersion": consts::KUBE_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", go_arch()),
    })
}

/// The architecture as Go names it (kubectl users expect `amd64`, not `x86_64`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_includes_status_subresources_and_short_names() {
        let l = resource_list("", "v1");
        let rs = l["resources"].as_array().unwrap();
        let nodes = rs.iter().find(|r| r["name"] == "nodes").unwrap();
        assert_eq!(nodes["shortNames"], json!(["no"]));
        assert_eq!(nodes["namespaced"], false);
        assert!(rs.iter().any(|r| r["name"] == "nodes/status"));
    }

    #[test]
    fn group_list_names_preferred_versions() {
        let g = group_list();
        let lease = g["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "coordination.k8s.io")
            .unwrap();
        assert_eq!(
            lease["preferredVersion"]["groupVersion"],
            "coordination.k8s.io/v1"
        );
    }

    #[test]
    fn version_reports_the_constants() {
        let v = version();
        assert_eq!(v["gitVersion"], consts::KUBE_VERSION);
        assert_eq!(v["minor"], consts::KUBE_MINOR);
    }
}
