//! Lab check rounds: for every bundled lab (and the fixtures in testdata/labs) whose
//! prerequisites are up (Docker; for cluster labs, their cluster already running), run setup,
//! then per step the solution and the step's checks five times, printing the median and worst
//! round against the 300 ms budget, then the time of the whole `kindling grade LAB` command on
//! that solved state against the 2 s budget. Creates no cluster; cleans up each lab it ran.
//! Run with `cargo bench --bench labs [-- LAB...]`; prints figures, asserts none.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kindling::lab::catalog::{Catalog, Entry};
use kindling::lab::checks::{self, Context};
use kindling::lab::model::{CheckKind, Lang};
use kindling::lab::progress::Store;
use kindling::lab::runner::{self, Env};
use kindling::lab::session;

const ROUNDS: usize = 5;
const BUDGET_MS: u64 = 300;
const GRADE_BUDGET_MS: u64 = 2000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench());
}

async fn bench() {
    let docker = match kindling::cluster::docker::connect().await {
        Ok(d) => d,
        Err(e) => {
            println!("no Docker engine ({e}); nothing to measure");
            return;
        }
    };
    let mut labs: Vec<Entry> = Catalog::bundled().labs;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/labs");
    if let Ok(c) = Catalog::from_dir(&fixtures) {
        labs.extend(c.labs);
    }
    // `cargo bench --bench labs -- LAB...` measures only those labs.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !only.is_empty() {
        labs.retain(|e| only.iter().any(|o| o == e.id()));
    }
    let running = kindling::cluster::delete::cluster_names(&docker)
        .await
        .unwrap_or_default();
    let store = Store::default();
    let tmp = std::env::temp_dir().join(format!("kindling-bench-labs-{}", std::process::id()));
    println!(
        "{:24} {:16} {:>8} {:>8}  budget {BUDGET_MS} ms",
        "lab", "step", "median", "worst"
    );
    let mut over = 0;
    for entry in &labs {
        if let Some(c) = &entry.lab.needs.cluster
            && !running.contains(&c.name.value)
        {
            println!(
                "{:24} skipped: cluster {} is not running",
                entry.id(),
                c.name.value
            );
            continue;
        }
        let mut env: Env = session::env(entry, &store);
        env.workdir = tmp.join(entry.id());
        // Images only: `prepare` would create a missing cluster, which a benchmark must not.
        if !entry.lab.needs.images.is_empty()
            && let Err(e) = kindling::nodeimage::bundled::ensure(
                &docker,
                &Default::default(),
                kindling::progress::Progress { quiet: true },
            )
            .await
        {
            println!("{:24} skipped: bundled images: {e}", entry.id());
            continue;
        }
        if let Some(c) = &entry.lab.needs.cluster {
            match session::ensure_cluster(
                &docker,
                c,
                &store,
                kindling::progress::Progress { quiet: true },
            )
            .await
            {
                Ok((path, _)) => env.kubeconfig = Some(path),
                Err(e) => {
                    println!("{:24} skipped: {e}", entry.id());
                    continue;
                }
            }
        }
        std::fs::create_dir_all(&env.workdir).expect("work folder");
        for (rel, bytes) in entry.files() {
            let p = env.workdir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        over += bench_lab(entry, &env).await;
        grade_time(entry, &env, &fixtures);
        if let Some(c) = &entry.lab.cleanup {
            let _ = runner::run("cleanup", c, &env, false).await;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{over} step round(s) over the {BUDGET_MS} ms budget");
}

/// Times `kindling grade` of the lab as a teacher runs it, on the state the solutions left.
fn grade_time(entry: &Entry, env: &Env, labs_dir: &Path) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
    cmd.args(["grade", entry.id(), "--format", "json", "--labs-dir"])
        .arg(labs_dir);
    if let Some(k) = &env.kubeconfig {
        cmd.arg("--kubeconfig").arg(k);
    }
    let started = std::time::Instant::now();
    let out = cmd.output().expect("run kindling grade");
    let took = started.elapsed().as_millis();
    let score = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .map(|v| format!("{}/{}", v["score"], v["maxScore"]))
        .unwrap_or_else(|_| String::from_utf8_lossy(&out.stderr).trim().to_string());
    println!(
        "{:24} {:16} {:>6} ms           budget {GRADE_BUDGET_MS} ms, score {score}",
        entry.id(),
        "(grade)",
        took
    );
}

/// Returns how many steps' median round was over budget.
async fn bench_lab(entry: &Entry, env: &Env) -> usize {
    if let Some(s) = &entry.lab.setup
        && let Err(e) = runner::run("setup", s, env, false).await
    {
        println!("{:24} setup failed: {e}", entry.id());
        return 0;
    }
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut over = 0;
    for step in entry.lab.steps() {
        if !step.graded() {
            continue;
        }
        for c in &step.checks {
            if let Some(CheckKind::Quiz(q)) = c.kind()
                && let Some(question) = entry.lab.question(q)
            {
                answers.insert(q.to_string(), question.answer.value);
            }
        }
        if let Some(s) = &step.solution
            && let Err(e) = runner::run("solution", s, env, false).await
        {
            println!(
                "{:24} {:16} solution failed: {e}",
                entry.id(),
                step.id.value
            );
            return over;
        }
        // The first round may wait out `eventually` while the solution settles; time the rest.
        let ctx = Context::new(entry.lab.clone(), env.clone(), answers.clone());
        let first = checks::run_step(step, &ctx, Lang::En, Some(Duration::from_secs(60))).await;
        if !first.passed {
            println!(
                "{:24} {:16} checks do not pass after the solution",
                entry.id(),
                step.id.value
            );
            return over;
        }
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            // A fresh context per round, as each `lab check` (or shell re-check) makes one.
            let ctx = Context::new(entry.lab.clone(), env.clone(), answers.clone());
            times.push(checks::run_step(step, &ctx, Lang::En, None).await.millis);
        }
        times.sort();
        let median = times[ROUNDS / 2];
        let worst = times[ROUNDS - 1];
        let mark = if median > BUDGET_MS {
            over += 1;
            "  OVER"
        } else {
            ""
        };
        println!(
            "{:24} {:16} {:>6} ms {:>6} ms{mark}",
            entry.id(),
            step.id.value,
            median,
            worst
        );
    }
    over
}
