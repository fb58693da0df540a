//! Tier-2 tests of what clients send: field validation (Strict, Warn, Ignore) with kubectl and
//! raw requests, and a seeded fuzz of the decode and patch paths that must never break the server.

#[path = "common/api.rs"]
mod api;

use std::path::Path;

use api::ApiServer;
use serde_json::{Value, json};

const POD_WITH_UNKNOWN_FIELDS: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  foo: 1
  containers:
  - name: app
    image: registry.local/app:1
    bar: true
"#;

fn manifest(s: &ApiServer, name: &str) -> std::path::PathBuf {
    let path = s.dir.join(format!("{name}.yaml"));
    std::fs::write(&path, POD_WITH_UNKNOWN_FIELDS.replace("NAME", name)).unwrap();
    path
}

fn get(s: &ApiServer, kubectl: &Path, name: &str) -> Value {
    let (ok, out, err) = s.kubectl(kubectl, &["get", "pod", name, "-o", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// One request through kube-rs's client: status, `Warning` headers and body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<String>, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        warnings,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn unknown_fields_are_refused_all_at_once_warned_about_or_dropped_as_asked() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    if let Some(kubectl) = api::kubectl_current() {
        // Strict (current kubectl's default): every unknown field in one error.
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &["create", "-f", manifest(&s, "strict").to_str().unwrap()],
        );
        assert!(!ok);
        assert!(
            err.contains(r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].bar", unknown field "spec.foo""#),
            "{err}"
        );
        // Warn: one warning per field, the object stored without them.
        let (ok, out, err) = s.kubectl(
            &kubectl,
            &[
                "create",
                "--validate=warn",
                "-f",
                manifest(&s, "warned").to_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        assert!(out.contains("pod/warned created"), "{out}");
        assert!(
            err.contains(r#"Warning: unknown field "spec.foo""#),
            "{err}"
        );
        assert!(
            err.contains(r#"Warning: unknown field "spec.containers[0].bar""#),
            "{err}"
        );
        let pod = get(&s, &kubectl, "warned");
        assert!(pod["spec"]["foo"].is_null() && pod["spec"]["containers"][0]["bar"].is_null());
        // Ignore: silently dropped.
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &[
                "create",
                "--validate=false",
                "-f",
                manifest(&s, "ignored").to_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        assert!(!err.contains("Warning"), "{err}");
        assert!(get(&s, &kubectl, "ignored")["spec"]["foo"].is_null());
    }
    if let Some(kubectl) = api::kubectl_120() {
        // kubectl 1.20 sends no fieldValidation: the server's default is Warn, which it prints.
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &[
                "create",
                "--validate=false",
                "-f",
                manifest(&s, "old").to_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        assert!(
            err.contains(r#"Warning: unknown field "spec.foo""#),
            "{err}"
        );
    }

    let client = s.client().await;
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"},"foo":1}"#;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, _, body) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(r#"ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"foo\", duplicate field \"data.a\""#),
        "{body}"
    );
    let (code, warnings, body) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Warn"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        warnings,
        vec![
            r#"299 - "duplicate field \"data.a\"""#,
            r#"299 - "unknown field \"foo\"""#
        ]
    );
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["data"], json!({"a": "2"}));
    assert!(stored.get("foo").is_none());
    // A patch adding an unknown field is warned about too.
    let (code, warnings, _) = send(
        &client,
        "PATCH",
        &format!("{path}/dup"),
        "application/merge-patch+json",
        br#"{"data":{"b":"3"},"spec":{"x":1}}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(warnings, vec![r#"299 - "unknown field \"spec\"""#]);
}
