//! API errors as Kubernetes `Status` objects, worded like upstream so kubectl prints the same.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// A failed request: HTTP code, `reason`, message and optional `details`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"kind": rt.plural});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d
}

/// `Kind` or `Kind.group`, as Go's `GroupKind.String()`.
fn group_kind(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.kind.to_string()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with(mut self, d: Value) -> Self {
        self.details = Some(d);
        self
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified()),
        )
        .with(details(rt, name))
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", rt.qualified()),
        )
        .with(details(rt, name))
    }

    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.qualified()
            ),
        )
        .with(details(rt, name))
    }

    /// 422 with one cause per invalid field, as upstream's `NewInvalid`.
    pub fn invalid(
        rt: &ResourceType,
        name: &str,
        causes: Vec<(&'static str, String, String)>,
    ) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(_, field, msg)| format!("{field}: {msg}"))
            .collect();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut d = json!({"name": name, "kind": rt.kind});
        if !rt.group.is_empty() {
            d["group"] = json!(rt.group);
        }
        d["causes"] = causes
            .into_iter()
            .map(|(reason, field, message)| json!({"reason": reason, "message": message, "field": field}))
            .collect();
        Self::new(
            422,
            "Invalid",
            // Upstream's NewInvalid names the group kind (`Deployment.apps`); kubectl prints
            // `The Deployment "x" is invalid` from the details instead.
            format!("{} \"{name}\" is invalid: {summary}", group_kind(rt)),
        )
        .with(d)
    }

    /// A 422 with `other`'s causes added to this one's, as one aggregate like upstream's.
    pub fn with_causes_of(mut self, other: ApiError) -> Self {
        let causes = |e: &ApiError| {
            e.details
                .as_ref()
                .and_then(|d| d["causes"].as_array().cloned())
                .unwrap_or_default()
        };
        let mut all = causes(&self);
        all.extend(causes(&other));
        let Some((subject, _)) = self.message.split_once(" is invalid: ") else {
            return self;
        };
        let summary: Vec<String> = all
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c["field"].as_str().unwrap_or_default(),
                    c["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let summary = match summary.len() {
            1 => summary[0].clone(),
            _ => format!("[{}]", summary.join(", ")),
        };
        self.message = format!("{subject} is invalid: {summary}");
        if let Some(d) = self.details.as_mut() {
            d["causes"] = json!(all);
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with(json!({}))
    }

    pub fn method_not_allowed(verb: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({verb})"),
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "the request body is larger than the 3 MiB limit",
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unsupported_media(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
            ),
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(503, "ServiceUnavailable", message.to_string())
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    #[test]
    fn not_found_is_worded_like_upstream() {
        let s = ApiError::not_found(find("", "v1", "nodes").unwrap(), "nope").to_status();
        assert_eq!(s["message"], "nodes \"nope\" not found");
        assert_eq!(s["details"], json!({"name": "nope", "kind": "nodes"}));
        let s = ApiError::not_found(find("coordination.k8s.io", "v1", "leases").unwrap(), "l")
            .to_status();
        assert_eq!(s["message"], "leases.coordination.k8s.io \"l\" not found");
    }

    #[test]
    fn invalid_errors_combine_their_causes() {
        let rt = find("apps", "v1", "deployments").unwrap();
        let a = ApiError::invalid(
            rt,
            "d",
            vec![(
                "FieldValueInvalid",
                "spec.a".into(),
                "Invalid value: 1: x".into(),
            )],
        );
        let b = ApiError::invalid(
            rt,
            "d",
            vec![(
                "FieldValueInvalid",
                "spec.b".into(),
                "Invalid value: 2: field is immutable".into(),
            )],
        );
        let c = a.with_causes_of(b);
        assert_eq!(
            c.message,
            "Deployment.apps \"d\" is invalid: [spec.a: Invalid value: 1: x, spec.b: Invalid value: 2: field is immutable]"
        );
        assert_eq!(
            c.to_status()["details"]["causes"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn unauthorized_status_matches_upstream_exactly() {
        assert_eq!(
            ApiError::unauthorized().to_status(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
        );
    }
}
