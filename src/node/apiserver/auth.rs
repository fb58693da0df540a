//! Who is asking (client-certificate CN and O) and whether they may: an allow-list of admin
//! groups for now, with upstream's wording for everyone else.

use super::status::ApiError;

/// Groups that may do everything (kubeadm's admin groups, and kubelets until the Node
/// authorizer exists).
pub const PRIVILEGED_GROUPS: &[&str] =
    &["system:masters", "kubeadm:cluster-admins", "system:nodes"];

/// Paths anyone may read, as upstream's `system:public-info-viewer` role allows.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// Reviews every authenticated user may create, as upstream's `system:basic-user` role allows.
pub const SELF_REVIEWS: &[&str] = &["selfsubjectaccessreviews", "selfsubjectrulesreviews"];

/// An authenticated user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// What a request wants to do, for the authorizer and its messages.
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub group: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Whether the user is in a group that may do everything.
pub fn is_privileged(user: &User) -> bool {
    user.groups
        .iter()
        .any(|g| PRIVILEGED_GROUPS.contains(&g.as_str()))
}

/// Allow or refuse with the 403 Status upstream sends.
pub fn authorize(user: &User, a: &Attributes<'_>) -> Result<(), ApiError> {
    if is_privileged(user) {
        return Ok(());
    }
    if a.verb == "create" && a.group == "authorization.k8s.io" && SELF_REVIEWS.contains(&a.resource)
    {
        return Ok(());
    }
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let qualified = if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let subject = match a.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.group
        ),
    );
    let mut details = serde_json::json!({"kind": a.resource});
    if let Some(n) = a.name {
        details["name"] = n.into();
    }
    if !a.group.is_empty() {
        details["group"] = a.group.into();
    }
    e.details = Some(details);
    Err(e)
}

/// The 403 for a path that is not a resource (discovery, for instance).
pub fn authorize_path(user: &User, verb: &str, path: &str) -> Result<(), ApiError> {
    if is_privileged(user) {
        return Ok(());
    }
    // Discovery is readable by every authenticated user (upstream's system:discovery role).
    if verb == "get"
        && (path == "/api"
            || path == "/apis"
            || path.starts_with("/api/")
            || path.starts_with("/apis/")
            || path.starts_with("/openapi/"))
    {
        return Ok(());
    }
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
            user.name
        ),
    );
    e.details = Some(serde_json::json!({}));
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[&str]) -> User {
        User {
            name: "jane".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn list_pods() -> Attributes<'static> {
        Attributes {
            verb: "list",
            resource: "pods",
            subresource: None,
            group: "",
            namespace: Some("default"),
            name: None,
        }
    }

    #[test]
    fn admins_and_nodes_may_do_anything() {
        assert!(authorize(&user(&["system:masters"]), &list_pods()).is_ok());
        assert!(authorize(&user(&["kubeadm:cluster-admins"]), &list_pods()).is_ok());
        assert!(authorize(&user(&["system:nodes"]), &list_pods()).is_ok());
    }

    #[test]
    fn ordinary_users_are_refused_in_upstream_words() {
        let e = authorize(&user(&["students"]), &list_pods()).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let a = Attributes {
            verb: "get",
            resource: "nodes",
            subresource: Some("status"),
            group: "",
            namespace: None,
            name: Some("n1"),
        };
        assert_eq!(
            authorize(&user(&[]), &a).unwrap_err().message,
            "nodes \"n1\" is forbidden: User \"jane\" cannot get resource \"nodes/status\" in API group \"\" at the cluster scope"
        );
    }
}
