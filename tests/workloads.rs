//! End-to-end: Deployments and ReplicaSets on a three-node cluster with real kubectl (current
//! and 1.20): create, rollout status, scale, set image, history, undo, pod replacement, events.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn kubectl_with(bin: &Path, kc: &Path, args: &[&str]) -> Run {
    run(Command::new(bin).arg("--kubeconfig").arg(kc).args(args))
}

/// `name phase node image` for each pod labelled app=web that is scheduled and not being
/// deleted (those lines have a fifth field, the deletionTimestamp).
fn web_pods(kc: &Path) -> Vec<(String, String, String, String)> {
    let r = kubectl(
        kc,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ],
    )
    .ok("get pods");
    r.stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4).then(|| {
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    f[2].to_string(),
                    f[3].to_string(),
                )
            })
        })
        .collect()
}

fn rollout_status(bin: &Path, kc: &Path) -> Run {
    kubectl_with(
        bin,
        kc,
        &["rollout", "status", "deployment/web", "--timeout=120s"],
    )
}

#[test]
fn deployments_roll_out_scale_update_and_undo_with_kubectl() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let old = tools_dir().join("kubectl-1.20");
    if !require("kubectl 1.20", old.is_file()) {
        return;
    }
    let new = kubectl_path().unwrap();
    let _turn = cluster_lock();
    let name = "e2e-work";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(
        name,
        &kc,
        Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n"),
    )
    .ok("create");

    // Create: 3 pods from one ReplicaSet web-<hash>, Running on both workers.
    let start = Instant::now();
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
    let status = rollout_status(&new, &kc).ok("rollout status");
    let took = start.elapsed();
    println!(
        "3-replica deployment fully available in {:.2} s (create to rollout status done)",
        took.as_secs_f64()
    );
    assert!(
        status
            .stdout
            .contains("deployment \"web\" successfully rolled out"),
        "{}",
        status.stdout
    );
    let rs = kubectl(
        &kc,
        &[
            "get",
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].metadata.labels.pod-template-hash} {.items[0].metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    )
    .ok("get rs");
    let f: Vec<&str> = rs.stdout.split_whitespace().collect();
    let (rs1, hash) = (f[0].to_string(), f[1]);
    assert_eq!(rs1, format!("web-{hash}"));
    assert_eq!(f[2], "1", "revision");
    let pods = web_pods(&kc);
    assert_eq!(pods.len(), 3, "{pods:?}");
    let mut nodes: Vec<&str> = pods.iter().map(|p| p.2.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(
        nodes,
        [format!("{name}-worker"), format!("{name}-worker2")],
        "{pods:?}"
    );
    for (pod, phase, ..) in &pods {
        assert_eq!(phase, "Running", "{pod}");
        let suffix = pod
            .strip_prefix(&format!("{rs1}-"))
            .expect("named <rs>-<x>");
        assert_eq!(suffix.len(), 5, "{pod}");
    }
    let ready = kubectl(
        &kc,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}/{.status.availableReplicas}/{.status.updatedReplicas} {.status.conditions[*].reason}",
        ],
    )
    .ok("deployment status");
    assert!(
        ready.stdout.starts_with("3/3/3 ")
            && ready.stdout.contains("MinimumReplicasAvailable")
            && ready.stdout.contains("NewReplicaSetAvailable"),
        "{}",
        ready.stdout
    );

    // Deleting a pod: the ReplicaSet replaces it.
    let victim = pods[0].0.clone();
    kubectl(&kc, &["delete", "pod", &victim, "--wait=false"]).ok("delete pod");
    wait_for("a replacement pod", Duration::from_secs(60), || {
        let now = web_pods(&kc);
        (now.len() == 3
            && now.iter().all(|p| p.1 == "Running")
            && !now.iter().any(|p| p.0 == victim))
        .then_some(())
        .map(|_| String::new())
    });

    // Scale with kubectl 1.20 (the scale subresource), then the current one waits.
    kubectl_with(&old, &kc, &["scale", "deployment/web", "--replicas=5"]).ok("scale");
    rollout_status(&new, &kc).ok("rollout status after scale");
    wait_for("5 Running pods", Duration::from_secs(60), || {
        let now = web_pods(&kc);
        (now.len() == 5 && now.iter().all(|p| p.1 == "Running")).then(String::new)
    });

    // A new image rolls out as a second ReplicaSet; whoami retagged in each node stands in
    // for a new version, as there is no registry.
    for node in node_containers(name) {
        docker(&[
            "exec",
            &node,
            "ctr",
            "-n",
            "k8s.io",
            "images",
            "tag",
            "docker.io/kindling/whoami:latest",
            "docker.io/kindling/whoami:v2",
        ])
        .ok("ctr images tag");
    }
    let start = Instant::now();
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
    rollout_status(&new, &kc).ok("rollout status after set image");
    println!(
        "5-replica rolling update (maxSurge 25%, maxUnavailable 25%) done in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let pods = wait_for("5 pods of v2", Duration::from_secs(60), || {
        let now = web_pods(&kc);
        (now.len() == 5
            && now
                .iter()
                .all(|p| p.1 == "Running" && p.3 == "kindling/whoami:v2"))
        .then(|| format!("{now:?}"))
    });
    assert!(!pods.contains(&format!("{rs1}-")), "{pods}");
    let history = kubectl(&kc, &["rollout", "history", "deployment/web"]).ok("history");
    let revisions: Vec<&str> = history
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{}", history.stdout);
    let events = kubectl(
        &kc,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Deployment,involvedObject.name=web",
        ],
    )
    .ok("deployment events");
    assert!(
        events
            .stdout
            .contains(&format!("Scaled up replica set {rs1} from 0 to 3")),
        "{}",
        events.stdout
    );
    assert!(
        events
            .stdout
            .contains(&format!("Scaled down replica set {rs1} from")),
        "{}",
        events.stdout
    );
    let rs_events = kubectl(
        &kc,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={rs1}"),
        ],
    )
    .ok("replicaset events");
    assert!(
        rs_events.stdout.contains(&format!("Created pod: {rs1}-")),
        "{}",
        rs_events.stdout
    );

    // Undo with kubectl 1.20: the first template comes back, as revision 3 of the first
    // ReplicaSet, whose pods are whoami:latest again.
    kubectl_with(&old, &kc, &["rollout", "undo", "deployment/web"]).ok("undo");
    rollout_status(&old, &kc).ok("rollout status (1.20) after undo");
    wait_for(
        "5 pods of the first revision",
        Duration::from_secs(60),
        || {
            let now = web_pods(&kc);
            (now.len() == 5
                && now
                    .iter()
                    .all(|p| p.1 == "Running" && p.3 == "kindling/whoami" && p.0.starts_with(&rs1)))
            .then(String::new)
        },
    );
    let rev = kubectl(
        &kc,
        &[
            "get",
            "rs",
            &rs1,
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    )
    .ok("revision after undo");
    assert_eq!(rev.stdout, "3");

    // A Service over the Deployment: Endpoints and an EndpointSlice list the ready pods, and
    // follow a scale-down.
    kubectl(&kc, &["expose", "deployment", "web", "--port=80"]).ok("expose");
    // The IPs of the Service's pods that are not on their way out (terminating pods leave
    // the Endpoints at once but keep their IP through their grace period).
    let pod_ips = |kc: &Path| {
        let r = kubectl(kc, &["get", "pods", "-l", "app=web", "-o", "json"]).ok("pod IPs");
        let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let mut ips: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
            .collect();
        ips.sort();
        ips
    };
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        v.sort();
        v
    };
    wait_for("Endpoints of 5 pods", Duration::from_secs(30), || {
        let r = kubectl(
            &kc,
            &[
                "get",
                "endpoints",
                "web",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip} {.subsets[0].ports[0].port}",
            ],
        );
        let mut got = sorted(&r.stdout);
        got.retain(|w| w != "80");
        (r.stdout.contains(" 80") && got.len() == 5 && got == pod_ips(&kc)).then(String::new)
    });
    wait_for(
        "an EndpointSlice of 5 ready pods",
        Duration::from_secs(30),
        || {
            let r = kubectl(
                &kc,
                &[
                    "get",
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=web",
                    "-o",
                    "jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}",
                ],
            );
            let got = sorted(&r.stdout);
            (got.len() == 5 && got == pod_ips(&kc)).then(String::new)
        },
    );
    // A pod relabelled out of the selector leaves the Service and its ReplicaSet, which
    // replaces it; the Endpoints follow.
    let moved = web_pods(&kc)[0].0.clone();
    let moved_ip = kubectl(
        &kc,
        &["get", "pod", &moved, "-o", "jsonpath={.status.podIP}"],
    )
    .ok("pod IP")
    .stdout;
    kubectl(&kc, &["label", "pod", &moved, "app=debug", "--overwrite"]).ok("relabel");
    wait_for(
        "Endpoints without the relabelled pod",
        Duration::from_secs(60),
        || {
            let r = kubectl(
                &kc,
                &[
                    "get",
                    "endpoints",
                    "web",
                    "-o",
                    "jsonpath={.subsets[*].addresses[*].ip}",
                ],
            );
            let got = sorted(&r.stdout);
            (got.len() == 5 && !got.contains(&moved_ip) && got == pod_ips(&kc)).then(String::new)
        },
    );
    let owners = kubectl(
        &kc,
        &[
            "get",
            "pod",
            &moved,
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ],
    )
    .ok("released pod");
    assert!(
        !owners.stdout.contains("ReplicaSet"),
        "a released pod keeps no controller: {}",
        owners.stdout
    );
    kubectl(&kc, &["scale", "deployment/web", "--replicas=2"]).ok("scale down");
    wait_for("Endpoints of 2 pods", Duration::from_secs(60), || {
        let r = kubectl(
            &kc,
            &[
                "get",
                "endpoints",
                "web",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ],
        );
        (sorted(&r.stdout).len() == 2).then(String::new)
    });
}

const RECREATE: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 2
  # Generous until the test lowers it for the stuck rollout: a busy machine must not make the
  # working rollouts miss it.
  progressDeadlineSeconds: 600
  strategy: {type: Recreate}
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: whoami, image: kindling/whoami, imagePullPolicy: IfNotPresent}
";

#[test]
fn recreate_pause_resume_restart_and_a_rollout_past_its_deadline_undone() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let new = kubectl_path().unwrap();
    let _turn = cluster_lock();
    let name = "e2e-work2";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(
        name,
        &kc,
        Some("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n"),
    )
    .ok("create");
    let manifest = kc.with_file_name("app.yaml");
    std::fs::write(&manifest, RECREATE).unwrap();
    kubectl(&kc, &["apply", "-f", &manifest.to_string_lossy()]).ok("apply");
    kubectl_with(
        &new,
        &kc,
        &["rollout", "status", "deployment/app", "--timeout=120s"],
    )
    .ok("rollout status");
    let rs_names = |kc: &Path| {
        kubectl(
            kc,
            &[
                "get",
                "rs",
                "-l",
                "app=app",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
        )
        .ok("get rs")
        .stdout
    };
    let first = rs_names(&kc);

    // Recreate: the old ReplicaSet is scaled to 0 before the new one is scaled up.
    kubectl(&kc, &["rollout", "restart", "deployment/app"]).ok("restart");
    kubectl_with(
        &new,
        &kc,
        &["rollout", "status", "deployment/app", "--timeout=120s"],
    )
    .ok("rollout status after restart");
    let events = kubectl(
        &kc,
        &[
            "get",
            "events",
            "--sort-by=.metadata.creationTimestamp",
            "--field-selector",
            "involvedObject.kind=Deployment,involvedObject.name=app",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
    )
    .ok("events")
    .stdout;
    let down = events
        .find(&format!("Scaled down replica set {first} from 2 to 0"))
        .unwrap_or_else(|| panic!("{events}"));
    let up = events
        .rfind("Scaled up replica set")
        .unwrap_or_else(|| panic!("{events}"));
    assert!(down < up, "{events}");

    // Paused: a template change makes no ReplicaSet until resumed.
    kubectl(&kc, &["rollout", "pause", "deployment/app"]).ok("pause");
    let before = rs_names(&kc);
    kubectl(
        &kc,
        &[
            "set",
            "image",
            "deployment/app",
            "whoami=kindling/whoami:v9",
        ],
    )
    .ok("set image");
    // The Progressing condition's reason, and a new progress deadline.
    let progressing = || {
        kubectl(
            &kc,
            &[
                "get",
                "deployment",
                "app",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
            ],
        )
    };
    let deadline = |seconds: u32| {
        let patch = format!("{{\"spec\":{{\"progressDeadlineSeconds\":{seconds}}}}}");
        kubectl(&kc, &["patch", "deployment", "app", "-p", &patch]).ok("a new progress deadline");
    };
    wait_for("DeploymentPaused", Duration::from_secs(20), || {
        (progressing().stdout == "DeploymentPaused").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rs_names(&kc), before);

    // Resumed: no node holds whoami:v9 and there is no registry (ImagePullBackOff), so the
    // rollout passes its 10 s deadline and rollout status says so; undo brings the working
    // template back.
    deadline(10);
    kubectl(&kc, &["rollout", "resume", "deployment/app"]).ok("resume");
    let stuck = kubectl_with(
        &new,
        &kc,
        &["rollout", "status", "deployment/app", "--timeout=90s"],
    );
    assert_ne!(stuck.code, 0, "{}", stuck.stdout);
    assert!(
        stuck.stderr.contains("exceeded its progress deadline"),
        "{}\n{}",
        stuck.stdout,
        stuck.stderr
    );
    let reason = progressing().ok("reason");
    assert_eq!(reason.stdout, "ProgressDeadlineExceeded");
    deadline(600);
    kubectl(&kc, &["rollout", "undo", "deployment/app"]).ok("undo");
    // As upstream, the old ProgressDeadlineExceeded stays until the rollout makes progress;
    // `rollout status` read before that reports the old deadline, so wait for progress first.
    wait_for("progress after undo", Duration::from_secs(60), || {
        let r = progressing();
        (r.code == 0 && r.stdout != "ProgressDeadlineExceeded").then_some(())
    });
    kubectl_with(
        &new,
        &kc,
        &["rollout", "status", "deployment/app", "--timeout=120s"],
    )
    .ok("rollout status after undo");
}
