//! Tier-2 tests of OpenAPI: real kubectl (current and Debian's 1.20) validating manifests
//! against `/openapi/v2` (protobuf) and `/openapi/v3`, strict field validation, and `explain`.

#[path = "common/api.rs"]
mod api;

use std::path::{Path, PathBuf};

use api::ApiServer;
use serde_json::Value;

/// (kubectl, is it 1.20); in CI both must exist, elsewhere missing ones are skipped.
fn kubectls() -> Vec<(PathBuf, bool)> {
    let current = api::kubectl_current().map(|k| (k, false));
    let old = api::kubectl_120().map(|k| (k, true));
    current.into_iter().chain(old).collect()
}

fn write(s: &ApiServer, name: &str, text: &str) -> PathBuf {
    let p = s.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn manifest(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  greeting: hello
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 8080
        env:
        - name: MODE
          value: demo
        resources:
          limits:
            cpu: 100m
            memory: 64Mi
"#
    )
}

fn apply(s: &ApiServer, kubectl: &Path, file: &Path) -> (bool, String, String) {
    s.kubectl(kubectl, &["apply", "-f", file.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_multi_document_manifest_with_validation_on() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (kubectl, old) in kubectls() {
        let ns = if old { "demo-old" } else { "demo-new" };
        let file = write(&s, &format!("{ns}.yaml"), &manifest(ns));
        let (ok, out, err) = apply(&s, &kubectl, &file);
        assert!(ok, "{kubectl:?} apply failed: {err}\n{out}");
        for line in [
            format!("namespace/{ns} created"),
            "configmap/settings created".into(),
            "service/web created".into(),
            "deployment.apps/web created".into(),
        ] {
            assert!(out.contains(&line), "{kubectl:?}: no {line:?} in\n{out}");
        }
        // Applying again patches (with fieldValidation=Strict from current kubectl).
        let (ok, out, err) = apply(&s, &kubectl, &file);
        assert!(ok, "{kubectl:?} second apply failed: {err}\n{out}");
        assert!(out.contains("configmap/settings"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_rejected_with_kubectls_messages() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let pod = r#"apiVersion: v1
kind: Pod
metadata:
  name: typo
  namespace: default
spec:
  foo: 1
  containers:
  - name: c
    image: busybox
"#;
    let file = write(&s, "typo.yaml", pod);
    for (kubectl, old) in kubectls() {
        for verb in ["apply", "create"] {
            let (ok, out, err) = s.kubectl(&kubectl, &[verb, "-f", file.to_str().unwrap()]);
            assert!(!ok, "{kubectl:?} {verb} accepted an unknown field: {out}");
            let want = if old {
                // Client-side, from the schemas in /openapi/v2.
                r#"error validating data: ValidationError(Pod.spec): unknown field "foo" in io.k8s.api.core.v1.PodSpec"#
            } else {
                // Server-side, as upstream's strict decoder words it.
                r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.foo""#
            };
            assert!(err.contains(want), "{kubectl:?} {verb}: {err}");
        }
    }
    // Without validation the same manifest goes through, unknown field dropped or kept as is.
    for (kubectl, _) in kubectls() {
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &["create", "--validate=false", "-f", file.to_str().unwrap()],
        );
        assert!(ok || err.contains("already exists"), "{kubectl:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_prints_fields_with_descriptions() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (kubectl, old) in kubectls() {
        let (ok, out, err) = s.kubectl(&kubectl, &["explain", "pod.spec.containers"]);
        assert!(ok, "{kubectl:?} explain failed: {err}");
        assert!(out.contains("FIELDS:"), "{kubectl:?}: {out}");
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with("image\t")
                    || l.trim_start().starts_with("image ")),
            "{kubectl:?}: no image field in\n{out}"
        );
        assert!(out.contains("Container image name"), "{kubectl:?}: {out}");
        if !old {
            let (ok, out, err) = s.kubectl(&kubectl, &["explain", "deployment", "--recursive"]);
            assert!(ok, "{kubectl:?} explain --recursive failed: {err}");
            assert!(out.contains("GROUP:      apps"), "{out}");
            for field in ["replicas", "template", "containers", "image", "strategy"] {
                assert!(out.contains(field), "{field} missing in\n{out}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_are_served_as_json() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let (code, body) = s
        .request("GET", "/openapi/v2", Some(&s.admin), None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let v2: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    let cm = &v2["definitions"]["io.k8s.api.core.v1.ConfigMap"];
    assert_eq!(
        cm["x-kubernetes-group-version-kind"][0]["kind"],
        "ConfigMap"
    );

    let (code, body) = s
        .request("GET", "/openapi/v3", Some(&s.admin), None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let root: Value = serde_json::from_str(&body).unwrap();
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    let (code, body) = s.request("GET", &url, Some(&s.admin), None).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );
    assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"].is_object());

    let (code, _) = s
        .request("GET", "/openapi/v3/apis/nope/v1", Some(&s.admin), None)
        .await
        .unwrap();
    assert_eq!(code, 404);
}
