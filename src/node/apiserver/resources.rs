//! The registry of resource types the API server serves: adding a type is one table entry.

use super::table::Printer;

/// Everything the generic machinery needs to know about one resource type.
#[derive(Debug, PartialEq)]
pub struct ResourceType {
    /// API group; "" is the core ("legacy") group served under `/api`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served beside the main resource (only "status" is generic so far).
    pub subresources: &'static [&'static str],
    /// The etcd key segment under `/registry/`: the plural, so `etcdctl get --prefix /registry/pods`
    /// finds pods (upstream keeps a few historical names like `minions`; students need not).
    pub storage: &'static str,
    pub printer: Printer,
}

/// Verbs every resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs a subresource supports.
pub const SUB_VERBS: &[&str] = &["get", "patch", "update"];

const ALL: &[&str] = &["all"];

macro_rules! rt {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, ns = $ns:expr,
     short = $short:expr, cat = $cat:expr, sub = $sub:expr, storage = $storage:expr, $printer:ident) => {
        ResourceType {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            storage: $storage,
            printer: Printer::$printer,
        }
    };
}

/// Every type served, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    rt!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        ns = false,
        short = &["ns"],
        cat = &[],
        sub = &["status", "finalize"],
        storage = "namespaces",
        Namespace
    ),
    rt!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        ns = false,
        short = &["no"],
        cat = &[],
        sub = &["status"],
        storage = "nodes",
        Node
    ),
    rt!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        ns = true,
        short = &["svc"],
        cat = ALL,
        sub = &["status"],
        storage = "services",
        Service
    ),
    rt!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        ns = true,
        short = &["ep"],
        cat = &[],
        sub = &[],
        storage = "endpoints",
        Endpoints
    ),
    rt!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        ns = true,
        short = &["cm"],
        cat = &[],
        sub = &[],
        storage = "configmaps",
        ConfigMap
    ),
    rt!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        ns = true,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "secrets",
        Secret
    ),
    rt!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        ns = true,
        short = &["sa"],
        cat = &[],
        sub = &[],
        storage = "serviceaccounts",
        ServiceAccount
    ),
    rt!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        ns = true,
        short = &["ev"],
        cat = &[],
        sub = &[],
        storage = "events",
        Event
    ),
    rt!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        ns = true,
        short = &["po"],
        cat = ALL,
        sub = &["status"],
        storage = "pods",
        Pod
    ),
    rt!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        ns = true,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "leases",
        Lease
    ),
    rt!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        ns = true,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "endpointslices",
        EndpointSlice
    ),
    // Upstream keeps both event APIs in one store and converts; until conversion exists the
    // newer API gets its own prefix so neither side ever reads the other's shape.
    rt!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        ns = true,
        short = &["ev"],
        cat = &[],
        sub = &[],
        storage = "events.k8s.io/events",
        Default
    ),
];

impl ResourceType {
    /// `group/version`, or just `version` for the core group.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as upstream names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// The etcd key prefix of this type, for one namespace or all of them.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.storage),
            _ => format!("/registry/{}/", self.storage),
        }
    }

    /// The etcd key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.prefix(namespace))
    }
}

/// The type served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The API groups (other than core) with their versions, in discovery order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_group_resources_are_found_by_group_version_and_plural() {
        assert_eq!(find("", "v1", "nodes").unwrap().kind, "Node");
        assert_eq!(
            find("coordination.k8s.io", "v1", "leases").unwrap().kind,
            "Lease"
        );
        assert!(find("apps", "v1", "nodes").is_none());
    }

    #[test]
    fn keys_follow_upstream_registry_layout() {
        let cm = find("", "v1", "configmaps").unwrap();
        assert_eq!(
            cm.key(Some("default"), "a"),
            "/registry/configmaps/default/a"
        );
        let ns = find("", "v1", "namespaces").unwrap();
        assert_eq!(ns.key(None, "default"), "/registry/namespaces/default");
    }

    #[test]
    fn every_plural_is_unique_within_its_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
    }
}
