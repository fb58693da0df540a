//! Tier-2 tests of types served at more than one version: batch/v1beta1 CronJob (what kubectl
//! 1.20's `create cronjob` sends) shares batch/v1's store.

#[path = "common/api.rs"]
mod api;

use api::ApiServer;
use serde_json::Value;

#[tokio::test]
async fn kubectl_120_creates_cronjobs_through_v1beta1_and_both_versions_read_them() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let Some(old) = api::kubectl_120() else {
        return;
    };
    let (ok, out, err) = s.kubectl(
        &old,
        &[
            "create",
            "cronjob",
            "tick",
            "--image=registry.local/app:1",
            "--schedule=*/5 * * * *",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("cronjob.batch/tick created"), "{out}");
    for (version, path) in [
        (
            "batch/v1",
            "/apis/batch/v1/namespaces/default/cronjobs/tick",
        ),
        (
            "batch/v1beta1",
            "/apis/batch/v1beta1/namespaces/default/cronjobs/tick",
        ),
    ] {
        let (code, body) = s.request("GET", path, Some(&s.admin), None).await.unwrap();
        assert_eq!(code, 200, "{body}");
        let cj: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(cj["apiVersion"], version);
        assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.local/app:1"
        );
    }
    // Discovery prefers batch/v1 and lists batch/v1beta1 with only cronjobs.
    let (_, body) = s
        .request("GET", "/apis/batch", Some(&s.admin), None)
        .await
        .unwrap();
    let group: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(group["preferredVersion"]["version"], "v1");
    let (_, body) = s
        .request("GET", "/apis/batch/v1beta1", Some(&s.admin), None)
        .await
        .unwrap();
    let list: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["cronjobs", "cronjobs/status"]);
    for kubectl in [api::kubectl_current(), Some(old.clone())]
        .into_iter()
        .flatten()
    {
        let (ok, out, err) = s.kubectl(&kubectl, &["get", "cronjobs"]);
        assert!(ok, "{err}");
        assert!(out.contains("tick") && out.contains("*/5 * * * *"), "{out}");
    }
    // kubectl 1.20 validates a v1beta1 manifest against /openapi/v2 before sending it.
    let manifest = s.dir.join("cj.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: job\n            image: registry.local/app:1\n",
    )
    .unwrap();
    let (ok, out, err) = s.kubectl(&old, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("cronjob.batch/nightly created"), "{out}");
    // Deleting through v1beta1 removes it from both versions.
    let (code, _) = s
        .request(
            "DELETE",
            "/apis/batch/v1beta1/namespaces/default/cronjobs/tick",
            Some(&s.admin),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    let (code, _) = s
        .request(
            "GET",
            "/apis/batch/v1/namespaces/default/cronjobs/tick",
            Some(&s.admin),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 404);
}
