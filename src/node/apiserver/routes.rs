//! URL paths to routes: discovery documents, health checks, and resource paths with their
//! group, version, namespace, name and subresource.

use super::resources::{self, ResourceType};

/// Where a request is going.
#[derive(Debug, PartialEq)]
pub enum Route {
    Health(&'static str),
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
    /// `/openapi/v2`, JSON or protobuf by Accept.
    OpenApiV2,
    /// `/openapi/v3` (None) or one group-version's document (`api/v1`, `apis/<g>/<v>`).
    OpenApiV3(Option<String>),
    NotFound,
}

/// A path naming a resource type and possibly one object of it.
#[derive(Debug, PartialEq)]
pub struct ResourcePath {
    pub rt: &'static ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/api/v1/watch/...` form, same as `?watch=true`.
    pub watch: bool,
}

pub fn parse(path: &str) -> Route {
    let path = path.trim_end_matches('/');
    match path {
        "/healthz" => return Route::Health("healthz"),
        "/livez" => return Route::Health("livez"),
        "/readyz" => return Route::Health("readyz"),
        "/version" => return Route::Version,
        "/api" => return Route::CoreVersions,
        "/apis" => return Route::Groups,
        "/openapi/v2" => return Route::OpenApiV2,
        "/openapi/v3" => return Route::OpenApiV3(None),
        _ => {}
    }
    if let Some(gv) = path.strip_prefix("/openapi/v3/") {
        return Route::OpenApiV3(Some(gv.to_string()));
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => {
            return if resources::groups().iter().any(|(name, _)| name == g) {
                Route::Group(g.to_string())
            } else {
                Route::NotFound
            };
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    if !resources::RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
    {
        return Route::NotFound;
    }
    let (watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    if rest.is_empty() {
        return if watch {
            Route::NotFound
        } else {
            Route::ResourceList {
                group: group.into(),
                version: version.into(),
            }
        };
    }
    let find = |plural: &str| resources::find(group, version, plural);
    let resource =
        |rt: &'static ResourceType, ns: Option<&str>, name: Option<&&str>, sub: Option<&&str>| {
            if sub.is_some_and(|s| !rt.subresources.contains(s)) {
                return Route::NotFound;
            }
            Route::Resource(ResourcePath {
                rt,
                namespace: ns.map(str::to_string),
                name: name.map(|s| s.to_string()),
                subresource: sub.map(|s| s.to_string()),
                watch,
            })
        };
    match rest {
        // A namespaced type inside one namespace: /namespaces/<ns>/<plural>[/<name>[/<sub>]]
        ["namespaces", ns, plural, more @ ..]
            if more.len() <= 2 && find(plural).is_some_and(|r| r.namespaced) =>
        {
            resource(
                find(plural).expect("checked"),
                Some(ns),
                more.first(),
                more.get(1),
            )
        }
        [plural, more @ ..] if more.len() <= 2 => match find(plural) {
            // Across all namespaces (list/watch only) or a cluster-scoped type.
            Some(rt) if rt.namespaced && more.is_empty() => resource(rt, None, None, None),
            Some(rt) if !rt.namespaced => resource(rt, None, more.first(), more.get(1)),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_object_paths_carry_namespace_and_name() {
        let r = res("/api/v1/namespaces/default/configmaps/a");
        assert_eq!(r.rt.plural, "configmaps");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("a"));
    }

    #[test]
    fn namespace_status_is_a_subresource_not_a_resource_type() {
        let r = res("/api/v1/namespaces/kube-system/status");
        assert_eq!(r.rt.plural, "namespaces");
        assert_eq!(r.name.as_deref(), Some("kube-system"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.rt.plural, r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
    }

    #[test]
    fn group_resources_and_cluster_wide_lists_route() {
        let r = res("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1");
        assert_eq!(r.rt.kind, "Lease");
        let r = res("/api/v1/pods");
        assert_eq!((r.namespace, r.name), (None, None));
        let r = res("/api/v1/nodes/n1/status");
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert!(res("/api/v1/watch/namespaces/default/pods").watch);
        let r = res("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(
            (r.rt.kind, r.subresource.as_deref()),
            ("Deployment", Some("scale"))
        );
        assert_eq!(
            parse("/apis/apps/v1/namespaces/d/daemonsets/x/scale"),
            Route::NotFound
        );
    }

    #[test]
    fn unknown_paths_and_subresources_are_not_found() {
        assert_eq!(parse("/api/v1/nodes/n1/bogus"), Route::NotFound);
        assert_eq!(parse("/api/v2"), Route::NotFound);
        assert_eq!(parse("/apis/example.com"), Route::NotFound);
        assert_eq!(
            parse("/api/v1/namespaces/default/configmaps/a/b/c"),
            Route::NotFound
        );
        assert_eq!(parse("/nonsense"), Route::NotFound);
        assert_eq!(parse("/api/v1/configmaps/a"), Route::NotFound);
    }

    #[test]
    fn discovery_paths_route() {
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(
            parse("/apis/discovery.k8s.io"),
            Route::Group("discovery.k8s.io".into())
        );
        assert_eq!(
            parse("/api/v1"),
            Route::ResourceList {
                group: "".into(),
                version: "v1".into()
            }
        );
    }
}
