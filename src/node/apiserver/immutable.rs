//! Fields upstream refuses to change on update, refused with upstream's messages.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::resources::ResourceType;
use super::status::ApiError;

/// The fields of a pod's spec an update may change, as upstream lists them in its refusal.
const POD_UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The fields of a StatefulSet's spec an update may change.
const STATEFULSET_UPDATABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

const IMMUTABLE: &str = "field is immutable";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

type Cause = (&'static str, String, String);

/// `new` if the update from `old` changes nothing that must stay; else upstream's 422.
pub fn check_update(rt: &ResourceType, old: &Value, new: Value) -> Result<Value, ApiError> {
    let causes = match (rt.group, rt.kind) {
        ("", "Pod") => pod(old, &new),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => selector(old, &new),
        ("apps", "StatefulSet") => statefulset(old, &new),
        ("batch", "Job") => job(old, &new),
        ("", "ConfigMap") => locked(old, &new, &["data", "binaryData"]),
        ("", "Secret") => {
            let mut c = locked(old, &new, &["data"]);
            let (was, now) = (&old["type"], &new["type"]);
            if !was.is_null() && now != was {
                c.push(immutable("type", now));
            }
            c
        }
        _ => Vec::new(),
    };
    if causes.is_empty() {
        return Ok(new);
    }
    let name = old["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError::invalid(rt, name, causes))
}

/// A copy without nulls and empty maps or lists, so `{}` and a missing field compare equal.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), normalized(x)))
                .filter(|(_, x)| !is_empty(x))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        x => x.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    normalized(a) == normalized(b)
}

fn immutable(field: &str, value: &Value) -> Cause {
    (
        "FieldValueInvalid",
        field.to_string(),
        format!("Invalid value: {}: {IMMUTABLE}", go_value(value)),
    )
}

/// A value the way upstream's messages print it: strings quoted, numbers bare, objects as
/// compact JSON (Go prints its own structs there; the field path says what it is).
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`, as upstream's "field is immutable" prints it.
fn go_selector(sel: &Value) -> String {
    let labels = match sel["matchLabels"].as_object() {
        Some(m) => {
            let sorted: BTreeMap<_, _> = m.iter().collect();
            let pairs: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
        None => "map[string]string(nil)".into(),
    };
    let exprs = match sel["matchExpressions"].as_array() {
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| {
                    let values = match e["values"].as_array() {
                        Some(v) => format!(
                            "[]string{{{}}}",
                            v.iter()
                                .map(|x| format!("{:?}", x.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        None => "[]string(nil)".into(),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        e["key"].as_str().unwrap_or_default(),
                        e["operator"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".into(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

fn selector(old: &Value, new: &Value) -> Vec<Cause> {
    let (was, now) = (&old["spec"]["selector"], &new["spec"]["selector"]);
    if was.is_null() || same(was, now) {
        return Vec::new();
    }
    vec![(
        "FieldValueInvalid",
        "spec.selector".into(),
        format!("Invalid value: {}: {IMMUTABLE}", go_selector(now)),
    )]
}

fn statefulset(old: &Value, new: &Value) -> Vec<Cause> {
    let rest = |s: &Value| {
        let mut s = s.clone();
        if let Some(m) = s.as_object_mut() {
            for f in STATEFULSET_UPDATABLE {
                m.remove(*f);
            }
        }
        s
    };
    if same(&rest(&old["spec"]), &rest(&new["spec"])) {
        return Vec::new();
    }
    let list: Vec<String> = STATEFULSET_UPDATABLE[..STATEFULSET_UPDATABLE.len() - 1]
        .iter()
        .map(|f| format!("'{f}'"))
        .collect();
    vec![(
        "FieldValueForbidden",
        "spec".into(),
        format!(
            "Forbidden: updates to statefulset spec for fields other than {} and '{}' are forbidden",
            list.join(", "),
            STATEFULSET_UPDATABLE[STATEFULSET_UPDATABLE.len() - 1]
        ),
    )]
}

fn job(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = selector(old, new);
    let (was, now) = (&old["spec"]["template"], &new["spec"]["template"]);
    if !same(was, now) {
        causes.push(immutable("spec.template", now));
    }
    causes
}

/// ConfigMaps and Secrets marked `immutable: true`: the mark and the data stay.
fn locked(old: &Value, new: &Value, data: &[&str]) -> Vec<Cause> {
    if old["immutable"].as_bool() != Some(true) {
        return Vec::new();
    }
    let forbidden = |f: &str| {
        (
            "FieldValueForbidden",
            f.to_string(),
            format!("Forbidden: {IMMUTABLE_WHEN_SET}"),
        )
    };
    let mut causes = Vec::new();
    if new["immutable"].as_bool() != Some(true) {
        causes.push(forbidden("immutable"));
    }
    for f in data {
        if !same(&old[*f], &new[*f]) {
            causes.push(forbidden(f));
        }
    }
    causes
}

/// The pod's spec with what an update may change taken from `new`: if that equals `new`'s
/// spec, nothing else changed.
fn pod(old: &Value, new: &Value) -> Vec<Cause> {
    let (was, now) = (&old["spec"], &new["spec"]);
    let mut munged = was.clone();
    for list in ["containers", "initContainers"] {
        if let (Some(m), Some(n)) = (munged[list].as_array_mut(), now[list].as_array())
            && m.len() == n.len()
        {
            for (mc, nc) in m.iter_mut().zip(n) {
                mc["image"] = nc["image"].clone();
            }
        }
    }
    munged["activeDeadlineSeconds"] = now["activeDeadlineSeconds"].clone();
    // Tolerations may only be added to.
    let old_tol = was["tolerations"].as_array().cloned().unwrap_or_default();
    let new_tol = now["tolerations"].as_array().cloned().unwrap_or_default();
    if old_tol.iter().all(|t| new_tol.iter().any(|n| same(t, n))) {
        munged["tolerations"] = now["tolerations"].clone();
    }
    let was_grace = was["terminationGracePeriodSeconds"].as_i64();
    if was_grace.is_some_and(|g| g < 0) && now["terminationGracePeriodSeconds"] == json!(1) {
        munged["terminationGracePeriodSeconds"] = json!(1);
    }
    if same(&munged, now) {
        return Vec::new();
    }
    vec![(
        "FieldValueForbidden",
        "spec".into(),
        format!(
            "Forbidden: pod updates may not change fields other than {POD_UPDATABLE}\n{}",
            spec_diff(&munged, now)
        ),
    )]
}

/// What changed, field by field, in the shape of the diff upstream appends.
fn spec_diff(old: &Value, new: &Value) -> String {
    let (o, n) = (normalized(old), normalized(new));
    let empty = Map::new();
    let (om, nm) = (
        o.as_object().unwrap_or(&empty),
        n.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = om.keys().chain(nm.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        match (om.get(k), nm.get(k)) {
            (a, b) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push_str(&format!("- \t{k}: {a},\n"));
                }
                if let Some(b) = b {
                    out.push_str(&format!("+ \t{k}: {b},\n"));
                }
            }
        }
    }
    out.push_str("  }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    fn pod_with(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn pod_images_may_change_but_nothing_else() {
        let pods = find("", "v1", "pods").unwrap();
        let old = pod_with(
            json!({"containers": [{"name": "a", "image": "x:1"}], "restartPolicy": "Always"}),
        );
        let image = pod_with(
            json!({"containers": [{"name": "a", "image": "x:2"}], "restartPolicy": "Always"}),
        );
        assert!(check_update(pods, &old, image).is_ok());
        let policy = pod_with(
            json!({"containers": [{"name": "a", "image": "x:1"}], "restartPolicy": "Never"}),
        );
        let e = check_update(pods, &old, policy).unwrap_err();
        assert!(e.message.starts_with("Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{}", e.message);
        assert!(
            e.message
                .contains("- \trestartPolicy: \"Always\",\n+ \trestartPolicy: \"Never\",")
        );
    }

    #[test]
    fn tolerations_may_only_be_added() {
        let pods = find("", "v1", "pods").unwrap();
        let t = json!({"key": "k", "operator": "Exists"});
        let old = pod_with(json!({"containers": [], "tolerations": [t]}));
        let more = pod_with(json!({"containers": [], "tolerations": [t, {"key": "j"}]}));
        assert!(check_update(pods, &old, more).is_ok());
        let fewer = pod_with(json!({"containers": []}));
        assert!(check_update(pods, &old, fewer).is_err());
    }

    #[test]
    fn a_deployment_selector_is_immutable_with_upstream_wording() {
        let deploys = find("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}});
        let scaled = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 3}});
        assert!(check_update(deploys, &old, scaled).is_ok());
        let moved = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "b", "tier": "x"}}}});
        let e = check_update(deploys, &old, moved).unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
    }

    #[test]
    fn immutable_config_maps_keep_their_data_and_their_mark() {
        let cms = find("", "v1", "configmaps").unwrap();
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let relabelled = json!({"metadata": {"name": "c", "labels": {"x": "y"}}, "immutable": true, "data": {"a": "1"}});
        assert!(check_update(cms, &old, relabelled).is_ok());
        let changed = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        let e = check_update(cms, &old, changed).unwrap_err();
        assert_eq!(
            e.message,
            "ConfigMap \"c\" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, data: Forbidden: field is immutable when `immutable` is set]"
        );
    }

    #[test]
    fn statefulset_updates_are_limited_to_upstreams_list() {
        let sts = find("apps", "v1", "statefulsets").unwrap();
        let old = json!({"metadata": {"name": "s"}, "spec": {"serviceName": "a", "replicas": 1}});
        let scaled =
            json!({"metadata": {"name": "s"}, "spec": {"serviceName": "a", "replicas": 2}});
        assert!(check_update(sts, &old, scaled).is_ok());
        let renamed =
            json!({"metadata": {"name": "s"}, "spec": {"serviceName": "b", "replicas": 1}});
        let e = check_update(sts, &old, renamed).unwrap_err();
        assert!(e.message.ends_with("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
    }
}
