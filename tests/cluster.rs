//! End-to-end: real Docker clusters driven by the kindling binary and checked with real kubectl
//! (the current one on the host, Debian's 1.20 inside the node), as a user would type them.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A kind config with the fields users reach for first; `{port}` and `{dir}` are filled in.
const THREE_NODES: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 30080
    hostPort: {port}
  extraMounts:
  - hostPath: {dir}
    containerPath: /host-data
    readOnly: true
- role: worker
  labels:
    tier: frontend
- role: worker
";

/// Rows of `kubectl get nodes -o wide` after the header, split into columns.
fn node_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn wait_all_ready(kubeconfig: &std::path::Path, want: usize, timeout: Duration) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        let r = kubectl(kubeconfig, &["get", "nodes", "--no-headers"]);
        if r.code == 0 {
            let ready = r
                .stdout
                .lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("Ready"))
                .count();
            if ready == want {
                return r.stdout;
            }
        }
        last = format!("{}{}", r.stdout, r.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("nodes not Ready after {timeout:?}:\n{last}");
}

fn docker_and_kubectl() -> bool {
    docker_available() && require("kubectl", kubectl_path().is_some())
}

fn volumes_of(container: &str) -> Vec<String> {
    docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
        container,
    ])
    .ok("docker inspect")
    .stdout
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[test]
fn a_three_node_cluster_is_ready_survives_restart_and_deletes_cleanly() {
    if !docker_and_kubectl() {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-three";
    let (kc, _guard) = ClusterGuard::new(name);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shared = kc.with_file_name("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("hello.txt"), "from the host").unwrap();
    let config = THREE_NODES
        .replace("{port}", &port.to_string())
        .replace("{dir}", &shared.to_string_lossy());
    create_cluster(name, &kc, Some(&config)).ok("create cluster");

    // extraPortMappings and extraMounts reach the node container.
    let mapped = docker(&["port", "e2e-three-control-plane", "30080/tcp"]).ok("docker port");
    assert!(
        mapped.stdout.contains(&format!(":{port}")),
        "{}",
        mapped.stdout
    );
    let file = docker(&[
        "exec",
        "e2e-three-control-plane",
        "cat",
        "/host-data/hello.txt",
    ])
    .ok("extraMount");
    assert_eq!(file.stdout, "from the host");

    // Current kubectl on the host.
    let wide = kubectl(&kc, &["get", "nodes", "-o", "wide"]).ok("kubectl get nodes -o wide");
    let header: Vec<_> = wide
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
        .iter()
        .flat_map(|h| h.split_whitespace())
        .collect::<Vec<_>>(),
        "{}",
        wide.stdout
    );
    let rows = node_rows(&wide.stdout);
    let names: Vec<_> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        [
            "e2e-three-control-plane",
            "e2e-three-worker",
            "e2e-three-worker2"
        ],
        "{}",
        wide.stdout
    );
    for r in &rows {
        assert_eq!(r[1], "Ready", "{}", wide.stdout);
        assert!(r[4].starts_with("v1.33"), "{}", wide.stdout);
        assert!(
            r[5].starts_with("172.") || r[5].contains('.'),
            "{}",
            wide.stdout
        );
        assert_eq!(r[6], "<none>");
        assert!(wide.stdout.contains("Debian GNU/Linux 12 (bookworm)"));
        assert!(
            r.last().unwrap().starts_with("containerd://"),
            "{}",
            wide.stdout
        );
    }
    assert_eq!(rows[0][2], "control-plane");
    assert_eq!(rows[1][2], "<none>");

    let labels = kubectl(&kc, &["get", "node", "e2e-three-worker", "--show-labels"]).ok("labels");
    assert!(labels.stdout.contains("tier=frontend"), "{}", labels.stdout);
    let taints = kubectl(
        &kc,
        &[
            "get",
            "node",
            "e2e-three-control-plane",
            "-o",
            "jsonpath={.spec.taints[*].key}",
        ],
    )
    .ok("taints");
    assert_eq!(taints.stdout, "node-role.kubernetes.io/control-plane");

    let version = kubectl(&kc, &["get", "--raw", "/version"]).ok("get --raw /version");
    assert!(
        version.stdout.contains("\"gitVersion\"") && version.stdout.contains("\"v1.33."),
        "{}",
        version.stdout
    );
    let info = kubectl(&kc, &["cluster-info"]).ok("cluster-info");
    assert!(
        info.stdout.contains("is running at https://127.0.0.1:"),
        "{}",
        info.stdout
    );
    let ns = kubectl(&kc, &["get", "ns"]).ok("get ns");
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            ns.stdout
                .lines()
                .any(|l| l.starts_with(n) && l.contains("Active")),
            "{n} missing:\n{}",
            ns.stdout
        );
    }
    let leases = kubectl(&kc, &["get", "leases", "-n", "kube-node-lease"]).ok("leases");
    assert_eq!(leases.stdout.lines().count(), 4, "{}", leases.stdout);

    // kubectl 1.20 inside the control-plane node, with the admin kubeconfig kubeadm would leave.
    let inside = docker(&[
        "exec",
        "e2e-three-control-plane",
        "kubectl",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "get",
        "nodes",
        "-o",
        "wide",
    ])
    .ok("kubectl 1.20 in the node");
    assert_eq!(node_rows(&inside.stdout).len(), 3, "{}", inside.stdout);
    assert!(inside.stdout.contains("CONTAINER-RUNTIME"));
    let v120 = docker(&[
        "exec",
        "e2e-three-control-plane",
        "kubectl",
        "version",
        "--short",
    ]);
    assert!(
        v120.stdout.contains("Client Version: v1.20"),
        "{}",
        v120.stdout
    );
    assert!(
        v120.stdout.contains("Server Version: v1.33"),
        "{}",
        v120.stdout
    );

    // Components run under their real names.
    let ps = docker(&["exec", "e2e-three-control-plane", "ps", "-eo", "comm"]).ok("ps");
    for c in ["etcd", "kube-apiserver", "kubelet", "containerd"] {
        assert!(
            ps.stdout.lines().any(|l| l.trim() == c),
            "{c} not in:\n{}",
            ps.stdout
        );
    }
    let ps = docker(&["exec", "e2e-three-worker", "ps", "-eo", "comm"]).ok("ps");
    assert!(
        !ps.stdout.lines().any(|l| l.trim() == "etcd"),
        "{}",
        ps.stdout
    );

    // No client certificate: refused with a 401 Status.
    let server = kubectl(
        &kc,
        &[
            "config",
            "view",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    )
    .ok("config view")
    .stdout;
    let anon = run(std::process::Command::new("curl").args([
        "-sk",
        "-o",
        "/dev/stderr",
        "-w",
        "%{http_code}",
        &format!("{server}/api/v1/nodes"),
    ]));
    assert_eq!(anon.stdout, "401", "{}", anon.stderr);
    assert!(
        anon.stderr.contains("\"reason\":\"Unauthorized\""),
        "{}",
        anon.stderr
    );

    // Objects survive `docker restart` of every node, even if Docker hands out new IPs.
    let manifest = kc.with_file_name("survivor.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: survivor\n",
    )
    .unwrap();
    // --validate=false until the API server serves /openapi/v2.
    kubectl(
        &kc,
        &[
            "create",
            "--validate=false",
            "-f",
            &manifest.to_string_lossy(),
        ],
    )
    .ok("create ns");
    let nodes = node_containers(name);
    assert_eq!(nodes.len(), 3);
    let volumes: Vec<String> = nodes.iter().flat_map(|n| volumes_of(n)).collect();
    assert_eq!(volumes.len(), 3, "one /var volume per node");
    let mut restart = vec!["restart"];
    restart.extend(nodes.iter().map(String::as_str));
    docker(&restart).ok("docker restart");
    wait_all_ready(&kc, 3, Duration::from_secs(90));
    kubectl(&kc, &["get", "namespace", "survivor"]).ok("namespace after restart");

    // Delete removes containers, volumes, and the kubeconfig entry.
    kindling(&[
        "delete",
        "cluster",
        "--name",
        name,
        "--kubeconfig",
        &kc.to_string_lossy(),
    ])
    .ok("delete cluster");
    assert!(node_containers(name).is_empty());
    for v in &volumes {
        assert_ne!(
            docker(&["volume", "inspect", v]).code,
            0,
            "volume {v} left behind"
        );
    }
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(!text.contains("kindling-e2e-three"), "{text}");
    // Deleting again is fine.
    kindling(&[
        "delete",
        "cluster",
        "--name",
        name,
        "--kubeconfig",
        &kc.to_string_lossy(),
    ])
    .ok("delete twice");
}

#[test]
fn two_clusters_run_side_by_side_and_deleting_one_keeps_the_other() {
    if !docker_and_kubectl() {
        return;
    }
    let _turn = cluster_lock();
    let kc = temp_kubeconfig("side-by-side");
    let _a = ClusterGuard {
        name: "e2e-a".into(),
        kubeconfig: kc.clone(),
    };
    let _b = ClusterGuard {
        name: "e2e-b".into(),
        kubeconfig: kc.clone(),
    };
    create_cluster("e2e-a", &kc, None).ok("create a");
    create_cluster("e2e-b", &kc, None).ok("create b");
    let clusters = kindling(&["get", "clusters"]).ok("get clusters");
    assert!(clusters.stdout.lines().any(|l| l == "e2e-a"));
    assert!(clusters.stdout.lines().any(|l| l == "e2e-b"));

    // A second create with a taken name is refused and leaves the first alone.
    let again = create_cluster("e2e-a", &kc, None);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(node_containers("e2e-a").len(), 1);

    kindling(&[
        "delete",
        "cluster",
        "--name",
        "e2e-a",
        "--kubeconfig",
        &kc.to_string_lossy(),
    ])
    .ok("delete a");
    let ctx = kubectl(&kc, &["config", "get-contexts", "-o", "name"]).ok("contexts");
    assert_eq!(ctx.stdout.trim(), "kindling-e2e-b");
    let b = kubectl(
        &kc,
        &[
            "--context",
            "kindling-e2e-b",
            "get",
            "nodes",
            "--no-headers",
        ],
    )
    .ok("b still answers");
    assert!(b.stdout.contains("e2e-b-control-plane"), "{}", b.stdout);
    assert!(b.stdout.contains(" Ready "), "{}", b.stdout);
    // get kubeconfig rebuilds the same access from the node alone.
    let printed = kindling(&["get", "kubeconfig", "--name", "e2e-b"]).ok("get kubeconfig");
    let printed_path = kc.with_file_name("printed");
    std::fs::write(&printed_path, printed.stdout).unwrap();
    kubectl(&printed_path, &["get", "nodes"]).ok("printed kubeconfig works");
    // export kubeconfig merges it into another file and switches to it.
    let exported = kc.with_file_name("exported");
    kindling(&[
        "export",
        "kubeconfig",
        "--name",
        "e2e-b",
        "--kubeconfig",
        &exported.to_string_lossy(),
    ])
    .ok("export kubeconfig");
    let current = kubectl(&exported, &["config", "current-context"]).ok("current-context");
    assert_eq!(current.stdout.trim(), "kindling-e2e-b");
    let internal = kindling(&["get", "kubeconfig", "--name", "e2e-b", "--internal"]).ok("internal");
    assert!(
        internal
            .stdout
            .contains("server: https://e2e-b-control-plane:6443"),
        "{}",
        internal.stdout
    );

    kindling(&[
        "delete",
        "clusters",
        "e2e-b",
        "--kubeconfig",
        &kc.to_string_lossy(),
    ])
    .ok("delete b");
    assert!(node_containers("e2e-b").is_empty());
    if docker(&["ps", "-aq", "--filter", "label=dev.kindling.cluster"])
        .stdout
        .trim()
        .is_empty()
    {
        assert_ne!(
            docker(&["network", "inspect", "kindling"]).code,
            0,
            "the network outlived the last cluster"
        );
    }
}

#[test]
fn bad_input_gets_a_one_line_error_and_creates_nothing() {
    if !docker_available() {
        return;
    }
    let _turn = cluster_lock();
    let kc = temp_kubeconfig("bad-input");
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "e2e-bad",
            Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- rol: worker\n"),
            "kind.yaml:4:",
        ),
        (
            "e2e-bad",
            Some("kind: Cluster\napiVersion: v9\n"),
            "apiVersion: must be",
        ),
        ("e2e-bad", Some("nodes: [\n"), "kind.yaml:"),
        ("Bad_Name", None, "is not a valid cluster name"),
    ];
    for (name, config, needle) in cases {
        let r = create_cluster(name, &kc, *config);
        assert_ne!(r.code, 0, "{name} {config:?} was accepted");
        assert!(
            r.stderr.contains(needle),
            "expected {needle:?} in:\n{}",
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(node_containers(name).is_empty());
    }

    // A taken host port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = create_cluster(
        "e2e-port",
        &kc,
        Some(&format!(
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  apiServerPort: {port}\n"
        )),
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&format!("host port {port}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    assert!(node_containers("e2e-port").is_empty());

    // No Docker engine.
    let r = run(std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["get", "clusters"]));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("cannot reach the Docker engine"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn a_cluster_comes_back_ready_when_docker_hands_out_new_ips() {
    if !docker_and_kubectl() {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-newip";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, Some(TWO_NODES)).ok("create");
    let cp = format!("{name}-control-plane");
    let worker = format!("{name}-worker");
    let before = container_ip(&cp);
    docker(&["stop", "-t", "5", &cp, &worker]).ok("stop nodes");
    // Other containers take addresses until one holds the control plane's old one (networks
    // without a configured subnet refuse `--ip`, and Docker hands addresses out in its own order).
    let image = docker(&["inspect", "--format", "{{.Config.Image}}", &cp])
        .ok("image")
        .stdout;
    let mut thieves = Vec::new();
    for i in 0..40 {
        let thief = format!("{name}-ip-thief{i}");
        let _ = docker(&["rm", "-f", &thief]);
        docker(&[
            "run",
            "-d",
            "--name",
            &thief,
            "--network",
            "kindling",
            "--entrypoint",
            "sleep",
            image.trim(),
            "300",
        ])
        .ok("start placeholder");
        let got = container_ip(&thief);
        thieves.push(thief);
        if got == before {
            break;
        }
    }
    docker(&["start", &worker]).ok("start worker");
    docker(&["start", &cp]).ok("start control plane");
    let after = container_ip(&cp);
    let mut rm = vec!["rm", "-f"];
    rm.extend(thieves.iter().map(String::as_str));
    let _ = docker(&rm);
    assert_ne!(
        before, after,
        "the control plane kept its IP; the test proves nothing"
    );
    let nodes = wait_all_ready(&kc, 2, Duration::from_secs(90));
    // Ready may still be the status written before the restart: wait for the kubelet's next
    // status, which carries the new address.
    let start = std::time::Instant::now();
    loop {
        let wide = kubectl(&kc, &["get", "node", &cp, "-o", "wide", "--no-headers"]).ok("wide");
        if wide.stdout.contains(&after) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "InternalIP not updated:\n{}\n{nodes}",
            wide.stdout
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn two_creates_racing_for_one_name_leave_one_cluster_and_one_clear_error() {
    if !docker_available() {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-race";
    let (kc, _guard) = ClusterGuard::new(name);
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args([
                "create",
                "cluster",
                "--name",
                name,
                "--wait",
                "0",
                "--kubeconfig",
            ])
            .arg(&kc)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ok = [a.status.success(), b.status.success()];
    assert_eq!(
        ok.iter().filter(|s| **s).count(),
        1,
        "exactly one create wins: {ok:?}"
    );
    let loser = if ok[0] { &b } else { &a };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(node_containers(name), [format!("{name}-control-plane")]);
}

#[test]
fn export_logs_collects_every_component_log_from_every_node() {
    if !docker_available() {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-logs";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, None).ok("create");
    let dir = kc.with_file_name("logs");
    kindling(&["export", "logs", "--name", name, &dir.to_string_lossy()]).ok("export logs");
    let node_dir = dir.join(format!("{name}-control-plane"));
    for f in [
        "etcd.log",
        "kube-apiserver.log",
        "kubelet.log",
        "containerd.log",
        "init.log",
    ] {
        assert!(
            node_dir.join(f).is_file(),
            "{f} missing in {}",
            node_dir.display()
        );
    }
    let kubelet = std::fs::read_to_string(node_dir.join("kubelet.log")).unwrap();
    assert!(kubelet.contains("registered"), "{kubelet}");
    let nodes = kindling(&["get", "nodes", "--name", name, "-o", "json"]).ok("get nodes -o json");
    let v: serde_json::Value = serde_json::from_str(&nodes.stdout).unwrap();
    assert_eq!(v[0]["name"], format!("{name}-control-plane"));
    assert_eq!(v[0]["role"], "control-plane");
}

#[test]
fn a_failed_create_removes_its_nodes_unless_retained() {
    if !docker_available() {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-fail";
    let (kc, _guard) = ClusterGuard::new(name);
    let kcs = kc.to_string_lossy().into_owned();
    // No node can be Ready within a millisecond: the wait step fails.
    let r = kindling(&[
        "create",
        "cluster",
        "--name",
        name,
        "--wait",
        "1ms",
        "--kubeconfig",
        &kcs,
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("0/1 nodes Ready"), "{}", r.stderr);
    assert!(
        r.stderr.contains("kindling export logs --name e2e-fail"),
        "{}",
        r.stderr
    );
    assert!(node_containers(name).is_empty(), "nodes left behind");
    let text = std::fs::read_to_string(&kc).unwrap_or_default();
    assert!(
        !text.contains("kindling-e2e-fail"),
        "kubeconfig entry left behind:\n{text}"
    );

    let r = kindling(&[
        "create",
        "cluster",
        "--name",
        name,
        "--wait",
        "1ms",
        "--retain",
        "--kubeconfig",
        &kcs,
    ]);
    assert_ne!(r.code, 0);
    assert_eq!(node_containers(name), [format!("{name}-control-plane")]);
}

#[test]
fn nodes_start_with_the_bundled_images_and_load_docker_image_adds_the_users_own() {
    if !docker_available() {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-images";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, None).ok("create");
    let node = format!("{name}-control-plane");
    let images_in_node = || {
        docker(&["exec", &node, "ctr", "-n", "k8s.io", "images", "ls", "-q"])
            .ok("ctr images ls")
            .stdout
    };
    let start = Instant::now();
    while !images_in_node().contains("docker.io/kindling/whoami:latest") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            images_in_node()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let have = images_in_node();
    for i in [
        "docker.io/kindling/pause:3.10",
        "docker.io/kindling/toolbox:latest",
    ] {
        assert!(have.contains(i), "{i} missing:\n{have}");
    }
    // The bundled images are in the host engine too, so students can build FROM them.
    let dir = kc.with_file_name("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM kindling/toolbox\nCMD [\"echo\", \"hi\"]\n",
    )
    .unwrap();
    docker(&["build", "-q", "-t", "e2e-app:dev", &dir.to_string_lossy()]).ok("docker build");
    let first = kindling(&["load", "docker-image", "e2e-app:dev", "--name", name]).ok("load");
    assert!(
        first
            .stdout
            .contains(&format!("{node}: loaded e2e-app:dev")),
        "{}",
        first.stdout
    );
    assert!(images_in_node().contains("docker.io/library/e2e-app:dev"));
    let again = kindling(&["load", "docker-image", "e2e-app:dev", "--name", name]).ok("load again");
    assert!(
        again.stdout.contains("already present, skipped"),
        "{}",
        again.stdout
    );
    let missing = kindling(&["load", "docker-image", "e2e-nope:1", "--name", name]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("is not in the local Docker engine"),
        "{}",
        missing.stderr
    );
    let _ = docker(&["rmi", "e2e-app:dev"]);
}
