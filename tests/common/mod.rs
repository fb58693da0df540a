//! Helpers shared by the end-to-end tests: running the real kindling binary, real kubectl and
//! the Docker CLI, and requiring tools (a failure in CI, a printed skip elsewhere).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A kind config for one control plane and one worker, the shape most end-to-end tests use.
pub const TWO_NODES: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n";

/// Clusters are heavy on a 2-core machine: tests that create them take turns.
static CLUSTER_LOCK: Mutex<()> = Mutex::new(());

pub fn cluster_lock() -> MutexGuard<'static, ()> {
    CLUSTER_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when `what` is usable; in CI a missing tool fails the test instead of skipping it.
pub fn require(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(!in_ci(), "{what} is required in CI but missing");
        eprintln!("skipping: {what} is not available here");
    }
    ok
}

pub fn docker_available() -> bool {
    require(
        "a Docker engine",
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    )
}

pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools")
}

/// The current kubectl (v1.33), from `KINDLING_KUBECTL` or target/tools/kubectl.
pub fn kubectl_path() -> Option<PathBuf> {
    std::env::var_os("KINDLING_KUBECTL")
        .map(PathBuf::from)
        .or_else(|| Some(tools_dir().join("kubectl")))
        .filter(|p| p.is_file())
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn ok(self, what: &str) -> Self {
        assert_eq!(
            self.code, 0,
            "{what} failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.stdin(Stdio::null()).output().expect("command runs"))
}

pub fn kindling(args: &[&str]) -> Run {
    run(Command::new(env!("CARGO_BIN_EXE_kindling")).args(args))
}

pub fn docker(args: &[&str]) -> Run {
    run(Command::new("docker").args(args))
}

pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Run {
    let path = kubectl_path().expect("kubectl is available");
    run(Command::new(path)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args))
}

/// `kindling create cluster --name <name> --kubeconfig <kubeconfig>`, with `config` (kind YAML)
/// written beside the kubeconfig and passed as `--config` when given.
pub fn create_cluster(name: &str, kubeconfig: &Path, config: Option<&str>) -> Run {
    let kc = kubeconfig.to_string_lossy().into_owned();
    let mut args = vec!["create", "cluster", "--name", name, "--kubeconfig", &kc];
    let path = kubeconfig.with_file_name("kind.yaml");
    let cfg = path.to_string_lossy().into_owned();
    if let Some(text) = config {
        std::fs::write(&path, text).unwrap();
        args.extend(["--config", &cfg]);
    }
    kindling(&args)
}

/// A fresh kubeconfig path in a fresh temp folder.
pub fn temp_kubeconfig(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kindling-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("kubeconfig")
}

/// Deletes a cluster when dropped, so a failed test leaves nothing running.
pub struct ClusterGuard {
    pub name: String,
    pub kubeconfig: PathBuf,
}

impl ClusterGuard {
    /// A fresh kubeconfig path for cluster `name` and a guard that deletes the cluster.
    pub fn new(name: &str) -> (PathBuf, ClusterGuard) {
        let kubeconfig = temp_kubeconfig(name);
        let guard = ClusterGuard {
            name: name.into(),
            kubeconfig: kubeconfig.clone(),
        };
        (kubeconfig, guard)
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let _ = kindling(&[
            "delete",
            "cluster",
            "--name",
            &self.name,
            "--kubeconfig",
            &self.kubeconfig.to_string_lossy(),
        ]);
    }
}

/// Node containers of a cluster, by the Docker CLI.
pub fn node_containers(cluster: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=dev.kindling.cluster={cluster}"),
        "--format",
        "{{.Names}}",
    ])
    .ok("docker ps")
    .stdout
    .lines()
    .map(str::to_string)
    .collect()
}

/// Polls `check` every 300 ms until it yields a value, or fails naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A container's address on its Docker network (a node's InternalIP).
pub fn container_ip(container: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ])
    .ok("docker inspect")
    .stdout
    .trim()
    .to_string()
}
