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
    /// Subresources served beside the main resource (see [`subresource`] for what each answers).
    pub subresources: &'static [&'static str],
    /// The verbs the main resource supports; review types (access checks) only take `create`.
    pub verbs: &'static [&'static str],
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
            verbs: VERBS,
            storage: $storage,
            printer: Printer::$printer,
        }
    };
}

/// A type answered by computation, never stored: `create` is its only verb.
macro_rules! review {
    ($group:expr, $kind:expr, $plural:expr, $singular:expr) => {
        ResourceType {
            group: $group,
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: false,
            short_names: &[],
            categories: &[],
            subresources: &[],
            verbs: &["create"],
            storage: "",
            printer: Printer::Default,
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
        sub = &[
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward"
        ],
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
    rt!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ns = true,
        short = &["pvc"],
        cat = &[],
        sub = &["status"],
        storage = "persistentvolumeclaims",
        PersistentVolumeClaim
    ),
    rt!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        ns = false,
        short = &["pv"],
        cat = &[],
        sub = &["status"],
        storage = "persistentvolumes",
        PersistentVolume
    ),
    rt!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ns = true,
        short = &["deploy"],
        cat = ALL,
        sub = &["status", "scale"],
        storage = "deployments",
        Deployment
    ),
    rt!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ns = true,
        short = &["rs"],
        cat = ALL,
        sub = &["status", "scale"],
        storage = "replicasets",
        ReplicaSet
    ),
    rt!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        ns = true,
        short = &["sts"],
        cat = ALL,
        sub = &["status", "scale"],
        storage = "statefulsets",
        StatefulSet
    ),
    rt!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ns = true,
        short = &["ds"],
        cat = ALL,
        sub = &["status"],
        storage = "daemonsets",
        DaemonSet
    ),
    rt!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        ns = true,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "controllerrevisions",
        ControllerRevision
    ),
    rt!(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        ns = true,
        short = &[],
        cat = ALL,
        sub = &["status"],
        storage = "jobs",
        Job
    ),
    rt!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        ns = true,
        short = &["cj"],
        cat = ALL,
        sub = &["status"],
        storage = "cronjobs",
        CronJob
    ),
    // kubectl 1.20's `create cronjob` speaks batch/v1beta1: the same objects, one store.
    rt!(
        "batch",
        "v1beta1",
        "CronJob",
        "cronjobs",
        "cronjob",
        ns = true,
        short = &["cj"],
        cat = ALL,
        sub = &["status"],
        storage = "cronjobs",
        CronJob
    ),
    // Served so that `kubectl get hpa` answers and `kubectl autoscale` gets a clear refusal
    // (see spec_validation): a Kindling cluster has no metrics to scale on.
    rt!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ns = true,
        short = &["hpa"],
        cat = ALL,
        sub = &["status"],
        storage = "horizontalpodautoscalers",
        Default
    ),
    // kubectl 1.20's `autoscale` speaks autoscaling/v1.
    rt!(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ns = true,
        short = &["hpa"],
        cat = ALL,
        sub = &["status"],
        storage = "horizontalpodautoscalers",
        Default
    ),
    rt!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        ns = true,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "roles",
        Role
    ),
    rt!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        ns = true,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "rolebindings",
        RoleBinding
    ),
    rt!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        ns = false,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "clusterroles",
        Role
    ),
    rt!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        ns = false,
        short = &[],
        cat = &[],
        sub = &[],
        storage = "clusterrolebindings",
        RoleBinding
    ),
    review!(
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview"
    ),
    review!(
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview"
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

    /// Whether this entry is the one its store is kept under: a type served at several versions
    /// is walked once (by the collector, namespace finalization) through its first entry.
    pub fn is_storage_version(&self) -> bool {
        RESOURCES
            .iter()
            .find(|r| r.group == self.group && r.storage == self.storage)
            .is_some_and(|r| std::ptr::eq(r, self))
    }

    /// Whether objects of this type live in etcd (review types are computed per request).
    pub fn stored(&self) -> bool {
        !self.storage.is_empty()
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

/// What a subresource answers with, for discovery and the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// The group/version/kind and verbs of `rt`'s subresource `sub`: `scale` speaks
/// `autoscaling/v1` Scale whatever the parent is (client-go's scale client reads this from
/// discovery), `binding` and `eviction` are create-only.
pub fn subresource(rt: &'static ResourceType, sub: &str) -> Subresource {
    let own = |verbs| Subresource {
        group: rt.group,
        version: rt.version,
        kind: rt.kind,
        verbs,
    };
    match sub {
        "scale" => Subresource {
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: SUB_VERBS,
        },
        "binding" => Subresource {
            group: "",
            version: "v1",
            kind: "Binding",
            verbs: &["create"],
        },
        "eviction" => Subresource {
            group: "policy",
            version: "v1",
            kind: "Eviction",
            verbs: &["create"],
        },
        "finalize" => own(&["update"]),
        // Logs are read-only plain text, listed as kind Pod like upstream's discovery.
        "log" => own(&["get"]),
        // Streams are opened with GET (WebSocket) or POST (SPDY), listed like upstream.
        "exec" | "attach" | "portforward" => Subresource {
            group: "",
            version: "v1",
            kind: match sub {
                "exec" => "PodExecOptions",
                "attach" => "PodAttachOptions",
                _ => "PodPortForwardOptions",
            },
            verbs: &["create", "get"],
        },
        _ => own(SUB_VERBS),
    }
}

/// The type with `kind` in the group of `api_version` (an ownerReference's pair).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
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
