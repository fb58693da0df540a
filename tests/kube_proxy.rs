//! End-to-end: kube-proxy (iptables mode) on a real cluster: the `kubernetes` Service's rules on
//! a node read exactly as upstream's, and a pod reaches the API server through its ClusterIP.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<String>) -> String {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn pods_reach_the_kubernetes_service_through_upstreams_iptables_chains() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-proxy";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(
        name,
        &kc,
        Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n"),
    )
    .ok("create");
    let worker = format!("{name}-worker");
    let cp_ip = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &format!("{name}-control-plane"),
    ])
    .ok("inspect")
    .stdout
    .trim()
    .to_string();

    // Upstream's chain names (base32 of sha256 of "default/kubernetes:https" + "tcp") and rules.
    let services = wait_for("kube-proxy's rules", Duration::from_secs(60), || {
        let r = docker(&[
            "exec",
            &worker,
            "iptables",
            "-t",
            "nat",
            "-S",
            "KUBE-SERVICES",
        ]);
        r.stdout
            .contains("KUBE-SVC-NPX46M4PTMTKRN6Y")
            .then_some(r.stdout)
    });
    assert_eq!(
        services.lines().collect::<Vec<_>>(),
        [
            "-N KUBE-SERVICES",
            "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https cluster IP\" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y",
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
        ]
    );
    let svc = docker(&[
        "exec",
        &worker,
        "iptables",
        "-t",
        "nat",
        "-S",
        "KUBE-SVC-NPX46M4PTMTKRN6Y",
    ])
    .ok("iptables -S")
    .stdout;
    assert!(
        svc.contains(&format!(
            "-m comment --comment \"default/kubernetes:https -> {cp_ip}:6443\" -j KUBE-SEP-"
        )),
        "{svc}"
    );
    let post = docker(&[
        "exec",
        &worker,
        "iptables",
        "-t",
        "nat",
        "-S",
        "KUBE-POSTROUTING",
    ])
    .ok("iptables -S")
    .stdout;
    assert!(
        post.contains("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"),
        "{post}"
    );

    kubectl(
        &kc,
        &[
            "run",
            "client",
            "--image=kindling/toolbox",
            "--command",
            "--",
            "sleep",
            "3600",
        ],
    )
    .ok("kubectl run");
    wait_for("client Running", Duration::from_secs(60), || {
        let r = kubectl(
            &kc,
            &["get", "pod", "client", "-o", "jsonpath={.status.phase}"],
        );
        (r.stdout == "Running").then_some(r.stdout)
    });
    let version = kubectl(
        &kc,
        &[
            "exec",
            "client",
            "--",
            "curl",
            "-sk",
            "-m",
            "5",
            "https://10.96.0.1/version",
        ],
    )
    .ok("curl the kubernetes Service from a pod")
    .stdout;
    assert!(version.contains("\"gitVersion\""), "{version}");
}
