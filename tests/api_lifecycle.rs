//! Tier-2 tests of object lifecycles: graceful pod deletion (the kubelet's part played by the
//! test) and fields refused on update, with kubectl (current and 1.20) and kube-rs.

#[path = "common/api.rs"]
mod api;

use std::path::{Path, PathBuf};

use api::ApiServer;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn kubectls() -> Vec<PathBuf> {
    [api::kubectl_current(), api::kubectl_120()]
        .into_iter()
        .flatten()
        .collect()
}

fn ok(s: &ApiServer, kubectl: &Path, args: &[&str]) -> String {
    let (success, out, err) = s.kubectl(kubectl, args);
    assert!(success, "{kubectl:?} {args:?} failed: {err}\n{out}");
    out
}

fn fails(s: &ApiServer, kubectl: &Path, args: &[&str]) -> String {
    let (success, out, err) = s.kubectl(kubectl, args);
    assert!(!success, "{kubectl:?} {args:?} should have failed:\n{out}");
    err
}

fn pod(name: &str, node: Option<&str>, grace: Option<i64>) -> Pod {
    let mut spec = json!({"containers": [{"name": "app", "image": "registry.local/app:1"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    if let Some(g) = grace {
        spec["terminationGracePeriodSeconds"] = json!(g);
    }
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

fn seconds_until(ts: &str) -> i64 {
    let t: jiff::Timestamp = ts.parse().unwrap();
    t.duration_since(jiff::Timestamp::now()).as_secs()
}

#[tokio::test]
async fn deleting_a_bound_pod_marks_it_terminating_until_the_kubelet_finishes() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for (i, kubectl) in kubectls().iter().enumerate() {
        let name = format!("bound-{i}");
        pods.create(&PostParams::default(), &pod(&name, Some("n1"), Some(45)))
            .await
            .unwrap();
        ok(&s, kubectl, &["delete", "pod", &name, "--wait=false"]);
        let p = pods.get(&name).await.unwrap();
        assert_eq!(p.metadata.deletion_grace_period_seconds, Some(45));
        let left = seconds_until(
            &p.metadata
                .deletion_timestamp
                .as_ref()
                .unwrap()
                .0
                .to_string(),
        );
        assert!((40..=46).contains(&left), "deadline in {left} s");
        let table = ok(&s, kubectl, &["get", "pod", &name]);
        assert!(table.contains("Terminating"), "{table}");
        // A longer grace period changes nothing; a shorter one moves the deadline closer.
        ok(
            &s,
            kubectl,
            &["delete", "pod", &name, "--wait=false", "--grace-period=100"],
        );
        let p = pods.get(&name).await.unwrap();
        assert_eq!(p.metadata.deletion_grace_period_seconds, Some(45));
        ok(
            &s,
            kubectl,
            &["delete", "pod", &name, "--wait=false", "--grace-period=5"],
        );
        let p = pods.get(&name).await.unwrap();
        assert_eq!(p.metadata.deletion_grace_period_seconds, Some(5));
        let left = seconds_until(
            &p.metadata
                .deletion_timestamp
                .as_ref()
                .unwrap()
                .0
                .to_string(),
        );
        assert!(left <= 6, "deadline in {left} s");
        // The kubelet, once the containers are stopped, deletes with a grace period of 0.
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        assert!(pods.get_opt(&name).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn unbound_finished_and_forced_pods_are_deleted_at_once() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for (i, kubectl) in kubectls().iter().enumerate() {
        let unbound = format!("unbound-{i}");
        pods.create(&PostParams::default(), &pod(&unbound, None, None))
            .await
            .unwrap();
        ok(&s, kubectl, &["delete", "pod", &unbound]);
        assert!(pods.get_opt(&unbound).await.unwrap().is_none());

        let done = format!("done-{i}");
        pods.create(&PostParams::default(), &pod(&done, Some("n1"), None))
            .await
            .unwrap();
        pods.patch_status(
            &done,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .unwrap();
        ok(&s, kubectl, &["delete", "pod", &done]);
        assert!(pods.get_opt(&done).await.unwrap().is_none());

        let forced = format!("forced-{i}");
        pods.create(&PostParams::default(), &pod(&forced, Some("n1"), None))
            .await
            .unwrap();
        let (success, out, err) = s.kubectl(
            kubectl,
            &["delete", "pod", &forced, "--grace-period=0", "--force"],
        );
        assert!(success, "{err}");
        assert!(
            err.contains("Immediate deletion does not wait for confirmation"),
            "{err}"
        );
        assert!(
            out.contains(&format!("pod \"{forced}\" force deleted")),
            "{out}"
        );
        assert!(pods.get_opt(&forced).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn updates_to_immutable_fields_are_refused_with_upstreams_messages() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (i, kubectl) in kubectls().iter().enumerate() {
        let p = format!("p-{i}");
        pods.create(&PostParams::default(), &pod(&p, None, None))
            .await
            .unwrap();
        ok(
            &s,
            kubectl,
            &[
                "set",
                "image",
                &format!("pod/{p}"),
                "app=registry.local/app:2",
            ],
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "patch",
                "pod",
                &p,
                "-p",
                r#"{"spec":{"restartPolicy":"Never"}}"#,
            ],
        );
        assert!(
            err.contains(&format!("The Pod \"{p}\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")),
            "{err}"
        );

        let d = format!("d-{i}");
        ok(
            &s,
            kubectl,
            &["create", "deployment", &d, "--image=registry.local/app:1"],
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "patch",
                "deployment",
                &d,
                "-p",
                // The template follows, so only the selector's immutability is at stake.
                r#"{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}"#,
            ],
        );
        assert!(
            err.contains(&format!("The Deployment \"{d}\" is invalid: spec.selector: Invalid value: v1.LabelSelector{{MatchLabels:map[string]string{{\"app\":\"other\"}}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}: field is immutable")),
            "{err}"
        );
        // A selector changed alone is also no longer the template's: both are reported.
        let err = fails(
            &s,
            kubectl,
            &[
                "patch",
                "deployment",
                &d,
                "-p",
                r#"{"spec":{"selector":{"matchLabels":{"app":"alone"}}}}"#,
            ],
        );
        assert!(
            err.contains("`selector` does not match template `labels`"),
            "{err}"
        );
        assert!(err.contains("field is immutable"), "{err}");
        ok(&s, kubectl, &["scale", "deployment", &d, "--replicas=3"]);

        let j = format!("j-{i}");
        ok(
            &s,
            kubectl,
            &["create", "job", &j, "--image=registry.local/app:1"],
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "set",
                "image",
                &format!("job/{j}"),
                &format!("{j}=registry.local/app:2"),
            ],
        );
        assert!(err.contains("spec.template: Invalid value: "), "{err}");
        assert!(err.contains(": field is immutable"), "{err}");

        let c = format!("c-{i}");
        ok(
            &s,
            kubectl,
            &["create", "configmap", &c, "--from-literal=a=1"],
        );
        ok(
            &s,
            kubectl,
            &["patch", "configmap", &c, "-p", r#"{"immutable":true}"#],
        );
        ok(&s, kubectl, &["label", "configmap", &c, "x=y"]);
        let err = fails(
            &s,
            kubectl,
            &["patch", "configmap", &c, "-p", r#"{"data":{"a":"2"}}"#],
        );
        assert!(
            err.contains(&format!("The ConfigMap \"{c}\" is invalid: data: Forbidden: field is immutable when `immutable` is set")),
            "{err}"
        );
    }
    // A Secret's stringData is stored as base64 data, as upstream does.
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let got = secrets.get("s").await.unwrap();
    assert_eq!(got.data.unwrap()["password"].0, b"hunter2");
    assert!(got.string_data.is_none());
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
}
