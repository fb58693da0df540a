//! Server-side field validation (`?fieldValidation=Strict`, kubectl's default since 1.27):
//! fields the schema does not know are refused with upstream's "strict decoding error".

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{definition, definition_for};
use crate::node::apiserver::resources::ResourceType;
use crate::node::apiserver::status::ApiError;

/// The `fieldValidation` query parameter's value that makes unknown fields an error. `Warn`
/// and `Ignore` (and no parameter) accept them, as upstream does for those.
const STRICT: &str = "Strict";

/// Paths (`spec.containers[0].foo`) of the fields in `v` that schema `s` does not declare.
pub fn unknown_fields(s: &Value, v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(s, v, "", &mut out);
    out
}

fn resolve(s: &Value) -> &Value {
    match s["$ref"].as_str() {
        Some(r) => definition(r.rsplit('/').next().unwrap_or_default()).unwrap_or(&Value::Null),
        None => s,
    }
}

fn walk(s: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    let s = resolve(s);
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            if let Some(props) = s["properties"].as_object() {
                for (k, x) in m {
                    // Strategic merge patch directives (`$patch`, `$setElementOrder/..`).
                    if k.starts_with('$') {
                        continue;
                    }
                    match props.get(k) {
                        Some(sub) => walk(sub, x, &join(k), out),
                        None => out.push(join(k)),
                    }
                }
            } else if let Some(sub) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, x) in m {
                    walk(sub, x, &join(k), out);
                }
            }
            // Neither: a free-form object (RawExtension, FieldsV1) takes anything.
        }
        Value::Array(items) => {
            if let Some(sub) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    walk(sub, x, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn strict(q: &HashMap<String, String>) -> bool {
    q.get("fieldValidation").map(String::as_str) == Some(STRICT)
}

fn decoding_error(fields: &[String]) -> String {
    let list: Vec<String> = fields
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    format!("strict decoding error: {}", list.join(", "))
}

/// A create or update body: with `fieldValidation=Strict`, unknown fields are a 400 worded as
/// upstream's decoder words it (`Pod in version "v1" cannot be handled as a Pod: ...`).
pub fn check_object(
    rt: &ResourceType,
    q: &HashMap<String, String>,
    obj: Value,
) -> Result<Value, ApiError> {
    let Some(s) = definition_for(rt).filter(|_| strict(q)) else {
        return Ok(obj);
    };
    let unknown = unknown_fields(s, &obj);
    if unknown.is_empty() {
        return Ok(obj);
    }
    Err(ApiError::bad_request(format!(
        "{kind} in version \"{v}\" cannot be handled as a {kind}: {}",
        decoding_error(&unknown),
        kind = rt.kind,
        v = rt.version
    )))
}

/// A merge, strategic-merge or apply patch: its fields are checked like an object's and refused
/// as upstream refuses them, a 422 on the field `patch`. JSON patches (operations, not an
/// object) are left to the patch code.
pub fn check_patch(
    rt: &ResourceType,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let Some(s) = definition_for(rt).filter(|_| strict(q)) else {
        return Ok(());
    };
    if content_type.starts_with("application/json-patch+json") {
        return Ok(());
    }
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let unknown = unknown_fields(s, &patch);
    if unknown.is_empty() {
        return Ok(());
    }
    let message = format!("Invalid value: {patch}: {}", decoding_error(&unknown));
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!(" \"\" is invalid: patch: {message}"),
    );
    e.details = Some(
        json!({"causes": [{"reason": "FieldValueInvalid", "message": message, "field": "patch"}]}),
    );
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    fn strict_q() -> HashMap<String, String> {
        [("fieldValidation".to_string(), "Strict".to_string())].into()
    }

    #[test]
    fn unknown_fields_are_reported_with_their_paths() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"foo": 1, "containers": [{"name": "c", "image": "i", "requests": {}}]}});
        let e = check_object(pods, &strict_q(), pod).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"metadata.bogus\", unknown field \"spec.containers[0].requests\", unknown field \"spec.foo\""
        );
    }

    #[test]
    fn known_fields_maps_and_free_form_objects_pass() {
        let cms = find("", "v1", "configmaps").unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "annotations": {"x": "y"}, "managedFields": [{"fieldsV1": {"f:data": {}}}]}, "data": {"k": "v"}});
        assert!(check_object(cms, &strict_q(), cm).is_ok());
    }

    #[test]
    fn without_strict_unknown_fields_are_accepted() {
        let cms = find("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "c"}, "foo": 1});
        assert!(check_object(cms, &HashMap::new(), cm).is_ok());
    }

    #[test]
    fn strategic_patch_directives_are_not_fields() {
        let svcs = find("", "v1", "services").unwrap();
        let ok = br#"{"spec":{"$setElementOrder/ports":[{"port":80}],"ports":[{"port":80,"$patch":"delete"}]}}"#;
        let ct = "application/strategic-merge-patch+json";
        assert!(check_patch(svcs, &strict_q(), ct, ok).is_ok());
        let e = check_patch(svcs, &strict_q(), ct, br#"{"spec":{"foo":1}}"#).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .ends_with("strict decoding error: unknown field \"spec.foo\"")
        );
    }
}
