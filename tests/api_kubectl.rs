//! Tier-2 conformance by kubectl (current and 1.20) against a real etcd: every resource type
//! goes through what people type — apply twice (patched in place, not recreated), get in every
//! output format, label and field selectors, sorting, all three patch types, describe,
//! explain, server-side apply and delete — and a multi-document manifest is applied, changed
//! and applied again the way a developer iterates.

#[path = "common/api.rs"]
mod api;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api::ApiServer;
use serde_json::Value;

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
    assert!(!success, "{kubectl:?} {args:?} should fail:\n{out}");
    err
}

/// One resource type: its kubectl name, whether it lives in a namespace, and a manifest body
/// (everything after metadata) with `{tier}` where a label value goes.
struct Case {
    resource: &'static str,
    kind: &'static str,
    api_version: &'static str,
    namespaced: bool,
    body: &'static str,
}

const POD_TEMPLATE: &str = "    metadata: {labels: {app: x}}
    spec:
      containers: [{name: c, image: kindling/whoami}]";

fn cases() -> Vec<Case> {
    let c = |resource, kind, api_version, namespaced, body| Case {
        resource,
        kind,
        api_version,
        namespaced,
        body,
    };
    vec![
        c("configmaps", "ConfigMap", "v1", true, "data: {k: v}"),
        c("secrets", "Secret", "v1", true, "data: {k: dg==}"),
        c("serviceaccounts", "ServiceAccount", "v1", true, ""),
        c(
            "pods",
            "Pod",
            "v1",
            true,
            "spec:\n  containers: [{name: c, image: kindling/whoami}]",
        ),
        c(
            "services",
            "Service",
            "v1",
            true,
            "spec:\n  selector: {app: x}\n  ports: [{port: 80}]",
        ),
        c(
            "endpoints",
            "Endpoints",
            "v1",
            true,
            "subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{port: 80, protocol: TCP}]}]",
        ),
        c(
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            "v1",
            true,
            "spec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}",
        ),
        c(
            "persistentvolumes",
            "PersistentVolume",
            "v1",
            false,
            "spec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n  hostPath: {path: /tmp/pv}",
        ),
        c(
            "events",
            "Event",
            "v1",
            true,
            "involvedObject: {kind: Pod, name: p, namespace: NS}\nreason: Tested\nmessage: hello\ntype: Normal",
        ),
        c(
            "deployments",
            "Deployment",
            "apps/v1",
            true,
            "spec:\n  replicas: 1\n  selector: {matchLabels: {app: x}}\n  template:\nTEMPLATE",
        ),
        c(
            "replicasets",
            "ReplicaSet",
            "apps/v1",
            true,
            "spec:\n  replicas: 1\n  selector: {matchLabels: {app: x}}\n  template:\nTEMPLATE",
        ),
        c(
            "statefulsets",
            "StatefulSet",
            "apps/v1",
            true,
            "spec:\n  serviceName: x\n  selector: {matchLabels: {app: x}}\n  template:\nTEMPLATE",
        ),
        c(
            "daemonsets",
            "DaemonSet",
            "apps/v1",
            true,
            "spec:\n  selector: {matchLabels: {app: x}}\n  template:\nTEMPLATE",
        ),
        c(
            "controllerrevisions",
            "ControllerRevision",
            "apps/v1",
            true,
            "revision: 1\ndata: {}",
        ),
        c(
            "jobs",
            "Job",
            "batch/v1",
            true,
            "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: kindling/whoami}]",
        ),
        c(
            "cronjobs",
            "CronJob",
            "batch/v1",
            true,
            "spec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: kindling/whoami}]",
        ),
        c(
            "leases",
            "Lease",
            "coordination.k8s.io/v1",
            true,
            "spec: {holderIdentity: me}",
        ),
        c(
            "endpointslices",
            "EndpointSlice",
            "discovery.k8s.io/v1",
            true,
            "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1]}]\nports: [{name: '', port: 80, protocol: TCP}]",
        ),
        c(
            "roles",
            "Role",
            "rbac.authorization.k8s.io/v1",
            true,
            "rules: [{apiGroups: [''], resources: [pods], verbs: [get]}]",
        ),
        c(
            "rolebindings",
            "RoleBinding",
            "rbac.authorization.k8s.io/v1",
            true,
            "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: u}]",
        ),
        c(
            "clusterroles",
            "ClusterRole",
            "rbac.authorization.k8s.io/v1",
            false,
            "rules: [{apiGroups: [''], resources: [pods], verbs: [get]}]",
        ),
        c(
            "clusterrolebindings",
            "ClusterRoleBinding",
            "rbac.authorization.k8s.io/v1",
            false,
            "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}\nsubjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: u}]",
        ),
        c("namespaces", "Namespace", "v1", false, ""),
    ]
}

fn manifest(case: &Case, name: &str, ns: &str, tier: &str) -> String {
    let namespace = if case.namespaced {
        format!("\n  namespace: {ns}")
    } else {
        String::new()
    };
    let body = case
        .body
        .replace("TEMPLATE", POD_TEMPLATE)
        .replace("NS", ns);
    format!(
        "apiVersion: {}\nkind: {}\nmetadata:\n  name: {name}{namespace}\n  labels: {{tier: {tier}}}\n{body}\n",
        case.api_version, case.kind
    )
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Everything a user does to one resource, with `kubectl`.
fn exercise(s: &ApiServer, kubectl: &Path, case: &Case, ns: &str, tag: &str) {
    let name = format!("{tag}-{}", case.kind.to_lowercase());
    let who = format!("{} {}", kubectl.display(), case.resource);
    let file = s.dir.join(format!("{name}.yaml"));
    let path = file.to_string_lossy().into_owned();
    let mut scope: Vec<&str> = Vec::new();
    if case.namespaced {
        scope.extend(["-n", ns]);
    }
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(scope.iter())
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let args = with(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(s, kubectl, &args)
    };

    // Client-side apply, then again with a change: patched in place, same uid.
    std::fs::write(&file, manifest(case, &name, ns, "one")).unwrap();
    let out = ok(s, kubectl, &["apply", "-f", &path]);
    assert!(out.contains("created"), "{who}: {out}");
    let first = json_of(&run(&["get", case.resource, &name, "-o", "json"]));
    assert_eq!(first["kind"], case.kind, "{who}");
    std::fs::write(&file, manifest(case, &name, ns, "two")).unwrap();
    let out = ok(s, kubectl, &["apply", "-f", &path]);
    assert!(out.contains("configured"), "{who}: {out}");
    let second = json_of(&run(&["get", case.resource, &name, "-o", "json"]));
    assert_eq!(second["metadata"]["uid"], first["metadata"]["uid"], "{who}");
    assert_eq!(second["metadata"]["labels"]["tier"], "two", "{who}");
    let out = ok(s, kubectl, &["apply", "-f", &path]);
    // kubectl 1.20 predates batch/v1 CronJob, so it sends a JSON merge patch, which replaces
    // the (server-defaulted) container list: "configured" on every apply, as upstream.
    let old_cronjob = case.resource == "cronjobs" && kubectl.ends_with("kubectl-1.20");
    let expected = if old_cronjob {
        "configured"
    } else {
        "unchanged"
    };
    assert!(out.contains(expected), "{who}: {out}");

    // Output formats.
    let yaml = run(&["get", case.resource, &name, "-o", "yaml"]);
    assert!(
        yaml.contains(&format!("kind: {}", case.kind)),
        "{who}: {yaml}"
    );
    let wide = run(&["get", case.resource, &name, "-o", "wide"]);
    // Events are listed by when and why, not by name, like upstream's table.
    let header = if case.resource == "events" {
        "LAST SEEN"
    } else {
        "NAME"
    };
    assert!(wide.starts_with(header), "{who}: {wide}");
    assert!(
        case.resource == "events" || wide.contains(&name),
        "{who}: {wide}"
    );
    let jp = run(&[
        "get",
        case.resource,
        &name,
        "-o",
        "jsonpath={.metadata.name}",
    ]);
    assert_eq!(jp, name, "{who}");
    let cc = run(&[
        "get",
        case.resource,
        &name,
        "-o",
        "custom-columns=N:.metadata.name,T:.metadata.labels.tier",
    ]);
    assert_eq!(
        cc.split_whitespace().collect::<Vec<_>>(),
        ["N", "T", &name, "two"],
        "{who}"
    );

    // Selectors and sorting.
    let by_label = run(&["get", case.resource, "-l", "tier=two", "-o", "name"]);
    assert!(
        by_label.contains(&format!("/{name}\n")),
        "{who}: {by_label}"
    );
    let none = run(&["get", case.resource, "-l", "tier notin (two)", "-o", "name"]);
    assert!(!none.contains(&format!("/{name}\n")), "{who}: {none}");
    let by_field = run(&[
        "get",
        case.resource,
        "--field-selector",
        &format!("metadata.name={name}"),
        "-o",
        "name",
    ]);
    assert_eq!(by_field.lines().count(), 1, "{who}: {by_field}");
    run(&["get", case.resource, "--sort-by", ".metadata.name"]);

    // The three patch types kubectl sends.
    run(&[
        "patch",
        case.resource,
        &name,
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    run(&[
        "patch",
        case.resource,
        &name,
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#,
    ]);
    run(&[
        "patch",
        case.resource,
        &name,
        "-p",
        r#"{"metadata":{"labels":{"strategic":"yes"}}}"#,
    ]);
    let labels = run(&[
        "get",
        case.resource,
        &name,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    let labels = json_of(&labels);
    for l in ["merged", "json", "strategic"] {
        assert_eq!(labels[l], "yes", "{who}: {labels}");
    }

    // describe and explain.
    if case.resource == "endpointslices" && kubectl.ends_with("kubectl-1.20") {
        // kubectl 1.20 describes EndpointSlices through discovery.k8s.io/v1beta1, which
        // Kubernetes stopped serving in 1.25: a real cluster answers this same NotFound.
        let args = with(&["describe", case.resource, &name]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(s, kubectl, &args);
        assert!(
            err.contains("the server could not find the requested resource"),
            "{who}: {err}"
        );
    } else {
        let described = run(&["describe", case.resource, &name]);
        assert!(described.contains(&name), "{who}: {described}");
    }
    let explained = ok(s, kubectl, &["explain", case.resource]);
    assert!(
        explained.contains("KIND:") && explained.contains(case.kind),
        "{who}: {explained}"
    );

    // Server-side apply takes over the object the client-side applies made.
    let out = ok(
        s,
        kubectl,
        &["apply", "--server-side", "--force-conflicts", "-f", &path],
    );
    assert!(out.contains("serverside-applied"), "{who}: {out}");

    // Delete, then the NotFound a user sees.
    let out = run(&["delete", case.resource, &name, "--wait=false"]);
    assert!(out.contains("deleted"), "{who}: {out}");
    if case.resource != "namespaces" {
        let args = with(&["get", case.resource, &name]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(s, kubectl, &args);
        assert!(
            err.contains("(NotFound)") && err.contains(&format!("\"{name}\" not found")),
            "{who}: {err}"
        );
    }
}

#[tokio::test]
async fn every_resource_goes_through_what_kubectl_users_type() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    // Each kubectl in its own namespace and thread: the two runs never touch the same object.
    let kubectls = kubectls();
    std::thread::scope(|scope| {
        for (i, kubectl) in kubectls.iter().enumerate() {
            let s = &s;
            scope.spawn(move || {
                let ns = format!("conf{i}");
                ok(s, kubectl, &["create", "namespace", &ns]);
                for case in cases() {
                    exercise(s, kubectl, &case, &ns, &format!("k{i}"));
                }
            });
        }
    });
}

/// `kubectl get -w` prints the object, then a line per change, until stopped.
#[tokio::test]
async fn kubectl_get_watch_prints_changes_as_they_happen() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for kubectl in kubectls() {
        let name = format!("w{}", kubectl.file_name().unwrap().len());
        ok(
            &s,
            &kubectl,
            &["create", "configmap", &name, "--from-literal=a=1"],
        );
        let mut child = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(["get", "configmap", &name, "-w", "-o", "name"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), format!("configmap/{name}"));
        let start = Instant::now();
        ok(&s, &kubectl, &["label", "configmap", &name, "changed=yes"]);
        assert_eq!(lines.next().unwrap().unwrap(), format!("configmap/{name}"));
        assert!(start.elapsed() < Duration::from_secs(5));
        let _ = child.kill();
        let _ = child.wait();
    }
}

const APP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: kindling/whoami
        ports: [{containerPort: 80}]
        env:
        - {name: MODE, value: COLOUR}
        - {name: KEEP, value: same}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
";

#[tokio::test]
async fn a_multi_document_manifest_applies_and_reapplies_in_place() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for kubectl in kubectls() {
        let file = s.dir.join("app.yaml");
        std::fs::write(&file, APP).unwrap();
        let path = file.to_string_lossy().into_owned();
        let out = ok(&s, &kubectl, &["apply", "-f", &path]);
        for line in [
            "namespace/shop",
            "configmap/settings",
            "deployment.apps/web",
            "service/web",
        ] {
            assert!(out.contains(line), "{out}");
        }
        let get = |what: &str| {
            json_of(&ok(
                &s,
                &kubectl,
                &["get", "-n", "shop", what, "-o", "json"],
            ))
        };
        let before = get("deployment/web");
        let ip = get("service/web")["spec"]["clusterIP"].clone();

        std::fs::write(&file, APP.replace("value: COLOUR", "value: MONO")).unwrap();
        let out = ok(&s, &kubectl, &["apply", "-f", &path]);
        assert!(out.contains("deployment.apps/web configured"), "{out}");
        assert!(out.contains("service/web unchanged"), "{out}");
        let after = get("deployment/web");
        assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
        let env = &after["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            env,
            &serde_json::json!([{"name": "MODE", "value": "MONO"}, {"name": "KEEP", "value": "same"}])
        );
        assert_eq!(after["spec"]["replicas"], 2);
        assert_eq!(
            after["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        assert_eq!(get("service/web")["spec"]["clusterIP"], ip);
        // Deleting the namespace first may already take the rest with it, as upstream.
        ok(
            &s,
            &kubectl,
            &["delete", "-f", &path, "--wait=false", "--ignore-not-found"],
        );
        // The namespace must be gone before the next kubectl creates it again.
        let start = Instant::now();
        while s.kubectl(&kubectl, &["get", "namespace", "shop"]).0 {
            assert!(start.elapsed() < Duration::from_secs(30), "shop stays");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Invalid objects: kubectl prints upstream's "is invalid" line with every field cause.
#[tokio::test]
async fn invalid_objects_are_refused_with_every_cause_as_kubectl_prints_them() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let cases = [
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers: [{name: Web, ports: [{containerPort: 70000}]}]\n",
            "The Pod \"bad\" is invalid: \n* spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of",
            &[
                "* spec.containers[0].image: Required value",
                "* spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ][..],
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
            "The Deployment \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`",
            &[][..],
        ),
        (
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bad}\nspec:\n  template:\n    spec: {containers: [{name: c, image: i}]}\n",
            "The Job \"bad\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
            &[][..],
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {'a b': x}\n",
            "The ConfigMap \"bad\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters",
            &[][..],
        ),
    ];
    for kubectl in kubectls() {
        for (manifest, first, more) in cases {
            let file = s.dir.join("bad.yaml");
            std::fs::write(&file, manifest).unwrap();
            let err = fails(&s, &kubectl, &["apply", "-f", &file.to_string_lossy()]);
            assert!(err.contains(first), "{kubectl:?}: {err}");
            for line in more {
                assert!(err.contains(line), "{kubectl:?}: {err}");
            }
        }
    }
}

/// `kubectl autoscale` (autoscaling/v2 from the current kubectl, v1 from 1.20) is refused with
/// what to do instead, and `kubectl get hpa` still answers.
#[tokio::test]
async fn kubectl_autoscale_is_refused_clearly_and_get_hpa_answers() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (i, kubectl) in kubectls().iter().enumerate() {
        let ns = format!("hpa{i}");
        ok(&s, kubectl, &["create", "namespace", &ns]);
        ok(
            &s,
            kubectl,
            &[
                "create",
                "deployment",
                "web",
                "-n",
                &ns,
                "--image=kindling/whoami",
            ],
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "autoscale",
                "deployment",
                "web",
                "-n",
                &ns,
                "--min=2",
                "--max=5",
                "--cpu-percent=80",
            ],
        );
        assert!(
            err.contains("Error from server (Forbidden)")
                && err.contains("Kindling clusters run no metrics server")
                && err.contains("kubectl scale deployment web --replicas=N"),
            "{kubectl:?}: {err}"
        );
        let (success, out, err) = s.kubectl(kubectl, &["get", "hpa", "-n", &ns]);
        assert!(success, "{kubectl:?}: {err}");
        assert!(
            out.is_empty() && err.contains("No resources found"),
            "{kubectl:?}: {out}{err}"
        );
    }
}
