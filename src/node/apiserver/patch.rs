//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch
//! that merges well-known lists of objects by key, the way kubectl's apply expects.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("the patch is not a JSON object")]
    NotAnObject,
    #[error("the JSON patch is not a list of operations")]
    NotAList,
    #[error("the JSON patch operation {0} is not supported")]
    UnknownOp(String),
    #[error("the JSON patch path {0} does not exist")]
    MissingPath(String),
    #[error("the JSON patch test at {0} failed")]
    TestFailed(String),
    #[error("unsupported patch content type {0}")]
    UnsupportedType(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The three patch flavours, named by their Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Merge,
    Json,
    Strategic,
}

impl Kind {
    pub fn from_content_type(ct: &str) -> Result<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Ok(Kind::Merge),
            "application/json-patch+json" => Ok(Kind::Json),
            "application/strategic-merge-patch+json" => Ok(Kind::Strategic),
            other => Err(Error::UnsupportedType(other.to_string())),
        }
    }
}

/// Apply `patch` of `kind` to `target`.
pub fn apply(kind: Kind, target: &Value, patch: &Value) -> Result<Value> {
    match kind {
        Kind::Merge => {
            if !patch.is_object() {
                return Err(Error::NotAnObject);
            }
            let mut out = target.clone();
            merge(&mut out, patch);
            Ok(out)
        }
        Kind::Strategic => {
            if !patch.is_object() {
                return Err(Error::NotAnObject);
            }
            let mut out = target.clone();
            strategic(&mut out, patch, "");
            Ok(out)
        }
        Kind::Json => json_patch(target, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The merge key of a list field, for the lists that upstream's Go types mark
/// `patchStrategy:"merge"` and that clients commonly patch.
pub(super) fn merge_key(field: &str, parent: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "volumeMounts"
        | "imagePullSecrets" => Some("name"),
        // Container ports merge by number; Service ports by port.
        "ports" if parent == "containers" || parent == "initContainers" => Some("containerPort"),
        "ports" => Some("port"),
        "taints" => Some("key"),
        "ownerReferences" => Some("uid"),
        "tolerations" => None,
        _ => None,
    }
}

/// A strategic merge patch: like a merge patch, but keyed lists merge item by item, items with
/// `$patch: delete` are removed, and other `$` directives (`$setElementOrder/...`,
/// `$retainKeys`) are accepted and ignored for now.
fn strategic(target: &mut Value, patch: &Value, field: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = patch.clone();
        strip_directives(&mut clean);
        *target = clean;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k, field), v) {
            (Some(key), Value::Array(items)) => {
                let cur = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                let list = cur.as_array_mut().expect("made an array above");
                for item in items {
                    let id = &item[key];
                    let pos = list.iter().position(|e| !id.is_null() && e[key] == *id);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic(&mut list[i], item, k),
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic(&mut fresh, item, k);
                            list.push(fresh);
                        }
                    }
                }
            }
            _ => strategic(t.entry(k.clone()).or_insert(Value::Null), v, k),
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

/// The parent container of a JSON pointer and the last segment.
fn parent_mut<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String)> {
    let segs: Vec<String> = path.split('/').skip(1).map(unescape).collect();
    let Some((last, init)) = segs.split_last() else {
        return Err(Error::MissingPath(path.to_string()));
    };
    let mut cur = doc;
    for s in init {
        cur = match cur {
            Value::Object(m) => m.get_mut(s),
            Value::Array(a) => s.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| Error::MissingPath(path.to_string()))?;
    }
    Ok((cur, last.clone()))
}

fn get_path(doc: &Value, path: &str) -> Option<Value> {
    doc.pointer(path).cloned()
}

fn remove_path(doc: &mut Value, path: &str) -> Result<Value> {
    let (parent, last) = parent_mut(doc, path)?;
    let missing = || Error::MissingPath(path.to_string());
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

fn add_path(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<()> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, path)?;
    let missing = || Error::MissingPath(path.to_string());
    match parent {
        Value::Object(m) => {
            if replace && !m.contains_key(&last) {
                return Err(missing());
            }
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing())?;
                if replace {
                    *a.get_mut(i).ok_or_else(missing)? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(missing());
                }
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

/// RFC 6902 operations, applied in order to a copy of `target`.
fn json_patch(target: &Value, patch: &Value) -> Result<Value> {
    let ops = patch.as_array().ok_or(Error::NotAList)?;
    let mut doc = target.clone();
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        match op["op"].as_str().unwrap_or_default() {
            "add" => add_path(&mut doc, path, op["value"].clone(), false)?,
            "replace" => add_path(&mut doc, path, op["value"].clone(), true)?,
            "remove" => {
                remove_path(&mut doc, path)?;
            }
            "move" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = remove_path(&mut doc, from)?;
                add_path(&mut doc, path, v, false)?;
            }
            "copy" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = get_path(&doc, from).ok_or_else(|| Error::MissingPath(from.into()))?;
                add_path(&mut doc, path, v, false)?;
            }
            "test" => {
                if get_path(&doc, path).as_ref() != Some(&op["value"]) {
                    return Err(Error::TestFailed(path.to_string()));
                }
            }
            other => return Err(Error::UnknownOp(other.to_string())),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        let out = apply(
            Kind::Merge,
            &t,
            &json!({"a": {"c": null, "d": 3}, "l": [3]}),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": 1, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_adds_replaces_removes_and_tests() {
        let t = json!({"metadata": {"labels": {"a": "1"}}, "items": [1, 2]});
        let p = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/items/0", "value": 9},
            {"op": "add", "path": "/items/-", "value": 3},
            {"op": "remove", "path": "/metadata/labels/a"},
        ]);
        let out = apply(Kind::Json, &t, &p).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b/c": "2"}}, "items": [9, 2, 3]})
        );
    }

    #[test]
    fn json_patch_on_a_missing_path_fails() {
        let err = apply(
            Kind::Json,
            &json!({}),
            &json!([{"op": "replace", "path": "/x", "value": 1}]),
        );
        assert_eq!(err, Err(Error::MissingPath("/x".into())));
    }

    #[test]
    fn strategic_patch_merges_conditions_by_type() {
        let t = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}});
        let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
        let out = apply(Kind::Strategic, &t, &p).unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([
            {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            {"type": "MemoryPressure", "status": "False"}])
        );
    }

    #[test]
    fn strategic_patch_merges_containers_by_name_and_honours_delete_directive() {
        let t = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "side", "image": "s:1"}]}});
        let p = json!({"$setElementOrder/containers": [{"name": "app"}], "spec": {"containers": [
            {"name": "app", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "side", "$patch": "delete"}]}});
        let out = apply(Kind::Strategic, &t, &p).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([
            {"name": "app", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}])
        );
    }

    #[test]
    fn content_types_select_the_patch_kind() {
        assert_eq!(
            Kind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Ok(Kind::Merge)
        );
        assert!(Kind::from_content_type("application/apply-patch+yaml").is_err());
    }
}
