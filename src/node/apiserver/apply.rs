//! Field ownership and server-side apply: `metadata.managedFields` in upstream's FieldsV1
//! form (`f:<field>`, `k:{<merge key>}`, `.`), merging an applied configuration into the live
//! object and dropping what its manager applied before but no longer sets.

use serde_json::{Map, Value, json};

use super::patch;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// Another applier owns a field this one sets to a different value.
    #[error("Apply failed with {} conflict{}: {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, describe(.0))]
    Conflicts(Vec<(String, String)>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn describe(conflicts: &[(String, String)]) -> String {
    conflicts
        .iter()
        .map(|(manager, path)| format!("conflict with \"{manager}\": {path}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Operations recorded in managedFields.
pub const APPLY: &str = "Apply";
pub const UPDATE: &str = "Update";

/// Metadata that identifies or is computed for an object: never owned by a manager.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The fields of `obj` a manager can own: without apiVersion, kind and server-set metadata.
pub fn ownable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in SERVER_METADATA {
                meta.remove(*f);
            }
        }
        if m.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            m.remove("metadata");
        }
    }
    o
}

/// The key of a list item in FieldsV1 (`k:{"name":"app"}`), or None for atomic lists.
fn item_key(item: &Value, key: &str) -> Option<String> {
    let id = item.get(key)?;
    Some(format!("k:{}", json!({ key: id })))
}

/// The FieldsV1 set of every field `v` sets; `field` is the name `v` sits under (it decides
/// how lists merge, as in strategic merge patch).
pub fn field_set(v: &Value, field: &str) -> Value {
    let mut out = Map::new();
    let Value::Object(m) = v else {
        return Value::Object(out);
    };
    for (k, child) in m {
        let entry = match (child, patch::merge_key(k, field)) {
            (Value::Object(_), _) => field_set(child, k),
            (Value::Array(items), Some(key)) => {
                let mut list = Map::new();
                for item in items {
                    if let Some(id) = item_key(item, key) {
                        let mut f = field_set(item, k);
                        f.as_object_mut()
                            .expect("field_set returns an object")
                            .insert(".".into(), json!({}));
                        list.insert(id, f);
                    }
                }
                Value::Object(list)
            }
            _ => json!({}),
        };
        out.insert(format!("f:{k}"), entry);
    }
    Value::Object(out)
}

/// The fields of `a` that `b` does not contain. A subtree `b` lacks entirely comes out whole;
/// a leaf in `a` that `b` has (as leaf or subtree) is dropped.
pub fn difference(a: &Value, b: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(am) = a {
        for (k, av) in am.iter().filter(|(k, _)| *k != ".") {
            match b.get(k) {
                None => {
                    out.insert(k.clone(), av.clone());
                }
                Some(_) if is_leaf(av) => {}
                Some(bv) => {
                    let d = difference(av, bv);
                    if !is_leaf(&d) {
                        out.insert(k.clone(), d);
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// Both sets together.
pub fn union(a: &Value, b: &Value) -> Value {
    let mut out = a.as_object().cloned().unwrap_or_default();
    if let Value::Object(bm) = b {
        for (k, bv) in bm {
            let merged = match out.get(k) {
                Some(av) => union(av, bv),
                None => bv.clone(),
            };
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

fn is_leaf(v: &Value) -> bool {
    v.as_object().is_none_or(|m| m.keys().all(|k| k == "."))
}

/// Remove from `obj` every field in the set `fields`.
pub fn remove_fields(obj: &mut Value, fields: &Value) {
    let Value::Object(fm) = fields else { return };
    for (k, sub) in fm {
        if let Some(name) = k.strip_prefix("f:") {
            let Some(m) = obj.as_object_mut() else {
                continue;
            };
            if is_leaf(sub) {
                m.remove(name);
            } else if let Some(child) = m.get_mut(name) {
                remove_fields(child, sub);
            }
        } else if let Some(key) = k.strip_prefix("k:") {
            let Some(list) = obj.as_array_mut() else {
                continue;
            };
            let Ok(Value::Object(id)) = serde_json::from_str::<Value>(key) else {
                continue;
            };
            let matches = |item: &Value| id.iter().all(|(f, v)| item.get(f) == Some(v));
            if sub.get(".").is_some() || is_leaf(sub) {
                list.retain(|item| !matches(item));
            } else if let Some(item) = list.iter_mut().find(|i| matches(i)) {
                remove_fields(item, sub);
            }
        }
    }
}

/// The value at a FieldsV1 path in `obj`.
fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        cur = if let Some(name) = seg.strip_prefix("f:") {
            cur.get(name)?
        } else if let Some(key) = seg.strip_prefix("k:") {
            let id: Value = serde_json::from_str(key).ok()?;
            let id = id.as_object()?;
            cur.as_array()?
                .iter()
                .find(|i| id.iter().all(|(f, v)| i.get(f) == Some(v)))?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Every leaf path of a set, `.` markers left out.
fn leaves(set: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Value::Object(m) = set else { return };
    let children: Vec<_> = m.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        out.push(prefix.clone());
        return;
    }
    for (k, v) in children {
        prefix.push(k.clone());
        leaves(v, prefix, out);
        prefix.pop();
    }
}

/// A path as upstream prints it in conflicts: `.spec.replicas`, `.spec.containers[name="app"]`.
fn print_path(path: &[String]) -> String {
    path.iter()
        .map(|s| match (s.strip_prefix("f:"), s.strip_prefix("k:")) {
            (Some(f), _) => format!(".{f}"),
            (_, Some(k)) => {
                let id: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> = id
                    .as_object()
                    .map(|m| m.iter().map(|(f, v)| format!("{f}={v}")).collect())
                    .unwrap_or_default();
                format!("[{}]", parts.join(","))
            }
            _ => s.clone(),
        })
        .collect()
}

/// One managedFields entry.
pub fn entry(manager: &str, operation: &str, api_version: &str, fields: &Value) -> Value {
    json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": super::handlers::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    })
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn is(e: &Value, manager: &str, operation: &str) -> bool {
    e["manager"] == manager && e["operation"] == operation
}

/// Put the manager's entry (replacing its old one) and drop entries left owning nothing.
fn set_entries(obj: &mut Value, mut list: Vec<Value>, new: Value) {
    let (m, op) = (
        new["manager"].as_str().unwrap_or_default().to_string(),
        new["operation"].as_str().unwrap_or_default().to_string(),
    );
    list.retain(|e| !is(e, &m, &op));
    if !is_leaf(&new["fieldsV1"]) {
        list.push(new);
    }
    list.retain(|e| !is_leaf(&e["fieldsV1"]));
    if list.is_empty() {
        if let Some(meta) = obj["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(list);
    }
}

/// Record that `manager` changed `old` into `new` with a non-apply write: it now owns the
/// fields that changed, and other managers lose them.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    let before = old.map(ownable).unwrap_or(Value::Null);
    let changed = field_set(&changes(&before, &ownable(new)), "");
    // The client may send managedFields back as it read them; the stored ones are the truth.
    let mut list = match old {
        Some(o) => entries(o),
        None => Vec::new(),
    };
    for e in &mut list {
        if !is(e, manager, UPDATE) {
            e["fieldsV1"] = difference(&e["fieldsV1"], &changed);
        }
    }
    let mine = list
        .iter()
        .find(|e| is(e, manager, UPDATE))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}));
    let owned = union(&mine, &changed);
    set_entries(new, list, entry(manager, UPDATE, api_version, &owned));
}

/// The parts of `new` that differ from `old` (objects compared field by field).
fn changes(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov) if ov.is_object() && nv.is_object() => {
                        out.insert(k.clone(), changes(ov, nv));
                    }
                    _ => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => new.clone(),
    }
}

/// Merge `applied` (already checked to be this type and name) into `live` for `manager`:
/// fields it applied before and no longer sets (and nobody else owns) are removed, the rest
/// is merged like a strategic merge patch, and its ownership is recorded. Other appliers'
/// fields set to different values conflict unless `force` takes them over.
pub fn apply(
    live: &Value,
    applied: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
) -> Result<Value> {
    let config = ownable(applied);
    let new_set = field_set(&config, "");
    let mut list = entries(live);
    let mut conflicts = Vec::new();
    for e in list.iter_mut().filter(|e| e["manager"] != manager) {
        let mut paths = Vec::new();
        leaves(&e["fieldsV1"], &mut Vec::new(), &mut paths);
        let mut lost = Map::new();
        for p in paths {
            let (Some(want), Some(have)) = (value_at(&config, &p), value_at(live, &p)) else {
                continue;
            };
            if want == have {
                continue;
            }
            // Conflicts are only raised against other appliers; writers that used update
            // simply lose the field, a simplification of upstream's rules.
            if e["operation"] == APPLY && !force {
                conflicts.push((
                    e["manager"].as_str().unwrap_or_default().to_string(),
                    print_path(&p),
                ));
            } else {
                insert_path(&mut lost, &p);
            }
        }
        e["fieldsV1"] = difference(&e["fieldsV1"], &Value::Object(lost));
    }
    if !conflicts.is_empty() {
        return Err(Error::Conflicts(conflicts));
    }
    let previous = list
        .iter()
        .find(|e| is(e, manager, APPLY))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}));
    let others = list
        .iter()
        .filter(|e| !is(e, manager, APPLY))
        .fold(json!({}), |acc, e| union(&acc, &e["fieldsV1"]));
    let dropped = difference(&difference(&previous, &new_set), &others);
    let mut out = live.clone();
    remove_fields(&mut out, &dropped);
    let merged = patch::apply(patch::Kind::Strategic, &out, &config)
        .expect("an applied configuration is an object");
    let mut merged = merged;
    set_entries(
        &mut merged,
        list,
        entry(manager, APPLY, api_version, &new_set),
    );
    Ok(merged)
}

fn insert_path(set: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let child = set.entry(first.clone()).or_insert_with(|| json!({}));
    if let Some(m) = child.as_object_mut() {
        insert_path(m, rest);
    }
}

/// A new object created by applying: the configuration, owned by its manager.
pub fn record_create_by_apply(obj: &mut Value, manager: &str, api_version: &str) {
    let set = field_set(&ownable(obj), "");
    set_entries(obj, Vec::new(), entry(manager, APPLY, api_version, &set));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str, extra_label: bool) -> Value {
        let mut labels = json!({"app": "web"});
        if extra_label {
            labels["tier"] = json!("front");
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    #[test]
    fn field_sets_use_upstream_f_and_k_notation() {
        let set = field_set(&ownable(&deployment("nginx:1", false)), "");
        assert_eq!(
            set,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}})
        );
    }

    #[test]
    fn applying_again_updates_values_and_drops_fields_no_longer_applied() {
        let mut live = deployment("nginx:1", true);
        live["metadata"]["uid"] = json!("u");
        record_create_by_apply(&mut live, "kubectl", "apps/v1");
        live["status"] = json!({"replicas": 2});
        let out = apply(
            &live,
            &deployment("nginx:2", false),
            "kubectl",
            "apps/v1",
            false,
        )
        .unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:2"
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["metadata"]["uid"], "u");
        assert_eq!(out["status"]["replicas"], 2);
        let entries = out["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["operation"], "Apply");
    }

    #[test]
    fn fields_another_manager_owns_survive_being_dropped_from_the_config() {
        let mut live = deployment("nginx:1", false);
        record_create_by_apply(&mut live, "kubectl", "apps/v1");
        let before = live.clone();
        live["metadata"]["labels"]["team"] = json!("a");
        record_update(Some(&before), &mut live, "kubectl-label", "apps/v1");
        let out = apply(
            &live,
            &deployment("nginx:1", false),
            "kubectl",
            "apps/v1",
            false,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"]["team"], "a");
        assert_eq!(
            out["metadata"]["managedFields"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn a_second_applier_conflicts_unless_it_forces() {
        let mut live = deployment("nginx:1", false);
        record_create_by_apply(&mut live, "kubectl", "apps/v1");
        let mut other = deployment("nginx:1", false);
        other["spec"]["replicas"] = json!(5);
        let err = apply(&live, &other, "helm", "apps/v1", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
        );
        let out = apply(&live, &other, "helm", "apps/v1", true).unwrap();
        assert_eq!(out["spec"]["replicas"], 5);
    }

    #[test]
    fn removing_a_keyed_item_drops_it_from_the_list() {
        let mut obj = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let set =
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {".": {}, "f:name": {}}}}});
        remove_fields(&mut obj, &set);
        assert_eq!(obj, json!({"spec": {"containers": [{"name": "a"}]}}));
    }
}
