//! Tier-2 tests of the API contract real clients lean on: workloads and `get all`, the scale
//! subresource, server-side apply, deletion with finalizers and propagation, namespace
//! finalization, access reviews, aggregated discovery, dry runs and helm, driven by real
//! kubectl (current and 1.20), kube-rs and helm against a real etcd.

#[path = "common/api.rs"]
mod api;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api::ApiServer;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn kubectls() -> Vec<PathBuf> {
    [api::kubectl_current(), api::kubectl_120()]
        .into_iter()
        .flatten()
        .collect()
}

/// Run kubectl and insist it succeeded; its stdout.
fn ok(s: &ApiServer, kubectl: &Path, args: &[&str]) -> String {
    let (success, out, err) = s.kubectl(kubectl, args);
    assert!(success, "{kubectl:?} {args:?} failed: {err}\n{out}");
    out
}

fn dynamic(
    client: &kube::Client,
    gvk: (&str, &str, &str),
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2), plural);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn create(api: &Api<DynamicObject>, v: Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

async fn namespace(client: &kube::Client, name: &str) {
    let nss = dynamic(client, ("", "v1", "Namespace"), "namespaces", None);
    create(
        &nss,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

fn template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": format!("registry.local/{app}:1")}]}})
}

fn workload(kind: &str, api_version: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// Wait until `check` holds, or fail naming `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_all_lists_every_workload_with_upstream_columns() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    namespace(&client, "shop").await;
    let sel = json!({"matchLabels": {"app": "web"}});
    let apps =
        |kind: &str, plural: &str| dynamic(&client, ("apps", "v1", kind), plural, Some("shop"));
    create(
        &apps("Deployment", "deployments"),
        workload(
            "Deployment",
            "apps/v1",
            "web",
            json!({"replicas": 3, "selector": sel, "template": template("web")}),
        ),
    )
    .await;
    create(
        &apps("ReplicaSet", "replicasets"),
        workload(
            "ReplicaSet",
            "apps/v1",
            "web-1",
            json!({"replicas": 2, "selector": sel, "template": template("web")}),
        ),
    )
    .await;
    create(&apps("StatefulSet", "statefulsets"), workload("StatefulSet", "apps/v1", "db",
        json!({"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template("db")}))).await;
    create(
        &apps("DaemonSet", "daemonsets"),
        workload(
            "DaemonSet",
            "apps/v1",
            "agent",
            json!({"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}),
        ),
    )
    .await;
    let batch =
        |kind: &str, plural: &str| dynamic(&client, ("batch", "v1", kind), plural, Some("shop"));
    let mut job_template = template("once");
    job_template["spec"]["restartPolicy"] = json!("Never");
    create(
        &batch("Job", "jobs"),
        workload(
            "Job",
            "batch/v1",
            "once",
            json!({"completions": 2, "template": job_template}),
        ),
    )
    .await;
    create(
        &batch("CronJob", "cronjobs"),
        workload(
            "CronJob",
            "batch/v1",
            "nightly",
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": job_template}}}),
        ),
    )
    .await;

    for kubectl in kubectls() {
        let out = ok(&s, &kubectl, &["get", "all", "-n", "shop"]);
        for line in [
            "deployment.apps/web 0/3 0 0",
            "replicaset.apps/web-1 2 0 0",
            "statefulset.apps/db 0/1",
            "daemonset.apps/agent 0 0 0 0 0 <none>",
            "job.batch/once Running 0/2",
            "cronjob.batch/nightly 0 3 * * *",
        ] {
            let squeezed: Vec<String> = out
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            assert!(
                squeezed.iter().any(|l| l.starts_with(line)),
                "{kubectl:?}: no line starting {line:?} in\n{out}"
            );
        }
        let wide = ok(&s, &kubectl, &["get", "deploy", "-n", "shop", "-o", "wide"]);
        let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "AGE",
                "CONTAINERS",
                "IMAGES",
                "SELECTOR"
            ],
            "{wide}"
        );
        assert!(
            wide.contains("registry.local/web:1") && wide.contains("app=web"),
            "{wide}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_changes_replicas_through_the_scale_subresource() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let deploys = dynamic(
        &client,
        ("apps", "v1", "Deployment"),
        "deployments",
        Some("default"),
    );
    create(
        &deploys,
        workload(
            "Deployment",
            "apps/v1",
            "web",
            json!({"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}),
        ),
    )
    .await;
    for (i, kubectl) in kubectls().iter().enumerate() {
        let want = 3 + i as i64;
        let out = ok(
            &s,
            kubectl,
            &["scale", "deployment/web", "--replicas", &want.to_string()],
        );
        assert!(
            out.contains("deployment.apps/web scaled"),
            "{kubectl:?}: {out}"
        );
        let d = deploys.get("web").await.unwrap();
        assert_eq!(d.data["spec"]["replicas"], want, "{kubectl:?}");
    }
    let (code, body) = s
        .request(
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            Some(&s.admin),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let scale: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["selector"], "app=web");
    let bad = br#"{"spec":{"replicas":-1}}"#.to_vec();
    let (code, body) = s
        .request(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            Some(&s.admin),
            Some(("application/merge-patch+json", bad)),
        )
        .await
        .unwrap();
    assert_eq!(code, 422, "{body}");
}

const APPLIED: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web, LABEL}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: IMAGE
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_server_side_twice_updates_the_object_in_place() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let Some(kubectl) = api::kubectl_current() else {
        return;
    };
    let client = s.client().await;
    let deploys = dynamic(
        &client,
        ("apps", "v1", "Deployment"),
        "deployments",
        Some("default"),
    );
    let file = s.dir.join("web.yaml");
    std::fs::write(
        &file,
        APPLIED
            .replace("LABEL", "tier: front")
            .replace("IMAGE", "nginx:1"),
    )
    .unwrap();
    let out = ok(
        &s,
        &kubectl,
        &["apply", "--server-side", "-f", file.to_str().unwrap()],
    );
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let first = deploys.get("web").await.unwrap();
    // A second apply with a new image and without the tier label changes the same object.
    std::fs::write(
        &file,
        APPLIED.replace(", LABEL", "").replace("IMAGE", "nginx:2"),
    )
    .unwrap();
    let out = ok(
        &s,
        &kubectl,
        &["apply", "--server-side", "-f", file.to_str().unwrap()],
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let second = deploys.get("web").await.unwrap();
    assert_eq!(first.metadata.uid, second.metadata.uid);
    assert_eq!(
        second.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    let labels = second.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert!(!labels.contains_key("tier"), "{labels:?}");
    let managed = second.metadata.managed_fields.clone().unwrap_or_default();
    let kubectl_entry = managed
        .iter()
        .find(|m| m.manager.as_deref() == Some("kubectl"))
        .expect("kubectl owns fields");
    assert_eq!(kubectl_entry.operation.as_deref(), Some("Apply"));

    // Another applier changing the same field conflicts, as kubectl reports it.
    let mut other = APPLIED.replace(", LABEL", "").replace("IMAGE", "nginx:2");
    other = other.replace("replicas: 2", "replicas: 5");
    std::fs::write(&file, other).unwrap();
    let (success, _, err) = s.kubectl(
        &kubectl,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "robot",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert!(!success);
    assert!(
        err.contains("conflict with \"kubectl\"") && err.contains(".spec.replicas"),
        "{err}"
    );
    ok(
        &s,
        &kubectl,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "robot",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        deploys.get("web").await.unwrap().data["spec"]["replicas"],
        5
    );

    // kube-rs speaks the same apply.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}});
    cms.patch(
        "settings",
        &PatchParams::apply("kube-rs"),
        &Patch::Apply(&cm),
    )
    .await
    .unwrap();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "3"}});
    let applied = cms
        .patch(
            "settings",
            &PatchParams::apply("kube-rs"),
            &Patch::Apply(&cm),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.data.unwrap(),
        [("a".to_string(), "3".to_string())].into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_an_object_until_the_last_one_is_removed() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "held",
        "finalizers": ["example.com/a", "example.com/b"]}}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/b"]}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());

    // Preconditions and dry runs: a wrong uid is a Conflict, a dry run deletes nothing.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "kept"}})).unwrap(),
    )
    .await
    .unwrap();
    let err = cms
        .delete(
            "kept",
            &DeleteParams::default().preconditions(kube::api::Preconditions {
                uid: Some("not-the-uid".into()),
                resource_version: None,
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.starts_with("Precondition failed: UID")),
        "{err}"
    );
    cms.delete("kept", &DeleteParams::default().dry_run())
        .await
        .unwrap();
    assert!(cms.get_opt("kept").await.unwrap().is_some());
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let ghost: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ghost"}, "data": {"x": "1"}})).unwrap();
    let answered = cms.create(&pp, &ghost).await.unwrap();
    assert_eq!(answered.data.unwrap()["x"], "1");
    assert!(cms.get_opt("ghost").await.unwrap().is_none());
    if let Some(kubectl) = api::kubectl_current() {
        let out = ok(
            &s,
            &kubectl,
            &[
                "create",
                "configmap",
                "phantom",
                "--dry-run=server",
                "-o",
                "name",
            ],
        );
        assert_eq!(out.trim(), "configmap/phantom");
        assert!(cms.get_opt("phantom").await.unwrap().is_none());
    }
}

/// A ReplicaSet and two pods it owns, made by hand (there is no controller-manager yet).
async fn replica_set_with_pods(client: &kube::Client, ns: &str, name: &str) -> Vec<String> {
    let rss = dynamic(
        client,
        ("apps", "v1", "ReplicaSet"),
        "replicasets",
        Some(ns),
    );
    let rs = create(
        &rss,
        workload(
            "ReplicaSet",
            "apps/v1",
            name,
            json!({"replicas": 2,
        "selector": {"matchLabels": {"app": name}}, "template": template(name)}),
        ),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut names = Vec::new();
    for i in 0..2 {
        let pod_name = format!("{name}-{i}");
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": pod_name, "labels": {"app": name},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name,
                "uid": rs.metadata.uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": template(name)["spec"]}),
        )
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        names.push(pod_name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_owner_cascades_to_its_dependents_by_each_propagation_policy() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let Some(kubectl) = api::kubectl_current() else {
        return;
    };
    let client = s.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Foreground: kubectl returns once the pods went first and the ReplicaSet after them.
    let owned = replica_set_with_pods(&client, "default", "fg").await;
    ok(
        &s,
        &kubectl,
        &["delete", "rs", "fg", "--cascade=foreground"],
    );
    for p in &owned {
        assert!(
            pods.get_opt(p).await.unwrap().is_none(),
            "{p} outlived its foreground-deleted owner"
        );
    }

    // Background (the default): the owner goes at once, the pods right after.
    let owned = replica_set_with_pods(&client, "default", "bg").await;
    ok(&s, &kubectl, &["delete", "rs", "bg"]);
    eventually("background-collected pods", || async {
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|p| !owned.contains(p.metadata.name.as_ref().unwrap()))
    })
    .await;

    // Orphan: the pods stay and no longer name an owner.
    let owned = replica_set_with_pods(&client, "default", "or").await;
    ok(&s, &kubectl, &["delete", "rs", "or", "--cascade=orphan"]);
    for p in &owned {
        let pod = pods.get(p).await.unwrap();
        assert!(
            pod.metadata.owner_references.unwrap_or_default().is_empty(),
            "{p} still has an owner"
        );
    }
    let rss = dynamic(
        &client,
        ("apps", "v1", "ReplicaSet"),
        "replicasets",
        Some("default"),
    );
    assert!(rss.get_opt("or").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_namespace_waits_until_everything_inside_is_gone() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let Some(kubectl) = api::kubectl_current() else {
        return;
    };
    let client = s.client().await;
    namespace(&client, "lab").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "lab");
    for name in ["a", "b"] {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    }
    replica_set_with_pods(&client, "lab", "web").await;
    let out = ok(&s, &kubectl, &["delete", "ns", "lab"]);
    assert!(out.contains("namespace \"lab\" deleted"), "{out}");
    let (found, _, err) = s.kubectl(&kubectl, &["get", "ns", "lab"]);
    assert!(
        !found && err.contains("namespaces \"lab\" not found"),
        "{err}"
    );
    let all_cms: Api<ConfigMap> = Api::all(client.clone());
    let left: Vec<_> = all_cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.metadata.namespace.as_deref() == Some("lab"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let all_pods: Api<Pod> = Api::all(client.clone());
    assert!(
        all_pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_namespace_refuses_new_content_and_shows_terminating() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    namespace(&client, "held").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "held");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "pinned", "finalizers": ["example.com/keep"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let nss = dynamic(&client, ("", "v1", "Namespace"), "namespaces", None);
    nss.delete("held", &DeleteParams::default()).await.unwrap();
    let ns = nss.get("held").await.unwrap();
    assert_eq!(ns.data["status"]["phase"], "Terminating");
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated")),
        "{err}"
    );
    // Releasing the last finalizer inside lets the namespace go.
    cms.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the namespace to go", || async {
        nss.get_opt("held").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_says_yes_to_admins_and_no_to_ordinary_users() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let student = s.kubeconfig_as("jane", &["students"]);
    for kubectl in kubectls() {
        let (yes, out, err) = s.kubectl(&kubectl, &["auth", "can-i", "create", "pods"]);
        assert!(yes, "{kubectl:?}: {out}{err}");
        assert_eq!(out.trim(), "yes");
        let (yes, out, _) =
            s.kubectl_with(&kubectl, &student, &["auth", "can-i", "create", "pods"]);
        assert!(!yes);
        assert_eq!(out.trim(), "no", "{kubectl:?}");
        let (_, out, _) = s.kubectl_with(
            &kubectl,
            &student,
            &[
                "auth",
                "can-i",
                "create",
                "selfsubjectaccessreviews.authorization.k8s.io",
            ],
        );
        assert_eq!(out.trim(), "yes", "{kubectl:?}");
    }
    if let Some(kubectl) = api::kubectl_current() {
        let out = ok(&s, &kubectl, &["auth", "can-i", "--list"]);
        assert!(out.contains("*.*"), "{out}");
    }
}

/// GET `path` with an Accept header; status, Content-Type and body.
async fn get_with_accept(client: &kube::Client, path: &str, accept: &str) -> (u16, String, Value) {
    let req = hyper::Request::builder()
        .uri(path)
        .header("accept", accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_discovery_answers_client_go_and_kubectl_api_resources_reads_it() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (code, ct, doc) = get_with_accept(&client, "/apis", accept).await;
    assert_eq!(code, 200);
    assert_eq!(
        ct,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(doc["kind"], "APIGroupDiscoveryList");
    let apps = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    let scale = deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["subresource"] == "scale")
        .unwrap();
    assert_eq!(
        scale["responseKind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    let (_, ct, doc) = get_with_accept(
        &client,
        "/api",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    )
    .await;
    assert_eq!(
        ct,
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    );
    assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let (_, ct, doc) = get_with_accept(&client, "/api", "application/json").await;
    assert_eq!(ct, "application/json");
    assert_eq!(doc["kind"], "APIVersions");

    for kubectl in kubectls() {
        let out = ok(&s, &kubectl, &["api-resources"]);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        for want in [
            vec!["deployments", "deploy", "apps/v1", "true", "Deployment"],
            vec!["cronjobs", "cj", "batch/v1", "true", "CronJob"],
            vec![
                "clusterroles",
                "rbac.authorization.k8s.io/v1",
                "false",
                "ClusterRole",
            ],
            vec![
                "selfsubjectaccessreviews",
                "authorization.k8s.io/v1",
                "false",
                "SelfSubjectAccessReview",
            ],
        ] {
            assert!(rows.contains(&want), "{kubectl:?}: no {want:?} in\n{out}");
        }
    }
    // `--categories` arrived after 1.20.
    if let Some(kubectl) = api::kubectl_current() {
        let out = ok(
            &s,
            &kubectl,
            &["api-resources", "--categories", "all", "-o", "name"],
        );
        for r in [
            "pods",
            "services",
            "deployments.apps",
            "daemonsets.apps",
            "jobs.batch",
            "cronjobs.batch",
        ] {
            assert!(
                out.lines().any(|l| l == r),
                "{r} not in category all:\n{out}"
            );
        }
    }
}

const CHART: &str = "apiVersion: v2\nname: tiny\nversion: 0.1.0\n";
const CHART_CM: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
"#;
const CHART_DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.local/web:1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_a_local_chart() {
    let helm = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/helm");
    let Some(helm) = api::require("helm", Some(helm).filter(|h| h.is_file())) else {
        return;
    };
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let chart = s.dir.join("tiny");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), CHART).unwrap();
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n").unwrap();
    std::fs::write(chart.join("templates/cm.yaml"), CHART_CM).unwrap();
    std::fs::write(chart.join("templates/deploy.yaml"), CHART_DEPLOY).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&helm)
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .env("HELM_CACHE_HOME", s.dir.join("helm-cache"))
            .env("HELM_CONFIG_HOME", s.dir.join("helm-config"))
            .env("HELM_DATA_HOME", s.dir.join("helm-data"))
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "helm {args:?} failed:\n{text}");
        text
    };
    let chart_dir = chart.to_str().unwrap();
    let out = run(&["install", "demo", chart_dir]);
    assert!(out.contains("STATUS: deployed"), "{out}");
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        cms.get("demo-settings").await.unwrap().data.unwrap()["greeting"],
        "hello"
    );
    run(&["upgrade", "demo", chart_dir, "--set", "greeting=hi"]);
    assert_eq!(
        cms.get("demo-settings").await.unwrap().data.unwrap()["greeting"],
        "hi"
    );
    let out = run(&["list"]);
    assert!(out.contains("demo"), "{out}");
    run(&["uninstall", "demo"]);
    eventually("the chart's objects to go", || async {
        cms.get_opt("demo-settings").await.unwrap().is_none()
    })
    .await;
    let deploys = dynamic(
        &client,
        ("apps", "v1", "Deployment"),
        "deployments",
        Some("default"),
    );
    assert!(deploys.get_opt("demo-web").await.unwrap().is_none());
}
