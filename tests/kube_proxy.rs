//! End-to-end: kube-proxy (iptables mode) on a real cluster: the `kubernetes` Service's rules on
//! a node read exactly as upstream's, a pod reaches the API server through its ClusterIP, and a
//! Deployment's Services answer on their ClusterIP, the node's port and a LoadBalancer address.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn services_reach_pods_by_cluster_ip_node_port_and_load_balancer_through_upstreams_chains() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-proxy";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, Some(TWO_NODES)).ok("create");
    let worker = format!("{name}-worker");
    let cp_ip = container_ip(&format!("{name}-control-plane"));

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
        (r.stdout.contains("KUBE-SVC-NPX46M4PTMTKRN6Y")
            && r.stdout.contains("KUBE-SVC-JD5MR3NA4I4DYORP"))
        .then_some(r.stdout)
    });
    assert_eq!(
        services.lines().collect::<Vec<_>>(),
        [
            "-N KUBE-SERVICES",
            "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https cluster IP\" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y",
            // The kube-dns Service's chains, named as on every kubeadm cluster.
            "-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU",
            "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp cluster IP\" -m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4",
            "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"kube-system/kube-dns:metrics cluster IP\" -m tcp --dport 9153 -j KUBE-SVC-JD5MR3NA4I4DYORP",
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

    // A Deployment exposed as a NodePort Service: its ClusterIP from a pod and its NodePort
    // from the host both reach the pods, and traffic is spread over both of them.
    kubectl(
        &kc,
        &[
            "create",
            "deployment",
            "web",
            "--image=kindling/whoami",
            "--replicas=2",
        ],
    )
    .ok("create deployment");
    kubectl(
        &kc,
        &[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--type=NodePort",
        ],
    )
    .ok("expose");
    let (ip, node_port) = wait_for("the Service's endpoints", Duration::from_secs(90), || {
        let eps = kubectl(
            &kc,
            &[
                "get",
                "endpoints",
                "web",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ],
        );
        if eps.stdout.split_whitespace().count() != 2 {
            return None;
        }
        let svc = kubectl(
            &kc,
            &[
                "get",
                "service",
                "web",
                "-o",
                "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
            ],
        );
        let mut f = svc.stdout.split_whitespace();
        Some((f.next()?.to_string(), f.next()?.to_string()))
    });
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 2 && start.elapsed() < Duration::from_secs(60) {
        let r = kubectl(
            &kc,
            &[
                "exec",
                "client",
                "--",
                "curl",
                "-s",
                "-m",
                "5",
                &format!("http://{ip}/"),
            ],
        );
        if let Some(host) = r.stdout.lines().find_map(|l| l.strip_prefix("Hostname: ")) {
            seen.insert(host.to_string());
        }
    }
    assert_eq!(seen.len(), 2, "the ClusterIP reached only {seen:?}");
    let worker_ip = container_ip(&worker);
    let answer = wait_for(
        "the NodePort from the host",
        Duration::from_secs(30),
        || {
            let out = std::process::Command::new("curl")
                .args(["-s", "-m", "5", &format!("http://{worker_ip}:{node_port}/")])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("Hostname: web-").then_some(text)
        },
    );
    assert!(answer.contains("Hostname: web-"), "{answer}");
    let nodeports = docker(&[
        "exec",
        &worker,
        "iptables",
        "-t",
        "nat",
        "-S",
        "KUBE-NODEPORTS",
    ])
    .ok("iptables -S")
    .stdout;
    assert!(
        nodeports.contains(&format!(
            "-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web\" -m tcp --dport {node_port} -j KUBE-EXT-"
        )),
        "{nodeports}"
    );

    // A LoadBalancer Service gets an address on the nodes' Docker network, shown as
    // EXTERNAL-IP, and the host reaches the pods there on the service's port.
    kubectl(
        &kc,
        &[
            "expose",
            "deployment",
            "web",
            "--name=web-lb",
            "--port=8080",
            "--target-port=80",
            "--type=LoadBalancer",
        ],
    )
    .ok("expose as LoadBalancer");
    let lb_ip = wait_for("an EXTERNAL-IP", Duration::from_secs(30), || {
        let r = kubectl(
            &kc,
            &[
                "get",
                "service",
                "web-lb",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ],
        );
        (!r.stdout.is_empty()).then_some(r.stdout)
    });
    let row = kubectl(&kc, &["get", "service", "web-lb"])
        .ok("get svc")
        .stdout;
    assert!(
        row.contains(&lb_ip) && row.contains("LoadBalancer"),
        "{row}"
    );
    let answer = wait_for(
        "the LoadBalancer from the host",
        Duration::from_secs(30),
        || {
            let out = std::process::Command::new("curl")
                .args(["-s", "-m", "5", &format!("http://{lb_ip}:8080/")])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("Hostname: web-").then_some(text)
        },
    );
    assert!(answer.contains("Hostname: web-"), "{answer}");
}
