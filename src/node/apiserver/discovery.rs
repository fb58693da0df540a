//! Discovery documents: legacy (`/api`, `/apis`, `/apis/<g>`, APIResourceLists), aggregated
//! (`apidiscovery.k8s.io` v2 and v2beta1, chosen by the Accept header) and `/version`.

use serde_json::{Value, json};

use super::resources::{self, RESOURCES, ResourceType};
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
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            doc["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            doc["categories"] = json!(r.categories);
        }
        out.push(doc);
        for sub in r.subresources {
            let s = resources::subresource(r, sub);
            let mut doc = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            // A subresource of another group names it, as the scale client needs.
            if (s.group, s.version) != (r.group, r.version) {
                doc["group"] = json!(s.group);
                doc["version"] = json!(s.version);
            }
            out.push(doc);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

/// The group of aggregated discovery documents.
const AGGREGATED_GROUP: &str = "apidiscovery.k8s.io";

/// The aggregated discovery version an Accept header prefers (`v2` or `v2beta1`), or None when
/// it prefers the legacy documents. Entries are taken in order, as client-go lists them by
/// preference; the first one the server can answer wins.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match (param("g"), param("v"), param("as")) {
            (None, None, None) => return None,
            (Some(AGGREGATED_GROUP), Some("v2"), Some("APIGroupDiscoveryList")) => {
                return Some("v2");
            }
            (Some(AGGREGATED_GROUP), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                return Some("v2beta1");
            }
            _ => continue,
        }
    }
    None
}

/// The Content-Type of an aggregated answer: client-go tells aggregated from legacy by it alone.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g={AGGREGATED_GROUP};v={version};as=APIGroupDiscoveryList")
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// One resource as `APIResourceDiscovery`, its subresources inline.
fn resource_discovery(r: &'static ResourceType) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let s = resources::subresource(r, sub);
            json!({"subresource": sub, "responseKind": gvk(s.group, s.version, s.kind), "verbs": s.verbs})
        })
        .collect();
    let mut doc = json!({
        "resource": r.plural,
        "responseKind": gvk(r.group, r.version, r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        doc["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        doc["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        doc["subresources"] = json!(subresources);
    }
    doc
}

fn group_discovery(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let rs: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == name && r.version == *v)
                .map(resource_discovery)
                .collect();
            json!({"version": v, "resources": rs, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name, "creationTimestamp": null}, "versions": versions})
}

/// `/api` (core only, the group named "") or `/apis` (every other group) as an
/// `APIGroupDiscoveryList` of `apidiscovery.k8s.io/<version>`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![group_discovery("", &["v1"])]
    } else {
        resources::groups()
            .iter()
            .map(|(g, vs)| group_discovery(g, vs))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("{AGGREGATED_GROUP}/{version}"),
        "metadata": {},
        "items": items,
    })
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

    const CLIENT_GO_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn client_go_accept_header_selects_aggregated_v2_and_plain_json_stays_legacy() {
        assert_eq!(wants_aggregated(CLIENT_GO_ACCEPT), Some("v2"));
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            ),
            Some("v2beta1")
        );
        assert_eq!(wants_aggregated("application/json"), None);
        assert_eq!(wants_aggregated(""), None);
        assert_eq!(
            wants_aggregated(
                "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            ),
            None
        );
    }

    #[test]
    fn aggregated_discovery_lists_scale_as_autoscaling_v1_with_short_names() {
        let doc = aggregated(false, "v2");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        let apps = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        assert_eq!(deploy["scope"], "Namespaced");
        let scale = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        let core = aggregated(true, "v2beta1");
        assert_eq!(core["items"][0]["metadata"]["name"], "");
    }

    #[test]
    fn legacy_scale_subresource_names_its_group_and_version() {
        let l = resource_list("apps", "v1");
        let scale = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(
            (&scale["group"], &scale["version"], &scale["kind"]),
            (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
        );
    }

    #[test]
    fn version_reports_the_constants() {
        let v = version();
        assert_eq!(v["gitVersion"], consts::KUBE_VERSION);
        assert_eq!(v["minor"], consts::KUBE_MINOR);
    }
}
