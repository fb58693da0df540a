//! The CLI without a cluster: help that teaches, completions, version, argument errors.

mod common;

use common::kindling;

#[test]
fn help_starts_the_user_off() {
    let r = kindling(&["--help"]).ok("--help");
    assert!(r.stdout.contains("kindling create cluster"), "{}", r.stdout);
    let r = kindling(&["create", "cluster", "--help"]).ok("create cluster --help");
    for flag in [
        "--name",
        "--config",
        "--image",
        "--wait",
        "--retain",
        "--kubeconfig",
    ] {
        assert!(r.stdout.contains(flag), "{flag} missing:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("kind.x-k8s.io/v1alpha4"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let r = kindling(&["completion", shell]).ok("completion");
        assert!(r.stdout.contains("kindling"), "{shell}");
        assert!(r.stdout.contains("create"), "{shell}");
    }
    let r = kindling(&["completion", "tcsh"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("invalid value 'tcsh'"), "{}", r.stderr);
}

#[test]
fn version_names_the_kubernetes_api_it_serves() {
    let r = kindling(&["version"]).ok("version");
    assert!(r.stdout.contains("Kubernetes API v1.33"), "{}", r.stdout);
    let r = kindling(&["version", "-o", "json"]).ok("version -o json");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kubernetes"], "v1.33.0+kindling");
}

#[test]
fn a_bad_wait_duration_is_refused_with_the_accepted_forms() {
    let r = kindling(&["create", "cluster", "--wait", "soon"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("use forms like 30s, 2m"), "{}", r.stderr);
}

#[test]
fn a_missing_config_file_is_named() {
    let r = kindling(&["create", "cluster", "--config", "/nonexistent/kind.yaml"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("could not read cluster config /nonexistent/kind.yaml"),
        "{}",
        r.stderr
    );
}
