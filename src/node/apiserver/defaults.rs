//! Upstream's defaulting, applied to every object written: the fields a real cluster fills in
//! (`restartPolicy: Always`, a Deployment's 25% rolling update, ...), so that `kubectl get -o
//! yaml` shows students what Kubernetes shows and clients that dereference them don't crash.

use serde_json::{Value, json};

use super::resources::ResourceType;

/// Sets `obj[key]` unless it already holds something.
fn or(obj: &mut Value, key: &str, value: Value) {
    if obj.is_object() && obj[key].is_null() {
        obj[key] = value;
    }
}

fn each(list: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = list.as_array_mut() {
        items.iter_mut().for_each(&mut f);
    }
}

/// What the API server's admission adds to new pods, from its flags.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// `--default-not-ready-toleration-seconds`.
    pub not_ready_toleration_seconds: u32,
    /// `--default-unreachable-toleration-seconds`.
    pub unreachable_toleration_seconds: u32,
}

/// Defaults `rt`'s object in place. `admission` is given on create only: what upstream's
/// admission adds to new Pods (service account, not-ready tolerations) and a Job's generated
/// selector are not re-added on update.
pub fn apply(rt: &ResourceType, obj: &mut Value, admission: Option<&Admission>) {
    let created = admission.is_some();
    match (rt.group, rt.kind) {
        ("", "Pod") => {
            pod_spec(&mut obj["spec"]);
            if let Some(a) = admission {
                pod_admission(&mut obj["spec"], a);
            }
        }
        ("", "PodTemplate") => pod_template(&mut obj["template"]),
        ("", "ReplicationController") => {
            or(&mut obj["spec"], "replicas", json!(1));
            pod_template(&mut obj["spec"]["template"]);
        }
        ("", "Endpoints") => each(&mut obj["subsets"], |s| {
            each(&mut s["ports"], |p| or(p, "protocol", json!("TCP")))
        }),
        ("discovery.k8s.io", "EndpointSlice") => each(&mut obj["ports"], |p| {
            or(p, "protocol", json!("TCP"));
            or(p, "name", json!(""));
        }),
        ("", "PersistentVolumeClaim") => {
            or(&mut obj["spec"], "volumeMode", json!("Filesystem"));
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({"phase": "Pending"});
            }
        }
        ("", "PersistentVolume") => {
            let spec = &mut obj["spec"];
            or(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            or(spec, "volumeMode", json!("Filesystem"));
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({"phase": "Pending"});
            }
        }
        ("apps", "Deployment") => {
            let spec = &mut obj["spec"];
            or(spec, "replicas", json!(1));
            or(spec, "revisionHistoryLimit", json!(10));
            or(spec, "progressDeadlineSeconds", json!(600));
            or(spec, "strategy", json!({}));
            or(&mut spec["strategy"], "type", json!("RollingUpdate"));
            if spec["strategy"]["type"] == "RollingUpdate" {
                or(&mut spec["strategy"], "rollingUpdate", json!({}));
                let ru = &mut spec["strategy"]["rollingUpdate"];
                or(ru, "maxUnavailable", json!("25%"));
                or(ru, "maxSurge", json!("25%"));
            }
            pod_template(&mut spec["template"]);
        }
        ("apps", "ReplicaSet") => {
            or(&mut obj["spec"], "replicas", json!(1));
            pod_template(&mut obj["spec"]["template"]);
        }
        ("apps", "StatefulSet") => {
            let spec = &mut obj["spec"];
            or(spec, "replicas", json!(1));
            or(spec, "podManagementPolicy", json!("OrderedReady"));
            or(spec, "revisionHistoryLimit", json!(10));
            or(spec, "updateStrategy", json!({}));
            or(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                or(&mut spec["updateStrategy"], "rollingUpdate", json!({}));
                or(
                    &mut spec["updateStrategy"]["rollingUpdate"],
                    "partition",
                    json!(0),
                );
            }
            or(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            pod_template(&mut spec["template"]);
        }
        ("apps", "DaemonSet") => {
            let spec = &mut obj["spec"];
            or(spec, "revisionHistoryLimit", json!(10));
            or(spec, "updateStrategy", json!({}));
            or(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                or(&mut spec["updateStrategy"], "rollingUpdate", json!({}));
                let ru = &mut spec["updateStrategy"]["rollingUpdate"];
                or(ru, "maxUnavailable", json!(1));
                or(ru, "maxSurge", json!(0));
            }
            pod_template(&mut spec["template"]);
        }
        ("batch", "Job") => {
            if created {
                job_selector(obj);
            }
            job_spec(&mut obj["spec"]);
        }
        ("batch", "CronJob") => {
            let spec = &mut obj["spec"];
            or(spec, "concurrencyPolicy", json!("Allow"));
            or(spec, "suspend", json!(false));
            or(spec, "successfulJobsHistoryLimit", json!(3));
            or(spec, "failedJobsHistoryLimit", json!(1));
            pod_template(&mut spec["jobTemplate"]["spec"]["template"]);
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            each(&mut obj["subjects"], |s| {
                let group = match s["kind"].as_str() {
                    Some("User" | "Group") => "rbac.authorization.k8s.io",
                    _ => "",
                };
                or(s, "apiGroup", json!(group));
            })
        }
        _ => {}
    }
}

/// A Job's own selector, unless the user manages it: upstream labels the template with the
/// Job's uid and name and selects on the uid.
fn job_selector(obj: &mut Value) {
    if obj["spec"]["manualSelector"] == true || !obj["spec"].is_object() {
        return;
    }
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    or(
        &mut obj["spec"],
        "selector",
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = &mut obj["spec"]["template"];
    or(template, "metadata", json!({}));
    or(&mut template["metadata"], "labels", json!({}));
    let labels = &mut template["metadata"]["labels"];
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        or(labels, k, v.clone());
    }
}

fn job_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    if spec["completions"].is_null() && spec["parallelism"].is_null() {
        spec["completions"] = json!(1);
    }
    or(spec, "parallelism", json!(1));
    or(spec, "backoffLimit", json!(6));
    or(spec, "completionMode", json!("NonIndexed"));
    or(spec, "suspend", json!(false));
    or(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    pod_template(&mut spec["template"]);
}

fn pod_template(template: &mut Value) {
    if template.is_object() {
        pod_spec(&mut template["spec"]);
    }
}

/// What the ServiceAccount and DefaultTolerationSeconds admission plugins add to a new Pod.
fn pod_admission(spec: &mut Value, admission: &Admission) {
    if !spec.is_object() {
        return;
    }
    or(spec, "serviceAccountName", json!("default"));
    spec["serviceAccount"] = spec["serviceAccountName"].clone();
    or(spec, "priority", json!(0));
    or(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    or(spec, "tolerations", json!([]));
    for (key, seconds) in [
        (
            "node.kubernetes.io/not-ready",
            admission.not_ready_toleration_seconds,
        ),
        (
            "node.kubernetes.io/unreachable",
            admission.unreachable_toleration_seconds,
        ),
    ] {
        let tolerations = spec["tolerations"].as_array_mut().expect("set just above");
        let tolerated = tolerations.iter().any(|t| {
            (t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
        });
        if !tolerated {
            tolerations.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": seconds
            }));
        }
    }
}

fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    or(spec, "restartPolicy", json!("Always"));
    or(spec, "dnsPolicy", json!("ClusterFirst"));
    or(spec, "terminationGracePeriodSeconds", json!(30));
    or(spec, "securityContext", json!({}));
    or(spec, "schedulerName", json!("default-scheduler"));
    or(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        each(&mut spec[list], container);
    }
    each(&mut spec["volumes"], |v| {
        for (source, field) in [
            ("configMap", "defaultMode"),
            ("secret", "defaultMode"),
            ("downwardAPI", "defaultMode"),
            ("projected", "defaultMode"),
        ] {
            if v[source].is_object() {
                or(&mut v[source], field, json!(420));
            }
        }
        if v["hostPath"].is_object() {
            or(&mut v["hostPath"], "type", json!(""));
        }
    });
}

fn container(c: &mut Value) {
    or(c, "terminationMessagePath", json!("/dev/termination-log"));
    or(c, "terminationMessagePolicy", json!("File"));
    let latest = c["image"].as_str().is_some_and(|image| {
        let last = image.rsplit('/').next().unwrap_or(image);
        !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
    });
    let policy = if latest { "Always" } else { "IfNotPresent" };
    or(c, "imagePullPolicy", json!(policy));
    or(c, "resources", json!({}));
    each(&mut c["ports"], |p| or(p, "protocol", json!("TCP")));
    each(&mut c["env"], |e| {
        if e["valueFrom"]["fieldRef"].is_object() {
            or(&mut e["valueFrom"]["fieldRef"], "apiVersion", json!("v1"));
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = &mut c[probe];
        if !p.is_object() {
            continue;
        }
        or(p, "timeoutSeconds", json!(1));
        or(p, "periodSeconds", json!(10));
        or(p, "successThreshold", json!(1));
        or(p, "failureThreshold", json!(3));
        if p["httpGet"].is_object() {
            or(&mut p["httpGet"], "scheme", json!("HTTP"));
            or(&mut p["httpGet"], "path", json!("/"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    const ADMISSION: Admission = Admission {
        not_ready_toleration_seconds: 30,
        unreachable_toleration_seconds: 30,
    };

    #[test]
    fn a_bare_pod_gets_what_a_real_cluster_fills_in() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "kindling/whoami", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "app:1.0", "imagePullPolicy": "Never"}
        ]}});
        apply(find("", "v1", "pods").unwrap(), &mut pod, Some(&ADMISSION));
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "Never");
        // Defaulting twice changes nothing.
        let again = {
            let mut p = pod.clone();
            apply(find("", "v1", "pods").unwrap(), &mut p, None);
            p
        };
        assert_eq!(again, pod);
    }

    #[test]
    fn workloads_get_upstream_strategies_and_jobs_their_own_selector() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        apply(
            find("apps", "v1", "deployments").unwrap(),
            &mut d,
            Some(&ADMISSION),
        );
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(d["spec"]["template"]["spec"]["serviceAccountName"].is_null());
        let mut j = json!({"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {"spec": {"restartPolicy": "Never"}}}});
        apply(
            find("batch", "v1", "jobs").unwrap(),
            &mut j,
            Some(&ADMISSION),
        );
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            j["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(
            (
                j["spec"]["completions"].clone(),
                j["spec"]["backoffLimit"].clone()
            ),
            (json!(1), json!(6))
        );
    }
}
