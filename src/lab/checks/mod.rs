//! Running a lab's checks: one file per kind, each returning what it saw as evidence.

pub mod docker;
pub mod exec;
pub mod fields;
pub mod http;
pub mod kube;
pub mod quiz;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::lab::model::{Check, CheckKind, Lab, Lang, Step};
use crate::lab::runner::Env;

/// How often `eventually` retries a failing check.
const RETRY_EVERY: Duration = Duration::from_millis(300);

/// What one attempt of a check found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub passed: bool,
    /// Lines saying what the check saw, for the student and the teacher.
    pub evidence: Vec<String>,
}

impl Outcome {
    pub fn pass(evidence: Vec<String>) -> Self {
        Outcome {
            passed: true,
            evidence,
        }
    }
    pub fn fail(evidence: Vec<String>) -> Self {
        Outcome {
            passed: false,
            evidence,
        }
    }
    /// A check that could not even look (no Docker, no cluster): failed, saying why.
    pub fn unable(why: impl Into<String>) -> Self {
        Outcome::fail(vec![why.into()])
    }
}

/// One check's result as `lab check` prints it and `-o json` emits it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub passed: bool,
    pub points: u32,
    pub earned: u32,
    pub evidence: Vec<String>,
    pub millis: u64,
}

/// A step's check round.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    pub millis: u64,
}

/// What checks talk to, connected lazily and once per round.
pub struct Context {
    pub kubeconfig: Option<PathBuf>,
    pub env: Env,
    /// Saved quiz answers (question id → choice).
    pub answers: BTreeMap<String, usize>,
    pub lab: Lab,
    docker: OnceCell<Result<bollard::Docker, String>>,
    kube: OnceCell<Result<::kube::Client, String>>,
    pub(crate) kinds: kube::KindCache,
}

impl Context {
    pub fn new(lab: Lab, env: Env, answers: BTreeMap<String, usize>) -> Self {
        Context {
            kubeconfig: env.kubeconfig.clone(),
            env,
            answers,
            lab,
            docker: OnceCell::new(),
            kube: OnceCell::new(),
            kinds: Default::default(),
        }
    }

    pub async fn docker(&self) -> Result<&bollard::Docker, String> {
        self.docker
            .get_or_init(|| async {
                crate::cluster::docker::connect()
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    pub async fn kube(&self) -> Result<&::kube::Client, String> {
        self.kube
            .get_or_init(|| async {
                let Some(path) = &self.kubeconfig else {
                    return Err(
                        "the lab has no cluster; `kindling lab start` creates it".to_string()
                    );
                };
                let kc = ::kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    format!(
                        "cannot read the lab's kubeconfig {} ({e}); run `kindling lab start` again",
                        path.display()
                    )
                })?;
                let config = ::kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| format!("bad kubeconfig {}: {e}", path.display()))?;
                let mut config = config;
                // A check round has a budget of a few hundred milliseconds; a dead API server
                // must fail the check quickly rather than hang it.
                config.connect_timeout = Some(Duration::from_secs(3));
                config.read_timeout = Some(Duration::from_secs(10));
                ::kube::Client::try_from(config).map_err(|e| e.to_string())
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// One attempt of one check.
pub async fn attempt(check: &Check, ctx: &Context) -> Outcome {
    match check.kind() {
        Some(CheckKind::Docker(d)) => docker::run(d, ctx).await,
        Some(CheckKind::Kube(k)) => kube::run(k, ctx).await,
        Some(CheckKind::Exec(e)) => exec::run(e, ctx).await,
        Some(CheckKind::Http(h)) => http::run(h, ctx).await,
        Some(CheckKind::Quiz(q)) => quiz::run(q, ctx),
        None => Outcome::unable("this check has no single kind; run `kindling lab lint`"),
    }
}

/// Run a check, retrying a failure until its `eventually` deadline (`cap` shortens it).
pub async fn run(check: &Check, ctx: &Context, lang: Lang, cap: Option<Duration>) -> CheckResult {
    let started = Instant::now();
    let mut wait = check
        .eventually
        .map(Duration::from_secs_f64)
        .unwrap_or_default();
    if let Some(cap) = cap {
        wait = wait.min(cap);
    }
    let deadline = started + wait;
    let outcome = loop {
        let o = attempt(check, ctx).await;
        if o.passed || Instant::now() + RETRY_EVERY > deadline {
            break o;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    };
    CheckResult {
        id: check.id.value.clone(),
        title: check.title.value.get(lang).to_string(),
        passed: outcome.passed,
        points: check.points,
        earned: if outcome.passed { check.points } else { 0 },
        evidence: outcome.evidence,
        millis: started.elapsed().as_millis() as u64,
    }
}

/// Every check of a step, run concurrently (the round's time is its slowest check).
pub async fn run_step(step: &Step, ctx: &Context, lang: Lang, cap: Option<Duration>) -> StepReport {
    let started = Instant::now();
    let checks =
        futures::future::join_all(step.checks.iter().map(|c| run(c, ctx, lang, cap))).await;
    StepReport {
        step: step.id.value.clone(),
        passed: checks.iter().all(|c| c.passed),
        checks,
        millis: started.elapsed().as_millis() as u64,
    }
}

/// Cut long output to its first lines for evidence.
pub(crate) fn first_lines(s: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .take(n)
        .map(|l| {
            if l.chars().count() > 160 {
                format!("{}…", l.chars().take(160).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect();
    if s.lines().count() > n {
        v.push(format!("… ({} more lines)", s.lines().count() - n));
    }
    v
}
