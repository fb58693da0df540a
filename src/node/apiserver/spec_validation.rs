//! Per-kind validation of what users write most (Pods and pod templates, workloads, config
//! keys, CronJob schedules), every problem reported at once in upstream's words: a 422
//! Invalid whose causes name the field, like `spec.containers[0].image: Required value`.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::resources::ResourceType;
use super::status::ApiError;
use super::validation::is_dns1123_label;

type Cause = (&'static str, String, String);

const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn required(field: String) -> Cause {
    ("FieldValueRequired", field, "Required value".into())
}

fn invalid(field: String, value: &Value, why: &str) -> Cause {
    (
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {why}", go_value(value)),
    )
}

/// How Go's `%#v` prints the value in upstream's messages (strings quoted, numbers bare).
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(m) => {
            let pairs: BTreeMap<&String, &Value> = m.iter().collect();
            let inner: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", go_value(v)))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn unsupported(field: String, value: &Value, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    (
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {}: supported values: {}",
            go_value(value),
            list.join(", ")
        ),
    )
}

/// Checks `obj` of type `rt`; Ok when nothing is wrong.
pub fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    match (rt.group, rt.kind) {
        ("", "Pod") => pod_spec(&obj["spec"], "spec", &mut causes),
        ("", "ConfigMap") => {
            config_keys(&obj["data"], "data", &mut causes);
            config_keys(&obj["binaryData"], "binaryData", &mut causes);
        }
        ("", "Secret") => config_keys(&obj["data"], "data", &mut causes),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            workload(&obj["spec"], &mut causes)
        }
        ("autoscaling", "HorizontalPodAutoscaler") => return Err(no_autoscaling(obj)),
        ("batch", "Job") => job_template(&obj["spec"]["template"], "spec.template", &mut causes),
        ("batch", "CronJob") => {
            let schedule = &obj["spec"]["schedule"];
            match schedule.as_str() {
                None | Some("") => causes.push(required("spec.schedule".into())),
                Some(s) if !s.starts_with('@') && s.split_whitespace().count() != 5 => {
                    let n = s.split_whitespace().count();
                    causes.push(invalid(
                        "spec.schedule".into(),
                        schedule,
                        &format!("expected exactly 5 fields, found {n}: {s}"),
                    ))
                }
                _ => {}
            }
            job_template(
                &obj["spec"]["jobTemplate"]["spec"]["template"],
                "spec.jobTemplate.spec.template",
                &mut causes,
            );
        }
        _ => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError::invalid(rt, name, causes))
}

/// A HorizontalPodAutoscaler is refused, as an admission webhook would refuse it: nothing in a
/// Kindling cluster measures CPU, so it could only ever show `<unknown>` targets.
fn no_autoscaling(obj: &Value) -> ApiError {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let target = &obj["spec"]["scaleTargetRef"];
    let kind = target["kind"]
        .as_str()
        .unwrap_or("Deployment")
        .to_lowercase();
    let what = target["name"].as_str().unwrap_or(name);
    ApiError::new(
        403,
        "Forbidden",
        format!(
            "horizontalpodautoscalers.autoscaling {name:?} is forbidden: Kindling clusters run no \
             metrics server, so nothing could scale on CPU or memory; scale by hand instead: \
             kubectl scale {kind} {what} --replicas=N"
        ),
    )
}

fn config_keys(data: &Value, field: &str, causes: &mut Vec<Cause>) {
    let Some(m) = data.as_object() else {
        return;
    };
    for k in m.keys() {
        let ok = !k.is_empty()
            && k.len() <= 253
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            causes.push(invalid(
                format!("{field}[{k}]"),
                &Value::String(k.clone()),
                CONFIG_KEY_MSG,
            ));
        }
    }
}

fn job_template(template: &Value, at: &str, causes: &mut Vec<Cause>) {
    let policy = &template["spec"]["restartPolicy"];
    if !matches!(policy.as_str(), Some("OnFailure" | "Never")) {
        causes.push((
            "FieldValueRequired",
            format!("{at}.spec.restartPolicy"),
            "Required value: valid values: \"OnFailure\", \"Never\"".into(),
        ));
    }
    pod_spec(&template["spec"], &format!("{at}.spec"), causes);
}

fn workload(spec: &Value, causes: &mut Vec<Cause>) {
    if let Some(n) = spec["replicas"].as_i64().filter(|n| *n < 0) {
        causes.push(invalid(
            "spec.replicas".into(),
            &Value::from(n),
            "must be greater than or equal to 0",
        ));
    }
    let selector = &spec["selector"];
    let labels = &spec["template"]["metadata"]["labels"];
    if selector.is_null() {
        causes.push(required("spec.selector".into()));
    } else if !selects(selector, labels) {
        causes.push(invalid(
            "spec.template.metadata.labels".into(),
            if labels.is_null() {
                &Value::Null
            } else {
                labels
            },
            "`selector` does not match template `labels`",
        ));
    }
    pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
}

/// Whether a LabelSelector (matchLabels and matchExpressions) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels[k].as_str();
    let labels_ok = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let exprs_ok = selector["matchExpressions"].as_array().is_none_or(|a| {
        a.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

fn pod_spec(spec: &Value, at: &str, causes: &mut Vec<Cause>) {
    let restart = &spec["restartPolicy"];
    if !restart.is_null() && !matches!(restart.as_str(), Some("Always" | "OnFailure" | "Never")) {
        causes.push(unsupported(
            format!("{at}.restartPolicy"),
            restart,
            &["Always", "OnFailure", "Never"],
        ));
    }
    let dns = &spec["dnsPolicy"];
    if !dns.is_null()
        && !matches!(
            dns.as_str(),
            Some("ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None")
        )
    {
        causes.push(unsupported(
            format!("{at}.dnsPolicy"),
            dns,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    let mut volumes = HashSet::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let field = format!("{at}.volumes[{i}].name");
        match v["name"].as_str() {
            None | Some("") => causes.push(required(field)),
            Some(n) if !is_dns1123_label(n) => {
                causes.push(invalid(field, &v["name"], DNS_LABEL_MSG))
            }
            Some(n) if !volumes.insert(n.to_string()) => causes.push((
                "FieldValueDuplicate",
                field,
                format!("Duplicate value: {n:?}"),
            )),
            _ => {}
        }
    }
    let containers = spec["containers"].as_array().filter(|a| !a.is_empty());
    if containers.is_none() {
        causes.push(required(format!("{at}.containers")));
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            container(
                c,
                &format!("{at}.{list}[{i}]"),
                &volumes,
                &mut names,
                causes,
            );
        }
    }
}

fn container(
    c: &Value,
    at: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    match c["name"].as_str() {
        None | Some("") => causes.push(required(format!("{at}.name"))),
        Some(n) if !is_dns1123_label(n) => {
            causes.push(invalid(format!("{at}.name"), &c["name"], DNS_LABEL_MSG))
        }
        Some(n) if !names.insert(n.to_string()) => causes.push((
            "FieldValueDuplicate",
            format!("{at}.name"),
            format!("Duplicate value: {n:?}"),
        )),
        _ => {}
    }
    if c["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
        causes.push(required(format!("{at}.image")));
    }
    let policy = &c["imagePullPolicy"];
    if !policy.is_null() && !matches!(policy.as_str(), Some("Always" | "IfNotPresent" | "Never")) {
        causes.push(unsupported(
            format!("{at}.imagePullPolicy"),
            policy,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    for (i, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
        let port = &p["containerPort"];
        match port.as_i64() {
            None => causes.push(required(format!("{at}.ports[{i}].containerPort"))),
            Some(n) if !(1..=65535).contains(&n) => causes.push(invalid(
                format!("{at}.ports[{i}].containerPort"),
                port,
                "must be between 1 and 65535, inclusive",
            )),
            _ => {}
        }
        let proto = &p["protocol"];
        if !proto.is_null() && !matches!(proto.as_str(), Some("TCP" | "UDP" | "SCTP")) {
            causes.push(unsupported(
                format!("{at}.ports[{i}].protocol"),
                proto,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
    for (i, m) in c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = m["name"].as_str().unwrap_or_default();
        if !volumes.contains(name) {
            causes.push((
                "FieldValueNotFound",
                format!("{at}.volumeMounts[{i}].name"),
                format!("Not found: {name:?}"),
            ));
        }
        if m["mountPath"].as_str().is_none_or(str::is_empty) {
            causes.push(required(format!("{at}.volumeMounts[{i}].mountPath")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;
    use serde_json::json;

    fn causes(plural: &str, group: &str, version: &str, obj: Value) -> Vec<String> {
        match validate(find(group, version, plural).unwrap(), &obj) {
            Ok(()) => Vec::new(),
            Err(e) => e.details.unwrap()["causes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["field"].as_str().unwrap(),
                        c["message"].as_str().unwrap()
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_broken_pod_reports_every_problem_in_upstream_words() {
        let got = causes(
            "pods",
            "",
            "v1",
            json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [
                {"name": "Web", "ports": [{"containerPort": 0}]},
                {"name": "b", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                {"name": "b", "image": "x"}
            ]}}),
        );
        assert_eq!(
            got,
            [
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                &format!("spec.containers[0].name: Invalid value: \"Web\": {DNS_LABEL_MSG}"),
                "spec.containers[0].image: Required value",
                "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.containers[1].volumeMounts[0].name: Not found: \"data\"",
                "spec.containers[2].name: Duplicate value: \"b\"",
            ]
        );
        assert!(
            causes(
                "pods",
                "",
                "v1",
                json!({"spec": {"containers": [{"name": "a", "image": "x"}]}})
            )
            .is_empty()
        );
    }

    #[test]
    fn workloads_need_a_selector_that_matches_their_template() {
        let got = causes(
            "deployments",
            "apps",
            "v1",
            json!({"spec": {"replicas": -1, "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(
            got,
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`",
            ]
        );
        let got = causes(
            "jobs",
            "batch",
            "v1",
            json!({"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}}),
        );
        assert_eq!(
            got,
            [
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
            ]
        );
        let got = causes(
            "configmaps",
            "",
            "v1",
            json!({"data": {"bad key": "v", "good.key": "v"}}),
        );
        assert_eq!(
            got,
            [format!(
                "data[bad key]: Invalid value: \"bad key\": {CONFIG_KEY_MSG}"
            )]
        );
    }
}
