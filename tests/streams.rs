//! End-to-end: `kubectl exec`, `attach`, `port-forward` and `cp` through the API server and
//! the kubelet to containerd's streaming server, with current kubectl (WebSocket) and kubectl
//! 1.20 (SPDY), and the errors both print for streams that cannot be opened.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: kindling/toolbox
    command: [sleep, '3600']
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: kindling/whoami
---
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: kindling/toolbox
    command: [sh, -c, 'while true; do echo tick; sleep 0.3; done']
---
apiVersion: v1
kind: Pod
metadata: {name: waiting}
spec:
  nodeSelector: {no-such-node: 'true'}
  containers:
  - name: c
    image: kindling/toolbox
";

/// kubectl `bin` against the cluster, with `stdin` fed to it.
fn kubectl_in(bin: &Path, kc: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kubectl_with(bin: &Path, kc: &Path, args: &[&str]) -> Run {
    kubectl_in(bin, kc, args, b"")
}

/// Runs kubectl in the background until the returned child is killed.
fn spawn_kubectl(bin: &Path, kc: &Path, args: &[&str]) -> Child {
    Command::new(bin)
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts")
}

fn wait_running(kc: &Path, pods: &[&str]) {
    let start = Instant::now();
    for pod in pods {
        loop {
            let phase = kubectl(kc, &["get", "pod", pod, "-o", "jsonpath={.status.phase}"]);
            if phase.stdout == "Running" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "pod {pod} is not Running: {}",
                kubectl(kc, &["describe", "pod", pod]).stdout
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// `kubectl port-forward` on a free local port; returns the port once kubectl says it listens.
fn port_forward(bin: &Path, kc: &Path, port: u16) -> Child {
    let mut child = spawn_kubectl(bin, kc, &["port-forward", "pod/web", &format!("{port}:80")]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("port-forward prints a line").unwrap();
    assert!(
        first.starts_with(&format!("Forwarding from 127.0.0.1:{port} -> 80")),
        "{first}"
    );
    // Keep draining so kubectl never blocks on a full pipe ("Handling connection for ...").
    std::thread::spawn(move || for _ in lines {});
    child
}

fn http_get(port: u16) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl through port-forward failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check_streams(bin: &Path, kc: &Path, port: u16, tmp: &Path) {
    let who = bin.file_name().unwrap().to_string_lossy().into_owned();

    // exec: stdout, stderr and the exit code come back separately.
    let r = kubectl_with(bin, kc, &["exec", "shell", "--", "echo", "hello"]).ok("exec echo");
    assert_eq!(r.stdout, "hello\n", "{who}");
    let r = kubectl_with(
        bin,
        kc,
        &[
            "exec",
            "shell",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(r.code, 3, "{who}: {}", r.stderr);
    assert_eq!(r.stdout, "out\n", "{who}");
    assert!(r.stderr.contains("err\n"), "{who}: {}", r.stderr);
    assert!(
        r.stderr.contains("command terminated with exit code 3"),
        "{who}: {}",
        r.stderr
    );

    // exec -i: stdin reaches the command and its end ends the command.
    let r = kubectl_in(
        bin,
        kc,
        &["exec", "-i", "shell", "--", "wc", "-l"],
        b"a\nb\nc\n",
    )
    .ok("exec -i");
    assert_eq!(r.stdout.trim(), "3", "{who}");

    // exec -t under a terminal: the command sees a TTY.
    let script = format!(
        "{} --kubeconfig {} exec -it shell -- sh -c 'tty; exit 0'",
        bin.display(),
        kc.display()
    );
    let out = Command::new("script")
        .args(["-qec", &script, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/dev/pts/"),
        "{who}: exec -it printed {text:?}"
    );

    // cp both ways (tar through exec).
    let local = tmp.join(format!("{who}-upload.txt"));
    std::fs::write(&local, "copied by kubectl cp\n").unwrap();
    kubectl_with(
        bin,
        kc,
        &["cp", &local.to_string_lossy(), "shell:/tmp/up.txt"],
    )
    .ok("cp to pod");
    let r = kubectl_with(bin, kc, &["exec", "shell", "--", "cat", "/tmp/up.txt"]).ok("cat");
    assert_eq!(r.stdout, "copied by kubectl cp\n", "{who}");
    let back = tmp.join(format!("{who}-download.txt"));
    kubectl_with(
        bin,
        kc,
        &["cp", "shell:/tmp/up.txt", &back.to_string_lossy()],
    )
    .ok("cp from pod");
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "copied by kubectl cp\n"
    );

    // attach: the main process's output streams to the caller.
    let mut attach = spawn_kubectl(bin, kc, &["attach", "ticker"]);
    let mut lines = BufReader::new(attach.stdout.take().unwrap()).lines();
    let line = lines.next().expect("attach prints").unwrap();
    assert_eq!(line, "tick", "{who}");
    let _ = attach.kill();
    let _ = attach.wait();

    // port-forward: a local port reaches the pod's port 80.
    let mut pf = port_forward(bin, kc, port);
    let body = http_get(port);
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(body.contains("Hostname: web"), "{who}: {body}");

    // The errors kubectl prints for streams that cannot be opened.
    let r = kubectl_with(bin, kc, &["exec", "shell", "-c", "nosuch", "--", "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(
            "Error from server (BadRequest): container nosuch is not valid for pod shell"
        ),
        "{who}: {}",
        r.stderr
    );
    let r = kubectl_with(bin, kc, &["exec", "nosuch", "--", "true"]);
    assert!(
        r.stderr
            .contains("Error from server (NotFound): pods \"nosuch\" not found"),
        "{who}: {}",
        r.stderr
    );
    let r = kubectl_with(bin, kc, &["port-forward", "pod/waiting", "18999:80"]);
    assert!(
        r.stderr.contains(
            "error: unable to forward port because pod is not running. Current status=Pending"
        ),
        "{who}: {}",
        r.stderr
    );
    let r = kubectl_with(bin, kc, &["exec", "waiting", "--", "true"]);
    assert!(
        r.stderr
            .contains("Error from server (BadRequest): pod waiting does not have a host assigned"),
        "{who}: {}",
        r.stderr
    );
    let r = kubectl_with(bin, kc, &["exec", "shell", "--", "no-such-command"]);
    assert_ne!(r.code, 0, "{who}");
    // The runtime words the rest: crun (Kindling's) says "executable file `no-such-command`
    // not found in $PATH", runc says "exec: \"no-such-command\": executable file not found in
    // $PATH"; kubectl prints either after the same prefix.
    assert!(
        r.stderr.contains("error executing command in container")
            && r.stderr.contains("no-such-command")
            && r.stderr.contains("not found in $PATH"),
        "{who}: {}",
        r.stderr
    );
}

#[test]
fn exec_attach_port_forward_and_cp_work_with_both_kubectls() {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return;
    }
    let old: PathBuf = tools_dir().join("kubectl-1.20");
    if !require("kubectl 1.20", old.is_file())
        || !require(
            "script (util-linux)",
            Command::new("script").arg("--version").output().is_ok(),
        )
    {
        return;
    }
    let _turn = cluster_lock();
    let name = "e2e-streams";
    let (kc, _guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, Some(TWO_NODES)).ok("create");
    let manifest = kc.with_file_name("pods.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    kubectl(&kc, &["apply", "-f", &manifest.to_string_lossy()]).ok("apply");
    wait_running(&kc, &["shell", "web", "ticker"]);

    let tmp = kc.parent().unwrap().to_path_buf();
    check_streams(&kubectl_path().unwrap(), &kc, 18081, &tmp);
    check_streams(&old, &kc, 18082, &tmp);
}
