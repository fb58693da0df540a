//! `kindling learn` start-up: the time from asking tmux to start it until its first frame is on
//! the screen (budget 200 ms), for the lab picker and for a started cluster lab with the
//! `kindling-lab` cluster running, and until that lab's cluster panel shows the nodes from its
//! watches. Each run starts the release binary in a fresh tmux session (160x48) with its own
//! data folder; the binary stamps the moments into a file (`--timing`). Creates no cluster.
//! Run with `cargo bench --bench learn`; prints figures, asserts none.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kindling::lab::catalog::Catalog;
use kindling::lab::progress::{LabProgress, Store};

const RUNS: usize = 10;
const BUDGET_MS: f64 = 200.0;
const SOCKET: &str = "kindling-bench-learn";
const CLUSTER: &str = "kindling-lab";

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

fn tmux(args: &[&str]) -> bool {
    Command::new("tmux")
        .arg("-L")
        .arg(SOCKET)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One start of `kindling learn ARGS`: milliseconds to the first frame and, when `cluster`,
/// to the first frame with the cluster's nodes.
fn start_once(data: &Path, args: &str, cluster: bool) -> Option<(f64, Option<f64>)> {
    let stamps = data.join("timing");
    let _ = std::fs::remove_file(&stamps);
    let cmd = format!(
        "XDG_DATA_HOME={} {} learn {args} --timing {}",
        data.display(),
        common::kindling().display(),
        stamps.display()
    );
    let t0 = now_micros();
    if !tmux(&[
        "new-session",
        "-d",
        "-s",
        "learn",
        "-x",
        "160",
        "-y",
        "48",
        &cmd,
    ]) {
        println!("tmux could not start {cmd}");
        return None;
    }
    let want = if cluster { 2 } else { 1 };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        lines = std::fs::read_to_string(&stamps)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tmux(&["send-keys", "-t", "learn", "q"]);
    std::thread::sleep(Duration::from_millis(100));
    tmux(&["kill-server"]);
    let at = |what: &str| {
        lines.iter().find_map(|l| {
            let v = l.strip_prefix(what)?.trim().parse::<u128>().ok()?;
            Some(v.saturating_sub(t0) as f64 / 1000.0)
        })
    };
    Some((at("first_frame")?, at("cluster_shown")))
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut v: Vec<f64>, budget: Option<f64>) {
    if v.is_empty() {
        println!("{what:48} no figures");
        return;
    }
    let (p50, worst) = (percentile(&mut v, 0.5), percentile(&mut v, 1.0));
    let verdict = budget.map_or(String::new(), |b| {
        if worst <= b {
            format!("within {b} ms")
        } else if p50 <= b {
            format!("median within {b} ms, worst over")
        } else {
            format!("OVER {b} ms")
        }
    });
    println!(
        "{what:48} p50 {p50:7.1} ms  worst {worst:7.1} ms  ({} runs) {verdict}",
        v.len()
    );
}

fn main() {
    if !tmux(&["-V"]) {
        println!("no tmux; nothing to measure");
        return;
    }
    let data = std::env::temp_dir().join(format!("kindling-bench-learn-{}", std::process::id()));
    std::fs::create_dir_all(data.join("kindling/clusters")).expect("data folder");
    let store = Store::new(data.join("kindling"));
    let catalog = Catalog::bundled();

    // The lab picker, with no lab started.
    let mut picker = Vec::new();
    for _ in 0..RUNS {
        picker.extend(start_once(&data, "", false).map(|(f, _)| f));
    }
    report("first frame: lab picker", picker, Some(BUDGET_MS));

    // A started cluster lab on the running lab cluster.
    let real = Store::default().kubeconfig(CLUSTER);
    let lab = catalog
        .labs
        .iter()
        .find(|e| e.lab.needs.cluster.as_ref().map(|c| c.name.value.as_str()) == Some(CLUSTER));
    let running = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("name=^{CLUSTER}-control-plane$"),
        ])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    match lab {
        Some(entry) if running && real.is_file() => {
            let id = entry.id();
            std::fs::copy(&real, store.kubeconfig(CLUSTER)).expect("copy the kubeconfig");
            let mut p = LabProgress::new(id);
            p.started = true;
            store.save(&p).expect("save progress");
            store.set_current(id).expect("set the current lab");
            let (mut first, mut shown) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                if let Some((f, c)) = start_once(&data, id, true) {
                    first.push(f);
                    shown.extend(c);
                }
            }
            report(
                &format!("first frame: lab {id} (cluster running)"),
                first,
                Some(BUDGET_MS),
            );
            report("first frame with the cluster's nodes", shown, None);
        }
        _ => println!(
            "cluster lab skipped: cluster {CLUSTER} is not running (`kindling lab start services-expose` creates it)"
        ),
    }
    let _ = std::fs::remove_dir_all(&data);
}
