//! End-to-end: `kubectl logs` (current and 1.20) reads a worker's container logs through the API
//! server's `pods/log` and the kubelet's `/containerLogs`: tail, timestamps, previous, follow.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn kubectl_with(bin: &Path, kc: &Path, args: &[&str]) -> Run {
    run(Command::new(bin).arg("--kubeconfig").arg(kc).args(args))
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'for i in 1 2 3; do echo line $i; done; sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo crash run; exit 1']
";

#[test]
fn kubectl_logs_tail_timestamps_previous_and_follow() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let old: PathBuf = tools_dir().join("kubectl-1.20");
    if !require("kubectl 1.20", old.is_file()) {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-logs";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, Some(TWO_NODES)).ok("create");
    let manifest = kc.with_file_name("pods.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    kubectl(&kc, &["apply", "-f", &manifest.to_string_lossy()]).ok("apply");

    wait_for("counter's 3 lines", Duration::from_secs(60), || {
        kubectl(&kc, &["logs", "counter"]).stdout == "line 1\nline 2\nline 3\n"
    });
    let node = kubectl(
        &kc,
        &["get", "pod", "counter", "-o", "jsonpath={.spec.nodeName}"],
    )
    .ok("nodeName")
    .stdout;
    assert_eq!(
        node,
        format!("{name}-worker"),
        "the log comes from a worker"
    );

    for bin in [kubectl_path().unwrap(), old.clone()] {
        let k = |args: &[&str]| kubectl_with(&bin, &kc, args);
        let v = bin.display();
        assert_eq!(
            k(&["logs", "counter"]).ok("logs").stdout,
            "line 1\nline 2\nline 3\n",
            "{v}"
        );
        assert_eq!(
            k(&["logs", "counter", "-c", "c", "--tail", "1"])
                .ok("tail")
                .stdout,
            "line 3\n",
            "{v}"
        );
        let stamped = k(&["logs", "counter", "--timestamps"])
            .ok("timestamps")
            .stdout;
        let lines: Vec<&str> = stamped.lines().collect();
        assert_eq!(lines.len(), 3, "{v}: {stamped}");
        for (i, l) in lines.iter().enumerate() {
            let (ts, msg) = l.split_once(' ').unwrap();
            assert!(
                ts.len() > 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{v}: {l}"
            );
            assert_eq!(msg, format!("line {}", i + 1), "{v}");
        }
        let wrong = k(&["logs", "counter", "-c", "nope"]);
        assert!(
            wrong.code != 0
                && wrong
                    .stderr
                    .contains("container nope is not valid for pod counter"),
            "{v}: {}",
            wrong.stderr
        );
        let none = k(&["logs", "counter", "--previous"]);
        assert!(
            none.code != 0
                && none
                    .stderr
                    .contains("previous terminated container \"c\" in pod \"counter\" not found"),
            "{v}: {}",
            none.stderr
        );

        // -f keeps the stream open (the container is still running) and shows what is there.
        let mut child = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&kc)
            .args(["logs", "-f", "counter"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        assert!(child.try_wait().unwrap().is_none(), "{v}: -f ended early");
        child.kill().unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let _ = child.wait();
        assert_eq!(out, "line 1\nline 2\nline 3\n", "{v}");
    }

    wait_for("crasher to restart", Duration::from_secs(60), || {
        let r = kubectl(
            &kc,
            &[
                "get",
                "pod",
                "crasher",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ],
        );
        r.stdout.trim().parse::<u32>().is_ok_and(|n| n >= 1)
    });
    for bin in [kubectl_path().unwrap(), old] {
        let prev = kubectl_with(&bin, &kc, &["logs", "crasher", "--previous"]).ok("previous");
        assert_eq!(prev.stdout, "crash run\n", "{}", bin.display());
    }
}
