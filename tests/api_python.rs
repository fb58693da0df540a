//! Tier-2: the official Python client (PyPI `kubernetes`, in target/tools/py) against a real
//! etcd and Kindling's API server: typed models decode every answer, watches resume from a
//! resourceVersion, patches, the scale subresource and 422 errors (tests/python/client.py).

#[path = "common/api.rs"]
mod api;

use std::path::Path;
use std::process::Command;

use api::ApiServer;

#[tokio::test]
async fn the_official_python_client_works_unmodified() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/py/bin/python3");
    let ready = python.is_file()
        && Command::new(&python)
            .args(["-c", "import kubernetes"])
            .status()
            .is_ok_and(|s| s.success());
    let Some(python) = api::require(
        "the Python client (scripts/fetch-kubectl.sh installs it)",
        ready.then_some(python),
    ) else {
        return;
    };
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&s.kubeconfig)
        .arg("python-client")
        .output()
        .expect("python runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "the Python client failed:\n{stdout}\n{stderr}"
    );
}
