//! Cluster benchmark: node image build (cold and warm), image size, `create cluster` time for
//! one control plane and two workers until every node is Ready, and each node's memory.
//! Run with `cargo build --release && cargo bench --bench cluster`; prints figures, asserts none.

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;

fn timed(cmd: &mut Command) -> (f64, String) {
    let t = Instant::now();
    let out = run(cmd);
    (t.elapsed().as_secs_f64(), out)
}

fn main() {
    let bin = kindling();
    let dir = std::env::temp_dir().join("kindling-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    let cfg = dir.join("three.yaml");
    std::fs::write(
        &cfg,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n",
    )
    .unwrap();

    let (cold, tag) = timed(Command::new(&bin).args(["-q", "build", "node-image", "--no-cache"]));
    let (rebuilt, _) = timed(Command::new(&bin).args(["-q", "build", "node-image", "--force"]));
    let (warm, _) = timed(Command::new(&bin).args(["-q", "build", "node-image"]));
    let size: f64 =
        run(Command::new("docker").args(["image", "inspect", "--format", "{{.Size}}", &tag]))
            .parse()
            .unwrap_or(0.0);
    println!("node image {tag}");
    println!("  cold build (base present, no cache): {cold:.1} s");
    println!("  rebuild with cached layers:          {rebuilt:.1} s");
    println!("  image present (warm):                {warm:.2} s");
    println!(
        "  size:                                {:.0} MB (budget 350 MB)",
        size / 1e6
    );

    let mut creates = Vec::new();
    for i in 0..3 {
        let name = format!("bench{i}");
        let (t, _) = timed(
            Command::new(&bin)
                .args(["-q", "create", "cluster", "--name", &name])
                .arg("--config")
                .arg(&cfg)
                .arg("--kubeconfig")
                .arg(&kc),
        );
        creates.push(t);
        if i == 2 {
            std::thread::sleep(std::time::Duration::from_secs(10));
            let stats = run(Command::new("docker").args([
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}} {{.MemUsage}}",
                &format!("{name}-control-plane"),
                &format!("{name}-worker"),
                &format!("{name}-worker2"),
            ]));
            let mut total = 0.0;
            println!("memory after 10 s idle (docker stats):");
            for line in stats.lines() {
                let mut parts = line.split_whitespace();
                let node = parts.next().unwrap_or_default();
                let usage = parts.next().unwrap_or_default();
                let mib = parse_mib(usage);
                total += mib;
                println!("  {node:<24} {mib:>6.1} MiB");
            }
            println!("  whole cluster            {total:>6.1} MiB (budget 300 MiB)");
        }
        run(Command::new(&bin)
            .args(["-q", "delete", "cluster", "--name", &name])
            .arg("--kubeconfig")
            .arg(&kc));
    }
    creates.sort_by(f64::total_cmp);
    println!(
        "create cluster, 1 control plane + 2 workers, warm image, until all Ready: min {:.1} s, median {:.1} s, max {:.1} s (budget 5 s)",
        creates[0], creates[1], creates[2]
    );
}
