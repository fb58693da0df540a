//! End-to-end: `kubectl run` on a three-node cluster is scheduled onto a worker by
//! kube-scheduler, runs, and answers across nodes over the Flannel network; an impossible pod
//! stays Pending with the scheduler's upstream wording.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn kubectl_run_lands_on_a_worker_and_answers_from_another_node() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-sched";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(
        name,
        &kc,
        Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n"),
    )
    .ok("create");

    kubectl(&kc, &["run", "web", "--image=kindling/whoami"]).ok("kubectl run");
    let node = wait_for("web Running", Duration::from_secs(60), || {
        let r = kubectl(
            &kc,
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.status.phase} {.spec.nodeName} {.status.podIP}",
            ],
        );
        let out = r.stdout.trim().to_string();
        out.starts_with("Running ").then_some(out)
    });
    let parts: Vec<&str> = node.split_whitespace().collect();
    let (node, ip) = (parts[1], parts[2]);
    assert!(
        node.starts_with("e2e-sched-worker"),
        "scheduled onto {node}"
    );
    assert!(ip.starts_with("10.244."), "pod IP {ip}");
    let cidr = kubectl(
        &kc,
        &["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"],
    )
    .ok("podCIDR");
    let prefix = cidr.stdout.trim().trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "{ip} is not inside {}", cidr.stdout);

    let events = kubectl(
        &kc,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
        ],
    )
    .ok("events");
    assert!(
        events
            .stdout
            .contains(&format!("Successfully assigned default/web to {node}")),
        "{}",
        events.stdout
    );

    // The control-plane node reaches the pod on a worker through flannel.1 (vxlan).
    let answer = docker(&[
        "exec",
        &format!("{name}-control-plane"),
        "curl",
        "-s",
        "-m",
        "5",
        &format!("http://{ip}/"),
    ])
    .ok("curl across nodes");
    assert!(answer.stdout.contains("Hostname: web"), "{}", answer.stdout);
    assert!(
        answer.stdout.contains(&format!("IP: {ip}")),
        "{}",
        answer.stdout
    );

    // A pod no node can take stays Pending, and says why in upstream's words.
    let manifest = kc.with_file_name("picky.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: picky\nspec:\n  nodeSelector:\n    disk: nvme\n  containers:\n  - name: c\n    image: kindling/whoami\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", &manifest.to_string_lossy()]).ok("apply picky");
    let message = wait_for("FailedScheduling", Duration::from_secs(30), || {
        let r = kubectl(&kc, &["describe", "pod", "picky"]);
        r.stdout.contains("FailedScheduling").then_some(r.stdout)
    });
    assert!(
        message.contains("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector."),
        "{message}"
    );
    let phase = kubectl(
        &kc,
        &["get", "pod", "picky", "-o", "jsonpath={.status.phase}"],
    )
    .ok("phase");
    assert_eq!(phase.stdout, "Pending");
}
