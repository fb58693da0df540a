//! End-to-end: a Service's traffic policies on a real cluster: `sessionAffinity: ClientIP` keeps a
//! client on one pod, and `externalTrafficPolicy: Local` serves a NodePort only on nodes that run
//! a pod, keeping the client's address.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: kindling/whoami}]}
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: spread}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, nodePort: 30777}]
"#;

/// The `Hostname:` lines of `n` requests to `url` from the pod `client`.
fn hostnames(kc: &std::path::Path, url: &str, n: usize) -> Vec<String> {
    let script = format!("for i in $(seq {n}); do curl -s -m 3 {url}; done");
    kubectl(kc, &["exec", "client", "--", "sh", "-c", &script])
        .ok("curl from the client pod")
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Hostname: "))
        .map(String::from)
        .collect()
}

fn curl_from_host(url: &str) -> Run {
    run(std::process::Command::new("curl").args(["-s", "-m", "3", url]))
}

#[test]
fn client_ip_affinity_sticks_and_local_policy_keeps_node_ports_on_nodes_with_pods() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-svcpolicy";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, Some(TWO_NODES)).ok("create");
    let manifest = kc.with_file_name("web.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    kubectl(&kc, &["apply", "-f", &manifest.to_string_lossy()]).ok("apply");
    kubectl(
        &kc,
        &[
            "run",
            "client",
            "--image=kindling/toolbox",
            "--",
            "sleep",
            "3600",
        ],
    )
    .ok("kubectl run");
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "pod",
            "--all",
            "--timeout=120s",
        ],
    )
    .ok("pods Ready");
    wait_for("3 endpoints", Duration::from_secs(60), || {
        let r = kubectl(
            &kc,
            &[
                "get",
                "endpoints",
                "sticky",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ],
        );
        (r.stdout.split_whitespace().count() == 3).then_some(())
    });

    // Without affinity, 30 requests reach every pod; with it, one client always gets one pod.
    let spread: BTreeSet<String> =
        wait_for("all pods behind spread", Duration::from_secs(60), || {
            let seen: BTreeSet<String> = hostnames(&kc, "http://spread/", 30).into_iter().collect();
            (seen.len() == 3).then_some(seen)
        });
    assert_eq!(spread.len(), 3);
    let sticky = hostnames(&kc, "http://sticky/", 20);
    assert_eq!(sticky.len(), 20, "every request answered: {sticky:?}");
    let distinct: BTreeSet<&String> = sticky.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "ClientIP affinity kept one pod: {sticky:?}"
    );

    // The pods run on the worker only (the control plane is tainted): the NodePort answers there
    // with the host's own address as the client, and is dropped on the control plane.
    let worker_ip = container_ip(&format!("{name}-worker"));
    let cp_ip = container_ip(&format!("{name}-control-plane"));
    let gateway = docker(&[
        "network",
        "inspect",
        "kindling",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ])
    .ok("network inspect")
    .stdout
    .trim()
    .to_string();
    let answer = wait_for(
        "the Local NodePort on the worker",
        Duration::from_secs(30),
        || {
            let r = curl_from_host(&format!("http://{worker_ip}:30777/"));
            r.stdout.contains("Hostname: web-").then_some(r.stdout)
        },
    );
    assert!(
        // busybox httpd prints IPv4 clients as IPv4-mapped IPv6: `[::ffff:172.18.0.1]:48116`.
        answer
            .lines()
            .any(|l| l.starts_with("RemoteAddr:") && l.contains(&format!("{gateway}]:"))),
        "the client's address is kept (gateway {gateway}):\n{answer}"
    );
    let refused = curl_from_host(&format!("http://{cp_ip}:30777/"));
    assert!(
        !refused.stdout.contains("Hostname:"),
        "a node without pods must not serve a Local NodePort:\n{}",
        refused.stdout
    );
    let filter = docker(&[
        "exec",
        &format!("{name}-control-plane"),
        "iptables",
        "-S",
        "KUBE-EXTERNAL-SERVICES",
    ])
    .ok("iptables -S")
    .stdout;
    assert!(
        filter.contains("\"default/local has no local endpoints\"") && filter.contains("-j DROP"),
        "{filter}"
    );
    let nat = docker(&[
        "exec",
        &format!("{name}-worker"),
        "iptables-save",
        "-t",
        "nat",
    ])
    .ok("iptables-save")
    .stdout;
    assert!(
        nat.lines().any(|l| l.starts_with(":KUBE-SVL-")),
        "the worker has the local-endpoints chain:\n{nat}"
    );
}

#[test]
fn an_ipvs_cluster_lists_the_service_with_three_real_servers_or_says_why_it_cannot() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-ipvs";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(
        name,
        &kc,
        Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  kubeProxyMode: ipvs\nnodes:\n- role: control-plane\n- role: worker\n"),
    )
    .ok("create");
    let worker = format!("{name}-worker");
    kubectl(
        &kc,
        &[
            "create",
            "deployment",
            "web",
            "--image=kindling/whoami",
            "--replicas=3",
        ],
    )
    .ok("create deployment");
    kubectl(&kc, &["expose", "deployment", "web", "--port=80"]).ok("expose");
    let cluster_ip = kubectl(
        &kc,
        &["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .ok("get svc")
    .stdout;
    let kernel_has_ipvs = docker(&["exec", &worker, "test", "-e", "/proc/net/ip_vs"]).code == 0;
    if kernel_has_ipvs {
        let table = wait_for("3 real servers in ipvs", Duration::from_secs(90), || {
            let r = docker(&[
                "exec",
                &worker,
                "ipvsadm",
                "-ln",
                "-t",
                &format!("{cluster_ip}:80"),
            ]);
            (r.stdout.matches("Masq").count() == 3).then_some(r.stdout)
        });
        assert!(
            table.contains(&format!("TCP  {cluster_ip}:80 rr")),
            "{table}"
        );
        let dummy = docker(&[
            "exec",
            &worker,
            "ip",
            "-4",
            "addr",
            "show",
            "dev",
            "kube-ipvs0",
        ])
        .ok("kube-ipvs0")
        .stdout;
        assert!(dummy.contains(&format!("{cluster_ip}/32")), "{dummy}");
    } else {
        // This kernel cannot do ipvs (e.g. a VM kernel built without IP_VS): kube-proxy must say
        // so plainly and keep Services working with iptables.
        eprintln!("note: the host kernel has no ip_vs module; checking the iptables fallback");
        let log = wait_for(
            "kube-proxy's fallback notice",
            Duration::from_secs(30),
            || {
                let r = docker(&["exec", &worker, "cat", "/var/log/kindling/kube-proxy.log"]);
                r.stdout
                    .contains("ipvs mode needs the ip_vs kernel module")
                    .then_some(r.stdout)
            },
        );
        assert!(
            log.contains("programming Services with iptables instead"),
            "{log}"
        );
    }
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=120s",
        ],
    )
    .ok("deployment available");
    let answer = wait_for("the Service from the node", Duration::from_secs(60), || {
        let r = docker(&[
            "exec",
            &worker,
            "curl",
            "-s",
            "-m",
            "3",
            &format!("http://{cluster_ip}/"),
        ]);
        r.stdout.contains("Hostname: web-").then_some(r.stdout)
    });
    assert!(answer.contains("Hostname: web-"), "{answer}");
}
