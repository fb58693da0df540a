//! `authorization.k8s.io` self-subject reviews: computed per request from the same rules the
//! authorizer applies, never stored (what `kubectl auth can-i` asks).

use serde_json::{Value, json};

use super::auth::{self, Attributes, User};
use super::resources::ResourceType;
use super::status::ApiError;

/// The review `rt` answered for `user`: the request echoed with its `status` filled in.
pub fn answer(rt: &ResourceType, user: &User, body: &Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body is not a JSON object",
        ));
    }
    let mut out = body.clone();
    out["kind"] = json!(rt.kind);
    out["apiVersion"] = json!(rt.group_version());
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    out["metadata"]["creationTimestamp"] = Value::Null;
    out["status"] = match rt.kind {
        "SelfSubjectAccessReview" => access(user, &body["spec"])?,
        "SelfSubjectRulesReview" => rules(user),
        other => return Err(ApiError::internal(format!("no review for {other}"))),
    };
    Ok(out)
}

fn access(user: &User, spec: &Value) -> Result<Value, ApiError> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let allowed = if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let (verb, resource, sub, group, ns, name) = (
            s(&r["verb"]),
            s(&r["resource"]),
            s(&r["subresource"]),
            s(&r["group"]),
            s(&r["namespace"]),
            s(&r["name"]),
        );
        let opt = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        let (sub, ns, name) = (opt(&sub), opt(&ns), opt(&name));
        auth::authorize(
            user,
            &Attributes {
                verb: &verb,
                resource: &resource,
                subresource: sub.as_deref(),
                group: &group,
                namespace: ns.as_deref(),
                name: name.as_deref(),
            },
        )
        .is_ok()
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|n| n.is_object()) {
        auth::authorize_path(user, &s(&n["verb"]), &s(&n["path"])).is_ok()
    } else {
        return Err(ApiError::new(
            422,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let mut status = json!({"allowed": allowed});
    if allowed && auth::is_privileged(user) {
        status["reason"] = json!("allowed: the user is in a group that may do everything");
    }
    Ok(status)
}

/// What the user may do, as RBAC rules (`kubectl auth can-i --list`).
fn rules(user: &User) -> Value {
    if auth::is_privileged(user) {
        return json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        });
    }
    json!({
        "resourceRules": [{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": auth::SELF_REVIEWS}],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi/*", "/healthz", "/livez", "/readyz", "/version", "/version/"]}],
        "incomplete": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    fn user(groups: &[&str]) -> User {
        User {
            name: "jane".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn can_i(u: &User, verb: &str, resource: &str) -> bool {
        let rt = find("authorization.k8s.io", "v1", "selfsubjectaccessreviews").unwrap();
        let body = json!({"spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": "default"}}});
        answer(rt, u, &body).unwrap()["status"]["allowed"] == true
    }

    #[test]
    fn admins_may_create_pods_and_ordinary_users_may_not() {
        assert!(can_i(&user(&["system:masters"]), "create", "pods"));
        assert!(!can_i(&user(&["students"]), "create", "pods"));
    }

    #[test]
    fn everyone_may_ask_what_they_may_do() {
        let rt = find("authorization.k8s.io", "v1", "selfsubjectrulesreviews").unwrap();
        let r = answer(rt, &user(&[]), &json!({"spec": {"namespace": "default"}})).unwrap();
        assert_eq!(r["kind"], "SelfSubjectRulesReview");
        assert_eq!(
            r["status"]["resourceRules"][0]["resources"][0],
            "selfsubjectaccessreviews"
        );
    }
}
