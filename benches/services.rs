//! Services benchmark on a 3-node cluster: the time from a Service or endpoint change (the API
//! call that causes it) to kube-proxy's rules on every node, and the cluster's memory with the
//! course's workloads running (a Deployment behind a NodePort, a StatefulSet behind a headless
//! Service, a DaemonSet, a finished Job, a client pod, cluster DNS).
//!
//! Each node is watched from inside: a loop in the node polls `iptables-save` every 10 ms and
//! prints the clock when the rule appears (or goes); nodes share the host's clock.
//! Run with `cargo build --release && cargo bench --bench services`; prints figures, asserts
//! none.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const CLUSTER: &str = "bench-services";
const TRIALS: usize = 10;
const NODES: [&str; 3] = [
    "bench-services-control-plane",
    "bench-services-worker",
    "bench-services-worker2",
];

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: kindling/whoami}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: kindling/toolbox, command: [sleep, infinity]}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: kindling/toolbox, command: [sh, -c, "echo done"]}]
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Starts a loop in every node that waits until `grep -q PATTERN` on the nat table succeeds
/// (`present`) or fails, then prints the node's clock.
fn watch_nodes(pattern: &str, present: bool) -> Vec<Child> {
    let test = if present { "" } else { "!" };
    let script = format!(
        "until {test} iptables-save -t nat | grep -q -- '{pattern}'; do sleep 0.01; done; date +%s.%N"
    );
    let children: Vec<Child> = NODES
        .iter()
        .map(|node| {
            Command::new("docker")
                .args(["exec", node, "timeout", "30", "sh", "-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .expect("docker exec")
        })
        .collect();
    // Let every loop run before the change is made.
    std::thread::sleep(Duration::from_millis(800));
    children
}

/// Seconds from `since` until the last node saw the change.
fn slowest_node(children: Vec<Child>, since: f64) -> f64 {
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("watch loop");
            let at: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("the change reached the node within 30 s");
            at - since
        })
        .fold(0.0, f64::max)
}

fn report(what: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "  {what:<44} n={:<3} p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        v.len(),
        percentile(&v, 50.0) * 1000.0,
        percentile(&v, 99.0) * 1000.0,
        v[v.len() - 1] * 1000.0
    );
}

fn main() {
    let kc = fresh_cluster(
        CLUSTER,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n",
    );
    let k = |args: &[&str]| kubectl(&kc, args);
    k(&[
        "create",
        "deployment",
        "web",
        "--image=kindling/whoami",
        "--replicas=3",
    ]);
    k(&[
        "expose",
        "deployment",
        "web",
        "--type=NodePort",
        "--port=80",
    ]);
    k(&["rollout", "status", "deployment/web", "--timeout=180s"]);

    let mut created = Vec::new();
    for i in 0..TRIALS {
        let name = format!("probe-{i}");
        let watches = watch_nodes(&format!("\"default/{name} cluster IP\""), true);
        let t0 = now();
        // Selecting web's pods: kube-proxy writes no nat rules for a Service without endpoints.
        k(&[
            "expose",
            "deployment",
            "web",
            "--name",
            &name,
            "--port=8080",
            "--target-port=80",
        ]);
        created.push(slowest_node(watches, t0));
    }

    let mut removed = Vec::new();
    for _ in 0..TRIALS {
        let pods = k(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
        ]);
        let (pod, ip) = pods
            .lines()
            .find_map(|l| l.split_once(' '))
            .expect("a running web pod");
        let watches = watch_nodes(&format!("--to-destination {ip}:80"), false);
        let t0 = now();
        // Out of the Service's selector: its endpoint goes; the ReplicaSet replaces the pod.
        k(&["label", "pod", pod, "app=gone", "--overwrite"]);
        removed.push(slowest_node(watches, t0));
        k(&["delete", "pod", pod, "--wait=false"]);
        k(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    }

    println!("kube-proxy (iptables mode), from the API call to the rule on all 3 nodes:");
    report("Service created → its cluster IP rule", created);
    report("pod left the selector → its endpoint gone", removed);

    let manifest = std::env::temp_dir().join("kindling-bench-services.yaml");
    std::fs::write(&manifest, WORKLOADS).unwrap();
    k(&["apply", "-f", &manifest.to_string_lossy()]);
    k(&["rollout", "status", "statefulset/db", "--timeout=180s"]);
    k(&["rollout", "status", "daemonset/agent", "--timeout=180s"]);
    k(&[
        "wait",
        "--for=condition=Complete",
        "job/once",
        "--timeout=120s",
    ]);
    let running = k(&[
        "get",
        "pods",
        "-A",
        "--field-selector=status.phase=Running",
        "--no-headers",
    ])
    .lines()
    .count();
    std::thread::sleep(Duration::from_secs(5));
    println!("memory with the workloads ({running} running pods, mirror pods included):");
    let nodes: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    let total = memory(&nodes);
    println!("  {:<28} {total:>6.1} MiB", "total");
    delete_cluster(CLUSTER, &kc);
}
