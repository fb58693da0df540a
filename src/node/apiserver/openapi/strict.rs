//! Server-side field validation (`?fieldValidation=`): unknown and duplicate fields are refused
//! with upstream's "strict decoding error" (Strict, kubectl's default since 1.27), dropped with a
//! warning each (Warn, the server's default) or dropped silently (Ignore).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{definition, definition_for};
use crate::node::apiserver::resources::ResourceType;
use crate::node::apiserver::status::ApiError;

/// What `?fieldValidation=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Strict,
    /// Upstream's default when the parameter is missing.
    Warn,
    Ignore,
}

impl Mode {
    pub fn parse(q: &HashMap<String, String>) -> Mode {
        match q.get("fieldValidation").map(String::as_str) {
            Some("Strict") => Mode::Strict,
            Some("Ignore") => Mode::Ignore,
            _ => Mode::Warn,
        }
    }
}

/// Remove the fields of `obj` that `rt`'s schema does not declare, as upstream's decoder drops
/// them; their paths, for warnings.
pub fn prune(rt: &ResourceType, obj: &mut Value) -> Vec<String> {
    let Some(s) = definition_for(rt) else {
        return Vec::new();
    };
    let unknown = unknown_fields(s, obj);
    for path in &unknown {
        remove_path(obj, path);
    }
    unknown
}

/// Remove the field at `a.b[2].c` (a path [`unknown_fields`] gave).
fn remove_path(v: &mut Value, path: &str) {
    let mut cur = v;
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('.') {
        // `containers[0][1]`: a name then indexes; names never hold brackets in these paths.
        let mut rest = seg;
        if let Some(i) = rest.find('[') {
            parts.push(&rest[..i]);
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                parts.push(&rest[..=end]);
                rest = &rest[end + 1..];
            }
        } else {
            parts.push(rest);
        }
    }
    let Some((last, init)) = parts.split_last() else {
        return;
    };
    for p in init {
        let next = match p.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            Some(i) => i.parse::<usize>().ok().and_then(|i| cur.get_mut(i)),
            None => cur.get_mut(*p),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(*last);
    }
}

/// Paths of keys given twice in one object of a JSON document (the decoder keeps the last).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut s = Scan {
        b: body,
        i: 0,
        out: Vec::new(),
    };
    s.value("");
    s.out
}

/// A minimal JSON walker over a document serde_json has already accepted.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    out: Vec<String>,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn string(&mut self) -> Option<String> {
        let start = self.i;
        self.i += 1;
        while let Some(c) = self.b.get(self.i) {
            match c {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return serde_json::from_slice(&self.b[start..self.i]).ok();
                }
                _ => self.i += 1,
            }
        }
        None
    }

    fn value(&mut self, path: &str) -> Option<()> {
        self.ws();
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match *self.b.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut seen = std::collections::HashSet::new();
                loop {
                    self.ws();
                    match *self.b.get(self.i)? {
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' => self.i += 1,
                        b'"' => {
                            let key = self.string()?;
                            self.ws();
                            if self.b.get(self.i) != Some(&b':') {
                                return None;
                            }
                            self.i += 1;
                            let p = join(&key);
                            self.value(&p)?;
                            if !seen.insert(key) {
                                self.out.push(p);
                            }
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut n = 0;
                loop {
                    self.ws();
                    match *self.b.get(self.i)? {
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' => self.i += 1,
                        _ => {
                            self.value(&format!("{path}[{n}]"))?;
                            n += 1;
                        }
                    }
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                Some(())
            }
        }
    }
}

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

/// Where a value's JSON type is not the schema's, in upstream's words: the decoder's
/// `json: cannot unmarshal number into Go struct field DeploymentSpec.spec.replicas of type int32`
/// inside `Deployment in version "v1" cannot be handled as a Deployment: ...` (400).
pub fn check_types(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let Some(s) = definition_for(rt) else {
        return Ok(());
    };
    match type_error(s, obj, rt.kind, "") {
        None => Ok(()),
        Some(e) => Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {e}",
            kind = rt.kind,
            v = rt.version
        ))),
    }
}

/// The Go type a schema decodes into, as Go's errors print it (`v1.Container`, `[]string`).
fn go_type(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        let mut parts = name.rsplitn(3, '.');
        let (ty, pkg) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        return format!("{pkg}.{ty}");
    }
    match (s["type"].as_str(), s["format"].as_str()) {
        (Some("integer"), Some(f)) => f.to_string(),
        (Some("integer"), None) => "int64".into(),
        (Some("number"), _) => "float64".into(),
        (Some("boolean"), _) => "bool".into(),
        (Some("string"), Some("byte")) => "[]uint8".into(),
        (Some("string"), _) => "string".into(),
        (Some("array"), _) => format!("[]{}", go_type(&s["items"])),
        (Some("object"), _) if s["additionalProperties"].is_object() => {
            format!("map[string]{}", go_type(&s["additionalProperties"]))
        }
        _ => "interface {}".into(),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The first mismatch of `v` against schema `s`; `owner` is the innermost struct's name and
/// `path` the field path without indexes, as Go's decoder reports them.
fn type_error(s: &Value, v: &Value, owner: &str, path: &str) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let target = resolve(s);
    let ref_name = s["$ref"]
        .as_str()
        .map(|r| r.rsplit('.').next().unwrap_or_default());
    let fail = |what: String| {
        Some(format!(
            "json: cannot unmarshal {what} into Go struct field {owner}.{path} of type {}",
            go_type(s)
        ))
    };
    let kind = json_kind(v);
    match ref_name {
        // Decoded by their own code: Quantity takes numbers too, RawExtension anything.
        Some("Quantity") if v.is_string() || v.is_number() => return None,
        Some("RawExtension" | "FieldsV1" | "JSON") => return None,
        _ => {}
    }
    match (target["type"].as_str(), target["format"].as_str()) {
        (Some("string"), Some("int-or-string")) if v.is_string() || v.is_i64() => None,
        (Some("string"), Some("int-or-string")) => fail(kind.to_string()),
        (Some("string"), _) if !v.is_string() => fail(kind.to_string()),
        (Some("boolean"), _) if !v.is_boolean() => fail(kind.to_string()),
        (Some("integer"), f) => {
            let fits = match (v.as_i64(), f) {
                (Some(n), Some("int32")) => i32::try_from(n).is_ok(),
                (Some(_), _) => true,
                (None, _) => false,
            };
            match (fits, v) {
                (true, _) => None,
                (false, Value::Number(n)) => fail(format!("number {n}")),
                (false, _) => fail(kind.to_string()),
            }
        }
        (Some("array"), _) => match v.as_array() {
            None => fail(kind.to_string()),
            Some(items) => items
                .iter()
                .find_map(|x| type_error(&target["items"], x, owner, path)),
        },
        (Some("object"), _) | (None, _) => {
            let Some(m) = v.as_object() else {
                return if target["properties"].is_object() || target["type"] == "object" {
                    fail(kind.to_string())
                } else {
                    None
                };
            };
            let name = ref_name.unwrap_or(owner);
            let join = |k: &str| {
                if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                }
            };
            if let Some(props) = target["properties"].as_object() {
                m.iter().find_map(|(k, x)| {
                    props
                        .get(k)
                        .and_then(|sub| type_error(sub, x, name, &join(k)))
                })
            } else if let Some(sub) = target.get("additionalProperties").filter(|a| a.is_object()) {
                m.iter()
                    .find_map(|(k, x)| type_error(sub, x, name, &join(k)))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn strict(q: &HashMap<String, String>) -> bool {
    Mode::parse(q) == Mode::Strict
}

/// Upstream's warning (and strict error item) for an unknown field.
pub fn unknown_warning(path: &str) -> String {
    format!("unknown field \"{path}\"")
}

/// Upstream's warning (and strict error item) for a field given twice.
pub fn duplicate_warning(path: &str) -> String {
    format!("duplicate field \"{path}\"")
}

fn decoding_error(fields: &[String], duplicates: &[String]) -> String {
    let list: Vec<String> = fields
        .iter()
        .map(|f| unknown_warning(f))
        .chain(duplicates.iter().map(|f| duplicate_warning(f)))
        .collect();
    format!("strict decoding error: {}", list.join(", "))
}

/// A create or update body: with `fieldValidation=Strict`, unknown fields are a 400 worded as
/// upstream's decoder words it (`Pod in version "v1" cannot be handled as a Pod: ...`).
pub fn check_object(
    rt: &ResourceType,
    q: &HashMap<String, String>,
    obj: Value,
    duplicates: &[String],
) -> Result<Value, ApiError> {
    let Some(s) = definition_for(rt).filter(|_| strict(q)) else {
        return Ok(obj);
    };
    let unknown = unknown_fields(s, &obj);
    if unknown.is_empty() && duplicates.is_empty() {
        return Ok(obj);
    }
    Err(ApiError::bad_request(format!(
        "{kind} in version \"{v}\" cannot be handled as a {kind}: {}",
        decoding_error(&unknown, duplicates),
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
    let message = format!("Invalid value: {patch}: {}", decoding_error(&unknown, &[]));
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
        let e = check_object(pods, &strict_q(), pod, &[]).unwrap_err();
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
        assert!(check_object(cms, &strict_q(), cm, &[]).is_ok());
    }

    #[test]
    fn without_strict_unknown_fields_are_accepted() {
        let cms = find("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "c"}, "foo": 1});
        assert!(check_object(cms, &HashMap::new(), cm, &[]).is_ok());
    }

    #[test]
    fn duplicate_keys_are_found_with_their_paths() {
        let body = br#"{"spec": {"replicas": 1, "template": {"a": [{"x": 1, "x": "}"}]}, "replicas": 2}, "k": "a\"}"}"#;
        assert_eq!(
            duplicate_fields(body),
            vec![
                "spec.template.a[0].x".to_string(),
                "spec.replicas".to_string()
            ]
        );
        assert!(duplicate_fields(br#"{"a": {"b": 1}, "c": {"b": 2}}"#).is_empty());
    }

    #[test]
    fn pruning_drops_unknown_fields_and_keeps_the_rest() {
        let pods = find("", "v1", "pods").unwrap();
        let mut pod = json!({"metadata": {"name": "p", "bogus": 1},
            "spec": {"foo": 1, "containers": [{"name": "c", "image": "i", "requests": {}}]}});
        let gone = prune(pods, &mut pod);
        assert_eq!(gone.len(), 3);
        assert_eq!(
            pod,
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
        );
    }

    #[test]
    fn wrong_json_types_are_refused_like_gos_decoder() {
        let deploys = find("apps", "v1", "deployments").unwrap();
        let e = check_types(deploys, &json!({"spec": {"replicas": "three"}})).unwrap_err();
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let e = check_types(deploys, &json!({"spec": 7})).unwrap_err();
        assert!(e.message.ends_with("json: cannot unmarshal number into Go struct field Deployment.spec of type v1.DeploymentSpec"), "{}", e.message);
        let e = check_types(deploys, &json!({"spec": {"replicas": 4294967296u64}})).unwrap_err();
        assert!(
            e.message
                .contains("cannot unmarshal number 4294967296 into")
        );
        let pods = find("", "v1", "pods").unwrap();
        let ok = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c",
            "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}, "ports": [{"containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": "http"}}}]}});
        assert!(check_types(pods, &ok).is_ok());
        let e = check_types(pods, &json!({"spec": {"containers": [{"image": 5}]}})).unwrap_err();
        assert!(
            e.message
                .ends_with("Go struct field Container.spec.containers.image of type string"),
            "{}",
            e.message
        );
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
