//! End-to-end: cluster DNS on a real cluster. From a pod on a worker: its resolv.conf, the
//! `kubernetes` and a Deployment's Service by short and full names, curl by Service name, a
//! headless Service's pod addresses and per-pod names, SRV for a named port, ExternalName,
//! NXDOMAIN and NODATA, a node name forwarded to Docker's DNS, dnsPolicy None, and a deleted
//! Service disappearing from DNS.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: whoami, image: kindling/whoami, imagePullPolicy: Never}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: web, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, labels: {app: nginx}}
spec:
  hostname: web-0
  subdomain: nginx
  containers: [{name: whoami, image: kindling/whoami, imagePullPolicy: Never}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: nginx}}
spec:
  hostname: web-1
  subdomain: nginx
  containers: [{name: whoami, image: kindling/whoami, imagePullPolicy: Never}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 0
      containers: [{name: whoami, image: kindling/whoami, imagePullPolicy: Never}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: tb, image: kindling/toolbox, imagePullPolicy: Never, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: custom}
spec:
  terminationGracePeriodSeconds: 0
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.96.0.10]
    searches: [lab.example]
    options: [{name: ndots, value: "2"}]
  containers: [{name: tb, image: kindling/toolbox, imagePullPolicy: Never, command: [sleep, "3600"]}]
"#;

/// Runs `cmd` in pod `pod` and returns its output (failing the test if it fails).
fn in_pod(kc: &Path, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    kubectl(kc, &args)
        .ok(&format!("{cmd:?} in {pod}"))
        .stdout
        .trim()
        .to_string()
}

fn jsonpath(kc: &Path, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let out = format!("jsonpath={path}");
    args.extend(["-o", &out]);
    kubectl(kc, &args).ok("get").stdout.trim().to_string()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn pods_resolve_services_headless_pods_srv_and_forwarded_names_through_kube_dns() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-dns";
    let (kc, _guard) = ClusterGuard::new(name);
    let started = Instant::now();
    create_cluster(name, &kc, Some(TWO_NODES)).ok("create");
    // create waits until DNS answers; the budget is about this figure.
    println!(
        "create cluster (1 control plane + 1 worker) until DNS answers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cp = format!("{name}-control-plane");

    // Where kubeadm and kind put it.
    assert_eq!(
        jsonpath(
            &kc,
            &["svc", "-n", "kube-system", "kube-dns"],
            "{.spec.clusterIP}"
        ),
        "10.96.0.10"
    );
    let ports = jsonpath(
        &kc,
        &["svc", "-n", "kube-system", "kube-dns"],
        "{range .spec.ports[*]}{.name}/{.port}/{.protocol} {end}",
    );
    assert_eq!(ports, "dns/53/UDP dns-tcp/53/TCP metrics/9153/TCP");
    wait_for("the coredns pod Running", Duration::from_secs(30), || {
        let out = kubectl(
            &kc,
            &["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"],
        )
        .stdout;
        out.lines()
            .any(|l| l.starts_with(&format!("coredns-{cp} ")) && l.contains("Running"))
            .then_some(())
    });
    // As on a kubeadm cluster: a coredns Deployment and kube-proxy and flannel DaemonSets,
    // whose pods are the components' mirror pods, read as rolled out.
    let rolled_out = |ns: &str, what: &str, timeout: &str| {
        let t = format!("--timeout={timeout}");
        kubectl(&kc, &["rollout", "status", what, "-n", ns, &t]).ok(what);
    };
    rolled_out("kube-system", "deployment/coredns", "60s");
    rolled_out("kube-system", "daemonset/kube-proxy", "60s");
    rolled_out("kube-flannel", "daemonset/kube-flannel-ds", "60s");
    let table = kubectl(&kc, &["get", "deploy,ds", "-A", "--no-headers"])
        .ok("get deploy,ds")
        .stdout;
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|n| n.ends_with(name))
            })
            .unwrap_or_else(|| panic!("no {name}:\n{table}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // NAMESPACE NAME READY UP-TO-DATE AVAILABLE
    assert_eq!(row("/coredns")[2..5], ["1/1", "1", "1"], "{table}");
    // NAMESPACE NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE: one per node.
    for ds in ["/kube-proxy", "/kube-flannel-ds"] {
        assert_eq!(row(ds)[2..7], ["2", "2", "2", "2", "2"], "{table}");
    }
    // A restart bumps the generation, which the status observes at once (well within the
    // 30 s resync); the pods are the nodes' own, so nothing else changes.
    kubectl(
        &kc,
        &[
            "rollout",
            "restart",
            "deployment/coredns",
            "-n",
            "kube-system",
        ],
    )
    .ok("rollout restart coredns");
    rolled_out("kube-system", "deployment/coredns", "10s");
    // No ReplicaSet or extra pods: the controllers leave these to the nodes.
    let rs = kubectl(&kc, &["get", "rs", "-n", "kube-system", "--no-headers"]).stdout;
    assert!(rs.trim().is_empty(), "{rs}");

    let objects = kc.with_file_name("dns.yaml");
    std::fs::write(&objects, OBJECTS).unwrap();
    kubectl(&kc, &["apply", "-f", &objects.to_string_lossy()]).ok("apply");
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "pod/custom",
            "pod/web-0",
            "pod/web-1",
            "--timeout=90s",
        ],
    )
    .ok("pods Ready");
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=90s",
        ],
    )
    .ok("web Available");

    // The kubelet's resolv.conf for a cluster-first pod (Docker may add the host's search
    // domains after the cluster's).
    let resolv = in_pod(&kc, "client", &["cat", "/etc/resolv.conf"]);
    let lines: Vec<&str> = resolv.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l
                .starts_with("search default.svc.cluster.local svc.cluster.local cluster.local")),
        "{resolv}"
    );
    assert!(lines.contains(&"nameserver 10.96.0.10"), "{resolv}");
    assert!(lines.contains(&"options ndots:5"), "{resolv}");
    assert_eq!(
        in_pod(&kc, "custom", &["cat", "/etc/resolv.conf"]),
        "search lab.example\nnameserver 10.96.0.10\noptions ndots:2"
    );

    // Short names through the search path, as the Kubernetes DNS guide checks.
    let ns = in_pod(&kc, "client", &["nslookup", "kubernetes.default"]);
    assert!(
        ns.contains("Name:\tkubernetes.default.svc.cluster.local")
            && ns.contains("Address: 10.96.0.1"),
        "{ns}"
    );
    let web_ip = jsonpath(&kc, &["svc", "web"], "{.spec.clusterIP}");
    assert_eq!(
        in_pod(
            &kc,
            "client",
            &["dig", "+short", "web.default.svc.cluster.local"]
        ),
        web_ip
    );
    assert_eq!(
        in_pod(&kc, "client", &["dig", "+short", "+search", "web"]),
        web_ip
    );
    let answer = in_pod(&kc, "client", &["curl", "-s", "-m", "5", "web"]);
    assert!(answer.contains("Hostname: web-"), "{answer}");

    // A headless Service answers with its pods, and each pod by its hostname.
    let pod_ip = |p: &str| jsonpath(&kc, &["pod", p], "{.status.podIP}");
    let (ip0, ip1) = (pod_ip("web-0"), pod_ip("web-1"));
    let mut want = vec![ip0.clone(), ip1.clone()];
    want.sort();
    let headless = wait_for(
        "both headless endpoints in DNS",
        Duration::from_secs(20),
        || {
            let got = sorted_lines(&in_pod(
                &kc,
                "client",
                &["dig", "+short", "nginx.default.svc.cluster.local"],
            ));
            (got == want).then_some(got)
        },
    );
    assert_eq!(headless, want);
    assert_eq!(
        in_pod(
            &kc,
            "client",
            &["dig", "+short", "web-0.nginx.default.svc.cluster.local"]
        ),
        ip0
    );
    assert_eq!(
        sorted_lines(&in_pod(
            &kc,
            "client",
            &[
                "dig",
                "+short",
                "SRV",
                "_web._tcp.nginx.default.svc.cluster.local"
            ]
        )),
        [
            "0 50 80 web-0.nginx.default.svc.cluster.local.",
            "0 50 80 web-1.nginx.default.svc.cluster.local."
        ]
    );

    // A StatefulSet's pods by their stable names, once each is Ready (ordered start).
    let db1 = wait_for(
        "StatefulSet pod db-1 Ready",
        Duration::from_secs(90),
        || {
            let ready = jsonpath(
                &kc,
                &["pods", "-l", "app=db"],
                "{range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}",
            );
            ready.contains("db-1=True").then(|| pod_ip("db-1"))
        },
    );
    let db0 = wait_for("db-0 and db-1 in DNS", Duration::from_secs(20), || {
        let got = in_pod(
            &kc,
            "client",
            &["dig", "+short", "db-1.db.default.svc.cluster.local"],
        );
        (got == db1).then(|| pod_ip("db-0"))
    });
    let by_search = in_pod(&kc, "client", &["nslookup", "db-0.db"]);
    assert!(
        by_search.contains("Name:\tdb-0.db.default.svc.cluster.local")
            && by_search.contains(&format!("Address: {db0}")),
        "{by_search}"
    );

    // SRV for a named port of a ClusterIP Service.
    assert_eq!(
        in_pod(
            &kc,
            "client",
            &[
                "dig",
                "+short",
                "SRV",
                "_http._tcp.web.default.svc.cluster.local"
            ]
        ),
        "0 100 80 web.default.svc.cluster.local."
    );

    // Unknown cluster names are NXDOMAIN; AAAA of an existing one is empty but NOERROR.
    let nx = in_pod(&kc, "client", &["dig", "nope.default.svc.cluster.local"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    let aaaa = in_pod(
        &kc,
        "client",
        &["dig", "AAAA", "web.default.svc.cluster.local"],
    );
    assert!(
        aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0,"),
        "{aaaa}"
    );

    // Names outside the cluster go to the node's resolver: Docker's DNS knows the nodes.
    let cp_ip = container_ip(&cp);
    assert_eq!(in_pod(&kc, "client", &["dig", "+short", &cp]), cp_ip);
    let fwd = in_pod(&kc, "client", &["nslookup", &cp]);
    assert!(fwd.contains(&format!("Address: {cp_ip}")), "{fwd}");

    // ExternalName: the CNAME, then its target's address.
    kubectl(
        &kc,
        &[
            "create",
            "service",
            "externalname",
            "ext",
            &format!("--external-name={cp}"),
        ],
    )
    .ok("create externalname");
    let ext = wait_for("the ExternalName in DNS", Duration::from_secs(10), || {
        let out = in_pod(
            &kc,
            "client",
            &["dig", "+short", "ext.default.svc.cluster.local"],
        );
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(ext, format!("{cp}.\n{cp_ip}"));

    // A deleted Service leaves DNS as soon as the watch says so.
    kubectl(&kc, &["delete", "svc", "web"]).ok("delete svc");
    let gone = Instant::now();
    wait_for("web to leave DNS", Duration::from_secs(10), || {
        in_pod(&kc, "client", &["dig", "web.default.svc.cluster.local"])
            .contains("status: NXDOMAIN")
            .then_some(())
    });
    println!(
        "deleted Service gone from DNS after {:.2} s",
        gone.elapsed().as_secs_f64()
    );
}
