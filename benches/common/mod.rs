//! Helpers shared by the cluster benchmarks: the release binary, real kubectl, commands that
//! must succeed, percentiles and the node containers' memory as `docker stats` reports it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn kindling() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/kindling");
    assert!(p.is_file(), "build it first: cargo build --release");
    p
}

/// The kubectl the tests use (scripts/fetch-kubectl.sh), or `KINDLING_KUBECTL`.
pub fn kubectl_bin() -> PathBuf {
    std::env::var_os("KINDLING_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/kubectl"))
}

/// Runs a command that must succeed; its trimmed stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kubectl --kubeconfig kc args...`, which must succeed.
pub fn kubectl(kc: &Path, args: &[&str]) -> String {
    run(Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(kc)
        .args(args))
}

/// Deletes any old cluster `name`, then creates it from `config` (kind YAML); the kubeconfig.
pub fn fresh_cluster(name: &str, config: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kindling-bench-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    let cfg = dir.join("kind.yaml");
    std::fs::write(&cfg, config).unwrap();
    let _ = Command::new(kindling())
        .args(["-q", "delete", "cluster", "--name", name, "--kubeconfig"])
        .arg(&kc)
        .output();
    run(Command::new(kindling())
        .args(["-q", "create", "cluster", "--name", name, "--config"])
        .arg(&cfg)
        .arg("--kubeconfig")
        .arg(&kc));
    kc
}

pub fn delete_cluster(name: &str, kc: &Path) {
    run(Command::new(kindling())
        .args(["-q", "delete", "cluster", "--name", name, "--kubeconfig"])
        .arg(kc));
}

/// The value at percentile `p` of ascending `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// Prints each node container's memory and returns the total in MiB.
pub fn memory(nodes: &[String]) -> f64 {
    let mut args = vec![
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}}",
    ];
    args.extend(nodes.iter().map(String::as_str));
    let stats = run(Command::new("docker").args(&args));
    let mut total = 0.0;
    for line in stats.lines() {
        let mut parts = line.split_whitespace();
        let node = parts.next().unwrap_or_default();
        let mib = parse_mib(parts.next().unwrap_or_default());
        total += mib;
        println!("  {node:<28} {mib:>6.1} MiB");
    }
    total
}

/// `docker stats`' "12.3MiB" (or KiB/GiB) in MiB.
pub fn parse_mib(s: &str) -> f64 {
    let num: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v: f64 = num.parse().unwrap_or(0.0);
    if s.ends_with("GiB") {
        v * 1024.0
    } else if s.ends_with("KiB") {
        v / 1024.0
    } else {
        v
    }
}
