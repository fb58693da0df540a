//! End-to-end: the course's own Service lab on a 3-node cluster, typed as a student would: a
//! Deployment of whoami exposed as a NodePort answers by name from a pod (spread over its three
//! pods), on a node's port and through an extraPortMapping on localhost from the host, with
//! upstream's statistic rules; a rolling update under 20 requests/s loses none, and `rollout
//! undo` goes back.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

const CLUSTER: &str = "e2e-course";
const NODE_PORT: u16 = 30080;

/// The lab's cluster: the NodePort is mapped to a host port on the control plane, as kind's
/// docs show it.
const CONFIG: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 30080
    hostPort: {port}
- role: worker
- role: worker
";

/// One plain HTTP request; the `Hostname:` that answered, or why none did.
fn get(addr: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .map_err(|e| format!("read: {e}"))?;
    body.lines()
        .find_map(|l| l.strip_prefix("Hostname: "))
        .map(str::to_string)
        .ok_or_else(|| format!("no Hostname in {body:?}"))
}

/// What a steady load saw: the pods that answered and every failed request.
#[derive(Default)]
struct Load {
    answered: usize,
    failures: Vec<String>,
    hosts: BTreeSet<String>,
}

/// Sends 20 requests per second to `addr` until `stop` is set, recording into `load`.
fn steady_load(addr: String, stop: Arc<AtomicBool>, load: Arc<Mutex<Load>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let answer = get(&addr);
            let mut load = load.lock().unwrap();
            match answer {
                Ok(host) => {
                    load.answered += 1;
                    load.hosts.insert(host);
                }
                Err(e) => load
                    .failures
                    .push(format!("{:.2}s: {e}", start.elapsed().as_secs_f64())),
            }
            drop(load);
            n += 1;
            let next = Duration::from_millis(50) * n;
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    })
}

fn rollout(kc: &std::path::Path) {
    kubectl(
        kc,
        &["rollout", "status", "deployment/web", "--timeout=180s"],
    )
    .ok("rollout status");
}

/// The names of the Deployment's pods that are not being deleted.
fn web_pods(kc: &std::path::Path) -> BTreeSet<String> {
    let list: serde_json::Value = serde_json::from_str(
        &kubectl(kc, &["get", "pods", "-l", "app=web", "-o", "json"])
            .ok("get pods")
            .stdout,
    )
    .expect("kubectl prints JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_course_service_lab_works_from_pods_the_host_and_through_a_rolling_update() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let _turn = cluster_lock();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (kc, _guard) = ClusterGuard::new(CLUSTER);
    create_cluster(
        CLUSTER,
        &kc,
        Some(&CONFIG.replace("{port}", &port.to_string())),
    )
    .ok("create cluster");

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
    kubectl(
        &kc,
        &[
            "expose",
            "deployment",
            "web",
            "--type=NodePort",
            "--port=80",
        ],
    )
    .ok("expose");
    // The port the cluster config maps, as the lab asks the student to set it.
    kubectl(
        &kc,
        &[
            "patch",
            "service",
            "web",
            "-p",
            &format!(r#"{{"spec":{{"ports":[{{"port":80,"nodePort":{NODE_PORT}}}]}}}}"#),
        ],
    )
    .ok("patch nodePort");
    rollout(&kc);
    let pods = web_pods(&kc);
    assert_eq!(pods.len(), 3, "{pods:?}");

    // From a pod, by name: 30 requests reach all three pods.
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
    .ok("kubectl run client");
    kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=120s",
        ],
    )
    .ok("client Ready");
    let hosts = wait_for(
        "three pods behind web.default.svc.cluster.local",
        Duration::from_secs(60),
        || {
            let out = kubectl(
                &kc,
                &[
                    "exec",
                    "client",
                    "--",
                    "sh",
                    "-c",
                    "for i in $(seq 30); do curl -s -m 3 web.default.svc.cluster.local; done",
                ],
            )
            .stdout;
            let hosts: BTreeSet<String> = out
                .lines()
                .filter_map(|l| l.strip_prefix("Hostname: "))
                .map(str::to_string)
                .collect();
            (out.matches("Hostname: ").count() == 30 && hosts.len() == 3).then_some(hosts)
        },
    );
    assert_eq!(hosts, pods);

    // From the host: the NodePort on a worker's address, and the mapped port on localhost.
    let worker = format!("{CLUSTER}-worker");
    let on_node = get(&format!("{}:{NODE_PORT}", container_ip(&worker)));
    assert!(
        on_node.as_ref().is_ok_and(|h| pods.contains(h)),
        "{on_node:?}"
    );
    let local = format!("127.0.0.1:{port}");
    let on_localhost = wait_for(
        "the mapped port on localhost",
        Duration::from_secs(30),
        || get(&local).ok(),
    );
    assert!(pods.contains(&on_localhost), "{on_localhost}");

    // iptables-save on a node: the `kubernetes` Service's chain by upstream's name, and web's
    // three endpoints chosen with upstream's probabilities, first 1/3, then 1/2, then the rest.
    // kube-proxy writes `--probability 0.3333333333` and `0.5000000000`; the kernel keeps a 32-bit
    // fraction, so iptables-save prints them back as 0.33333333349 and 0.50000000000, as on any
    // upstream cluster.
    let rules = docker(&["exec", &worker, "iptables-save", "-t", "nat"])
        .ok("iptables-save")
        .stdout;
    assert!(rules.contains(":KUBE-SVC-NPX46M4PTMTKRN6Y - "), "{rules}");
    let web_chain = rules
        .lines()
        .find(|l| {
            l.starts_with("-A KUBE-SERVICES ")
                && l.contains("\"default/web cluster IP\"")
                && l.contains("-j KUBE-SVC-")
        })
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no cluster IP rule for default/web:\n{rules}"))
        .to_string();
    let to_endpoints: Vec<&str> = rules
        .lines()
        .filter(|l| l.starts_with(&format!("-A {web_chain} ")) && l.contains("-j KUBE-SEP-"))
        .collect();
    assert_eq!(to_endpoints.len(), 3, "{to_endpoints:#?}");
    assert!(
        to_endpoints[0].contains("-m statistic --mode random --probability 0.33333333349 "),
        "{}",
        to_endpoints[0]
    );
    assert!(
        to_endpoints[1].contains("-m statistic --mode random --probability 0.50000000000 "),
        "{}",
        to_endpoints[1]
    );
    assert!(
        !to_endpoints[2].contains("statistic"),
        "{}",
        to_endpoints[2]
    );

    // A rolling update to a new image under 20 requests/s on the mapped port loses none.
    run(std::process::Command::new("docker").args([
        "tag",
        "kindling/whoami",
        "kindling/whoami:v2",
    ]))
    .ok("docker tag");
    kindling(&[
        "load",
        "docker-image",
        "kindling/whoami:v2",
        "--name",
        CLUSTER,
    ])
    .ok("load docker-image");
    let stop = Arc::new(AtomicBool::new(false));
    let load = Arc::new(Mutex::new(Load::default()));
    let loader = steady_load(local.clone(), stop.clone(), load.clone());
    std::thread::sleep(Duration::from_secs(2));
    kubectl(
        &kc,
        &[
            "set",
            "image",
            "deployment/web",
            "whoami=kindling/whoami:v2",
        ],
    )
    .ok("set image");
    rollout(&kc);
    let updated = web_pods(&kc);
    assert!(updated.is_disjoint(&pods), "{updated:?} vs {pods:?}");
    // `rollout undo` goes back to the first template, also without a lost request.
    kubectl(&kc, &["rollout", "undo", "deployment/web"]).ok("rollout undo");
    rollout(&kc);
    // The traffic follows the rollouts: the pods after the undo all answer.
    let last = web_pods(&kc);
    let undone = Instant::now();
    wait_for(
        "the pods after the undo to answer",
        Duration::from_secs(20),
        || load.lock().unwrap().hosts.is_superset(&last).then_some(()),
    );
    let reached = undone.elapsed();
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    let load = load.lock().unwrap();
    let image = kubectl(
        &kc,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
    .ok("get deployment")
    .stdout;
    assert_eq!(image, "kindling/whoami");
    println!(
        "rolling update and undo under 20 requests/s: {} answered by {} pods, {} failed; \
         every pod after the undo answered {:.1} s after `rollout status` returned",
        load.answered,
        load.hosts.len(),
        load.failures.len(),
        reached.as_secs_f64()
    );
    assert!(
        load.failures.is_empty(),
        "lost requests: {:#?}",
        load.failures
    );
    assert!(!load.hosts.is_disjoint(&updated), "{:?}", load.hosts);
    let _ = run(std::process::Command::new("docker").args(["rmi", "kindling/whoami:v2"]));
}
