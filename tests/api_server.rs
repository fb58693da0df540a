//! Tier-2 tests: the API server against a real etcd, driven by kube-rs and real kubectl
//! binaries (the current one and Debian's 1.20), asserting on what users would see.

#[path = "common/api.rs"]
mod api;

use std::time::Duration;

use api::ApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

fn kubectls() -> Vec<std::path::PathBuf> {
    [api::kubectl_current(), api::kubectl_120()]
        .into_iter()
        .flatten()
        .collect()
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.33.0+kindling", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.6.20",
                "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_system_namespaces_as_active() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for kubectl in kubectls() {
        let (ok, out, err) = s.kubectl(&kubectl, &["get", "ns"]);
        assert!(ok, "{kubectl:?} get ns failed: {err}");
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "STATUS", "AGE"], "{out}");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let line = out
                .lines()
                .find(|l| l.split_whitespace().next() == Some(ns));
            let cols: Vec<&str> = line
                .unwrap_or_else(|| panic!("{ns} missing in\n{out}"))
                .split_whitespace()
                .collect();
            assert_eq!(cols[1], "Active", "{out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_creates_reads_patches_and_deletes_namespaces_configmaps_and_nodes() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "lab"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let err = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err}"
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "lab");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "settings", "labels": {"app": "web"}}, "data": {"a": "1"}}),
    )
    .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let patched = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 2);
    assert_ne!(
        patched.metadata.resource_version.as_deref(),
        Some(rv.as_str())
    );
    // A write based on the stale resourceVersion loses, as optimistic concurrency demands.
    let mut stale = created.clone();
    stale.data = Some([("c".to_string(), "3".to_string())].into());
    let err = cms
        .replace("settings", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err}"
    );
    let listed = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        cms.list(&ListParams::default().labels("app!=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A namespaced create in a namespace that does not exist is refused like upstream.
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let err = missing
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.message == "namespaces \"nowhere\" not found"),
        "{err}"
    );

    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("worker-1"))
        .await
        .unwrap();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}});
    let n = nodes
        .patch_status(
            "worker-1",
            &PatchParams::default(),
            &Patch::Strategic(status),
        )
        .await
        .unwrap();
    let conds = n.status.unwrap().conditions.unwrap();
    assert_eq!((conds.len(), conds[0].status.as_str()), (1, "False"));

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "worker-1"}, "spec": {"holderIdentity": "worker-1"}}),
    )
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        leases
            .get("worker-1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("worker-1")
    );

    cms.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    let err = cms.get("settings").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_objects_added_modified_and_deleted() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();

    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "w"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .expect("the watch stays open");
        match ev {
            WatchEvent::Added(c) => seen.push(("ADDED", c.data.unwrap()["a"].clone())),
            WatchEvent::Modified(c) => seen.push(("MODIFIED", c.data.unwrap()["a"].clone())),
            WatchEvent::Deleted(c) => seen.push(("DELETED", c.data.unwrap()["a"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    let kinds: Vec<(&str, &str)> = seen.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(kinds, [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]);

    // Watching from "0" first replays what exists.
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut from_zero = cms
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), from_zero.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Some(WatchEvent::Added(c)) if c.metadata.name.as_deref() == Some("w")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_nodes_prints_upstream_columns_errors_and_version() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let nodes: Api<Node> = Api::all(s.client().await);
    nodes
        .create(&PostParams::default(), &node("kind-control-plane"))
        .await
        .unwrap();
    for kubectl in kubectls() {
        let (ok, out, err) = s.kubectl(&kubectl, &["get", "nodes", "-o", "wide"]);
        assert!(ok, "{err}");
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME",
                "STATUS",
                "ROLES",
                "AGE",
                "VERSION",
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME"
            ],
            "{kubectl:?}:\n{out}"
        );
        let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            &row[..3],
            ["kind-control-plane", "Ready", "control-plane"],
            "{out}"
        );
        assert_eq!(
            &row[4..7],
            ["v1.33.0+kindling", "172.18.0.2", "<none>"],
            "{out}"
        );
        assert!(
            out.contains("Debian GNU/Linux 12 (bookworm)") && out.contains("containerd://1.6.20"),
            "{out}"
        );

        let (ok, _, err) = s.kubectl(&kubectl, &["get", "nodes", "nope"]);
        assert!(!ok);
        assert!(
            err.contains("Error from server (NotFound): nodes \"nope\" not found"),
            "{err}"
        );

        let (ok, out, err) = s.kubectl(&kubectl, &["get", "--raw", "/version"]);
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["gitVersion"], kindling::consts::KUBE_VERSION);
        assert_eq!(v["minor"], kindling::consts::KUBE_MINOR);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_configmaps_across_namespaces_and_deletes_them() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    for ns in ["default", "kube-system"] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{ns}")}, "data": {"a": "1", "b": "2"}}),
        )
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    for kubectl in kubectls() {
        let (ok, out, err) = s.kubectl(&kubectl, &["get", "cm", "-A"]);
        assert!(ok, "{err}");
        let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAMESPACE", "NAME", "DATA", "AGE"], "{out}");
        let row = out.lines().find(|l| l.contains("cm-kube-system")).unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cols[..3], ["kube-system", "cm-kube-system", "2"], "{out}");
    }
    let kubectl = kubectls().into_iter().next();
    let Some(kubectl) = kubectl else { return };
    // apply validates on the server (found through /openapi/v3), so no --validate=false.
    let manifest = s.dir.join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let (ok, out, err) = s.kubectl(&kubectl, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        ok && out.contains("configmap/applied created"),
        "{out}{err}"
    );
    let (ok, out, err) = s.kubectl(
        &kubectl,
        &["get", "cm", "applied", "-o", "jsonpath={.data.a}"],
    );
    assert!(ok && out == "1", "{out}{err}");
    let (ok, _, err) = s.kubectl(&kubectl, &["delete", "ns", "kube-system"]);
    assert!(
        !ok && err
            .contains("namespaces \"kube-system\" is forbidden: this namespace may not be deleted"),
        "{err}"
    );
    let (ok, out, err) = s.kubectl(&kubectl, &["delete", "cm", "cm-default"]);
    assert!(ok, "{err}");
    assert!(out.contains("configmap \"cm-default\" deleted"), "{out}");
    let (_, _, err) = s.kubectl(&kubectl, &["get", "cm", "cm-default"]);
    assert!(err.contains("configmaps \"cm-default\" not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_cluster_client_certificate_are_unauthorized() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let (code, body) = s
        .request("GET", "/api/v1/namespaces", None, None)
        .await
        .unwrap();
    assert_eq!(code, 401);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    let stranger = kindling::cluster::pki::Ca::generate("other")
        .unwrap()
        .issue_client("kubernetes-admin", &["system:masters"])
        .unwrap();
    let (code, _) = s
        .request("GET", "/api/v1/namespaces", Some(&stranger), None)
        .await
        .unwrap();
    assert_eq!(code, 401);
    // Health and version stay readable by anyone, as upstream's public-info-viewer allows.
    assert_eq!(
        s.request("GET", "/healthz", None, None).await.unwrap(),
        (200, "ok".to_string())
    );
    assert_eq!(
        s.request("GET", "/version", None, None).await.unwrap().0,
        200
    );
    let (code, _) = s
        .request("GET", "/api/v1/namespaces", Some(&s.admin), None)
        .await
        .unwrap();
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_may_list_nodes_but_ordinary_users_are_forbidden() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let Some(kubectl) = kubectls().into_iter().next() else {
        return;
    };
    let kubelet = s.kubeconfig_as("system:node:worker-1", &["system:nodes"]);
    let (ok, _, err) = s.kubectl_with(&kubectl, &kubelet, &["get", "nodes"]);
    assert!(ok, "{err}");
    let jane = s.kubeconfig_as("jane", &["students"]);
    let (ok, _, err) = s.kubectl_with(&kubectl, &jane, &["get", "nodes"]);
    assert!(!ok);
    assert!(
        err.contains("Error from server (Forbidden): nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_malformed_json_and_oversized_bodies_are_refused_like_kubernetes() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let post = |body: Vec<u8>, ct: &'static str| {
        let s = &s;
        async move {
            s.request(
                "POST",
                "/api/v1/namespaces",
                Some(&s.admin),
                Some((ct, body)),
            )
            .await
            .unwrap()
        }
    };
    let (code, body) = post(
        br#"{"metadata":{"name":"Bad_Name"}}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(code, 422, "{body}");
    let st: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name");
    let (code, _) = post(b"{not json".to_vec(), "application/json").await;
    assert_eq!(code, 400);
    let (code, _) = post(vec![b' '; 4 * 1024 * 1024], "application/json").await;
    assert_eq!(code, 413);
    let (code, body) = post(
        b"metadata:\n  name: from-yaml\n".to_vec(),
        "application/yaml",
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = s
        .request("GET", "/api/v1/nodes/x/bogus", Some(&s.admin), None)
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_limit_and_continue_and_filter_by_field() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for i in 0..5 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("p{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let rest = cms
        .list(&ListParams::default().continue_token(&token))
        .await
        .unwrap();
    let names: Vec<String> = first
        .items
        .iter()
        .chain(&rest.items)
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=p3"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let all: Vec<_> = kube::runtime::watcher(cms.clone(), Default::default())
        .take(1)
        .collect::<Vec<_>>()
        .await;
    assert!(all[0].is_ok());
}

/// Run kubectl, failing the test with its output when it fails; stdout.
fn kubectl_ok(s: &ApiServer, kubectl: &std::path::Path, args: &[&str]) -> String {
    let (ok, out, err) = s.kubectl(kubectl, args);
    assert!(ok, "{kubectl:?} {args:?} failed:\n{out}{err}");
    out
}

/// An object as `kubectl get -o json` shows it.
fn kubectl_json(s: &ApiServer, kubectl: &std::path::Path, args: &[&str]) -> Value {
    let args = [args, &["-o", "json"]].concat();
    let out = kubectl_ok(s, kubectl, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

// kubectl's typed commands send Kubernetes protobuf (and never fall back to JSON); these check
// that every field they set arrives, for the current kubectl and Debian's 1.20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_commands_send_protobuf_that_the_server_fully_decodes() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (i, kubectl) in kubectls().iter().enumerate() {
        let ns = format!("proto-{i}");
        let out = kubectl_ok(&s, kubectl, &["create", "namespace", &ns]);
        assert!(out.contains(&format!("namespace/{ns} created")), "{out}");
        let v = kubectl_json(&s, kubectl, &["get", "ns", &ns]);
        assert_eq!(v["status"]["phase"], "Active", "{v}");

        let n = ["-n", ns.as_str()];
        let out = kubectl_ok(
            &s,
            kubectl,
            &[
                &[
                    "create",
                    "configmap",
                    "settings",
                    "--from-literal=color=blue",
                    "--from-literal=size=L",
                ][..],
                &n,
            ]
            .concat(),
        );
        assert!(out.contains("configmap/settings created"), "{out}");
        let v = kubectl_json(&s, kubectl, &[&["get", "cm", "settings"][..], &n].concat());
        assert_eq!(v["data"], json!({"color": "blue", "size": "L"}), "{v}");

        kubectl_ok(
            &s,
            kubectl,
            &[
                &[
                    "create",
                    "secret",
                    "generic",
                    "creds",
                    "--from-literal=password=hunter2",
                ][..],
                &n,
            ]
            .concat(),
        );
        let v = kubectl_json(&s, kubectl, &[&["get", "secret", "creds"][..], &n].concat());
        assert_eq!(v["data"]["password"], "aHVudGVyMg==", "{v}");
        assert_eq!(v["type"], "Opaque", "{v}");

        kubectl_ok(
            &s,
            kubectl,
            &[&["create", "serviceaccount", "robot"][..], &n].concat(),
        );
        let v = kubectl_json(
            &s,
            kubectl,
            &[&["get", "serviceaccount", "robot"][..], &n].concat(),
        );
        assert_eq!(v["metadata"]["name"], "robot", "{v}");

        kubectl_ok(
            &s,
            kubectl,
            &[
                &["create", "service", "clusterip", "db", "--tcp=5432:5433"][..],
                &n,
            ]
            .concat(),
        );
        let v = kubectl_json(&s, kubectl, &[&["get", "service", "db"][..], &n].concat());
        assert_eq!(v["spec"]["ports"][0]["port"], 5432, "{v}");
        assert_eq!(v["spec"]["ports"][0]["targetPort"], 5433, "{v}");
        assert_eq!(v["spec"]["selector"], json!({"app": "db"}), "{v}");

        let out = kubectl_ok(
            &s,
            kubectl,
            &[
                &[
                    "run",
                    "pod1",
                    "--image=busybox",
                    "--labels=a=b",
                    "--env=GREETING=hi",
                ][..],
                &n,
                &["--", "sleep", "3600"],
            ]
            .concat(),
        );
        assert!(out.contains("pod/pod1 created"), "{out}");
        let v = kubectl_json(&s, kubectl, &[&["get", "pod", "pod1"][..], &n].concat());
        assert_eq!(v["metadata"]["labels"], json!({"a": "b"}), "{v}");
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["name"], "pod1", "{v}");
        assert_eq!(c["image"], "busybox", "{v}");
        assert_eq!(c["args"], json!(["sleep", "3600"]), "{v}");
        assert_eq!(
            c["env"],
            json!([{"name": "GREETING", "value": "hi"}]),
            "{v}"
        );

        kubectl_ok(
            &s,
            kubectl,
            &[
                &[
                    "run",
                    "pod2",
                    "--image=busybox",
                    "--restart=Never",
                    "--command",
                ][..],
                &n,
                &["--", "sh", "-c", "echo hi"],
            ]
            .concat(),
        );
        let v = kubectl_json(&s, kubectl, &[&["get", "pod", "pod2"][..], &n].concat());
        assert_eq!(
            v["spec"]["containers"][0]["command"],
            json!(["sh", "-c", "echo hi"]),
            "{v}"
        );
        assert_eq!(v["spec"]["restartPolicy"], "Never", "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_deployments_and_jobs_through_protobuf() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (i, kubectl) in kubectls().iter().enumerate() {
        let ns = format!("work-{i}");
        kubectl_ok(&s, kubectl, &["create", "namespace", &ns]);
        let n = ["-n", ns.as_str()];
        let out = kubectl_ok(
            &s,
            kubectl,
            &[
                &[
                    "create",
                    "deployment",
                    "web",
                    "--image=nginx",
                    "--replicas=2",
                    "--port=80",
                ][..],
                &n,
            ]
            .concat(),
        );
        assert!(out.contains("deployment.apps/web created"), "{out}");
        let v = kubectl_json(
            &s,
            kubectl,
            &[&["get", "deployment", "web"][..], &n].concat(),
        );
        assert_eq!(v["spec"]["replicas"], 2, "{v}");
        assert_eq!(
            v["spec"]["selector"]["matchLabels"],
            json!({"app": "web"}),
            "{v}"
        );
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx", "{v}");
        assert_eq!(c["ports"][0]["containerPort"], 80, "{v}");
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"],
            json!({"app": "web"}),
            "{v}"
        );

        let out = kubectl_ok(
            &s,
            kubectl,
            &[
                &["create", "job", "once", "--image=busybox"][..],
                &n,
                &["--", "echo", "done"],
            ]
            .concat(),
        );
        assert!(out.contains("job.batch/once created"), "{out}");
        let v = kubectl_json(&s, kubectl, &[&["get", "job", "once"][..], &n].concat());
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["command"],
            json!(["echo", "done"]),
            "{v}"
        );
        assert_eq!(pod["restartPolicy"], "Never", "{v}");

        let out = kubectl_ok(
            &s,
            kubectl,
            &[
                &[
                    "expose",
                    "deployment",
                    "web",
                    "--port=8080",
                    "--target-port=80",
                ][..],
                &n,
            ]
            .concat(),
        );
        assert!(out.contains("service/web exposed"), "{out}");
        let v = kubectl_json(&s, kubectl, &[&["get", "service", "web"][..], &n].concat());
        assert_eq!(v["spec"]["ports"][0]["port"], 8080, "{v}");
        assert_eq!(v["spec"]["selector"], json!({"app": "web"}), "{v}");
    }
    // batch/v1 CronJobs came with kubectl 1.21; 1.20 creates batch/v1beta1 ones.
    if let Some(kubectl) = api::kubectl_current() {
        kubectl_ok(
            &s,
            &kubectl,
            &[
                "create",
                "cronjob",
                "tick",
                "--image=busybox",
                "--schedule=*/5 * * * *",
                "--",
                "date",
            ],
        );
        let v = kubectl_json(&s, &kubectl, &["get", "cronjob", "tick"]);
        assert_eq!(v["spec"]["schedule"], "*/5 * * * *", "{v}");
        let pod = &v["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["command"], json!(["date"]), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_bodies_are_bad_requests() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let ct = "application/vnd.kubernetes.protobuf";
    // magic, then runtime.Unknown{typeMeta{"v1","Namespace"}, raw: cut short}
    let mut truncated = b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x20\x0a\x05".to_vec();
    truncated.extend_from_slice(b"ab");
    for (body, expected) in [
        (truncated, "ends in the middle of a field"),
        (b"{\"metadata\":{}}".to_vec(), "magic"),
        (
            b"k8s\0\xff\xff\xff".to_vec(),
            "could not decode the protobuf request body",
        ),
    ] {
        let (code, out) = s
            .request(
                "POST",
                "/api/v1/namespaces",
                Some(&s.admin),
                Some((ct, body)),
            )
            .await
            .unwrap();
        assert_eq!(code, 400, "{out}");
        let st: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(st["reason"], "BadRequest", "{st}");
        assert!(st["message"].as_str().unwrap().contains(expected), "{st}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_rbac_objects_and_asks_can_i_through_protobuf() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (i, kubectl) in kubectls().iter().enumerate() {
        let (role, binding) = (format!("reader-{i}"), format!("alice-reads-{i}"));
        kubectl_ok(
            &s,
            kubectl,
            &[
                "create",
                "role",
                &role,
                "--verb=get",
                "--verb=list",
                "--resource=pods",
            ],
        );
        let v = kubectl_json(&s, kubectl, &["get", "role", &role]);
        // apiGroups [""] checks that empty strings in lists survive.
        assert_eq!(
            v["rules"],
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
            "{v}"
        );
        kubectl_ok(
            &s,
            kubectl,
            &[
                "create",
                "rolebinding",
                &binding,
                &format!("--role={role}"),
                "--user=alice",
            ],
        );
        let v = kubectl_json(&s, kubectl, &["get", "rolebinding", &binding]);
        assert_eq!(
            v["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}),
            "{v}"
        );
        assert_eq!(v["subjects"][0]["name"], "alice", "{v}");
        assert_eq!(v["subjects"][0]["kind"], "User", "{v}");
        // A SelfSubjectAccessReview, sent as protobuf.
        let out = kubectl_ok(&s, kubectl, &["auth", "can-i", "list", "pods"]);
        assert_eq!(out.trim(), "yes");
    }
}
