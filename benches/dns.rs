//! Cluster DNS benchmark on a 3-node cluster (1 control plane + 2 workers): the create time
//! until DNS answers, then DNS queries per second from one pod on a worker, through the
//! kube-dns Service (kube-proxy's DNAT to the control plane's DNS server) as the pod's own
//! resolver would send them.
//!
//! The load generator is this very binary run with `--load`: it is copied into the pod's node
//! and started inside the pod's network namespace (`nsenter -n`), so its packets leave from
//! the pod's address and take the pod's path; only its files come from the node. Closed loop:
//! N workers each send a query and wait for its answer. A `dig` loop in the pod is measured too,
//! for what a shell script sees (one process per query).
//! Run with `cargo build --release && cargo bench --bench dns`; prints figures, asserts none.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const CLUSTER: &str = "bench-dns";
const SECONDS: u64 = 5;

/// A DNS query for `name` type A with recursion desired.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

/// The load generator: `--load <server:port> <name> <seconds> <workers>`; prints one line.
fn load(args: &[String]) {
    let server: SocketAddr = args[0].parse().expect("server address");
    let name = args[1].clone();
    let secs: u64 = args[2].parse().expect("seconds");
    let workers: usize = args[3].parse().expect("workers");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (stop, ok, failed, latencies, name) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                latencies.clone(),
                name.clone(),
            );
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                sock.connect(server).unwrap();
                sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut buf = [0u8; 1500];
                let mut mine = Vec::new();
                let mut id = (w as u16).wrapping_mul(4099);
                while !stop.load(Ordering::Relaxed) {
                    id = id.wrapping_add(1);
                    let q = query(id, &name);
                    let t = Instant::now();
                    sock.send(&q).unwrap();
                    let answered = loop {
                        match sock.recv(&mut buf) {
                            // NOERROR with at least one answer, for this query's ID.
                            Ok(n) if n > 12 && buf[..2] == q[..2] => {
                                break buf[3] & 0x0f == 0 && buf[7] > 0;
                            }
                            Ok(_) => continue,
                            Err(_) => break false,
                        }
                    };
                    if answered {
                        ok.fetch_add(1, Ordering::Relaxed);
                        mine.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let n = ok.load(Ordering::Relaxed);
    println!(
        "{:>8.0} qps  p50 {:.2} ms  p99 {:.2} ms  ({n} answered, {} failed)",
        n as f64 / elapsed,
        if l.is_empty() {
            0.0
        } else {
            percentile(&l, 50.0)
        },
        if l.is_empty() {
            0.0
        } else {
            percentile(&l, 99.0)
        },
        failed.load(Ordering::Relaxed)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--load") {
        return load(&args[i + 1..]);
    }
    let dir = std::env::temp_dir().join("kindling-bench-dns");
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    let cfg = dir.join("three.yaml");
    std::fs::write(
        &cfg,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n",
    )
    .unwrap();
    let bin = kindling();
    let _ = Command::new(&bin)
        .args(["-q", "delete", "cluster", "--name", CLUSTER, "--kubeconfig"])
        .arg(&kc)
        .output();
    let t = Instant::now();
    run(Command::new(&bin)
        .args(["-q", "create", "cluster", "--name", CLUSTER, "--config"])
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(&kc));
    println!(
        "create cluster, 1 control plane + 2 workers, warm image, until every node is Ready and DNS answers: {:.1} s (budget 5 s)",
        t.elapsed().as_secs_f64()
    );

    let k = |args: &[&str]| {
        run(Command::new(kubectl_bin())
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args))
    };
    k(&["create", "deployment", "web", "--image=kindling/whoami"]);
    k(&["expose", "deployment", "web", "--port=80"]);
    k(&[
        "run",
        "client",
        "--image=kindling/toolbox",
        "--image-pull-policy=Never",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    k(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=90s",
    ]);
    let node = k(&["get", "pod", "client", "-o", "jsonpath={.spec.nodeName}"]);
    let container = k(&[
        "get",
        "pod",
        "client",
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]);
    let container = container.trim_start_matches("containerd://");
    let tasks =
        run(Command::new("docker").args(["exec", &node, "ctr", "-n", "k8s.io", "task", "ls"]));
    let pid = tasks
        .lines()
        .find(|l| l.starts_with(container))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("the client container's task")
        .to_string();
    // Not /tmp: a tmpfs in the node, which `docker cp` cannot write into.
    let me = std::env::current_exe().unwrap();
    run(Command::new("docker")
        .arg("cp")
        .arg(&me)
        .arg(format!("{node}:/usr/local/bin/dns-load")));

    let cp = format!("{CLUSTER}-control-plane");
    println!("DNS queries from one pod on {node} to 10.96.0.10 (UDP, A, {SECONDS} s each):");
    for (what, name, workers) in [
        (
            "cluster name, 1 in flight ",
            "web.default.svc.cluster.local",
            "1",
        ),
        (
            "cluster name, 16 in flight",
            "web.default.svc.cluster.local",
            "16",
        ),
        ("forwarded node name, 16   ", cp.as_str(), "16"),
    ] {
        let line = run(Command::new("docker").args([
            "exec",
            &node,
            "nsenter",
            "-t",
            &pid,
            "-n",
            "/usr/local/bin/dns-load",
            "--load",
            "10.96.0.10:53",
            name,
            &SECONDS.to_string(),
            workers,
        ]));
        println!("  {what}: {line}");
    }
    let n = 200;
    let t = Instant::now();
    k(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        &format!(
            "for i in $(seq {n}); do dig +short web.default.svc.cluster.local >/dev/null || exit 1; done"
        ),
    ]);
    println!(
        "  dig loop in the pod (one process per query): {:.0} qps",
        n as f64 / t.elapsed().as_secs_f64()
    );
    run(Command::new(&bin)
        .args(["-q", "delete", "cluster", "--name", CLUSTER, "--kubeconfig"])
        .arg(&kc));
}
