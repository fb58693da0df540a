//! `lab lint`: proves a lab is fair on real Docker and a real cluster. For each step, in order:
//! every check fails before the solution; every lookalike wrong answer leaves its check failing
//! (then is undone); the solution makes every check pass. Quiz checks are tried with every
//! wrong choice and then the right one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lab::catalog::Entry;
use crate::lab::checks::{self, Context};
use crate::lab::model::{CheckKind, Lang};
use crate::lab::progress::Store;
use crate::lab::runner::{self, Env};
use crate::lab::session;
use crate::progress::Progress;

/// Before any solution, state made by setup has settled; a check that would need longer than
/// this to pass on its own is not waiting on the student.
const FRESH_CAP: Duration = Duration::from_secs(3);
/// How long a lookalike's check keeps retrying: its commands have settled by then (a rollout,
/// kube-proxy's rules), and waiting out a step's full `eventually` for every lookalike would
/// make linting every bundled lab take most of an hour.
const LOOKALIKE_CAP: Duration = Duration::from_secs(10);

/// One step's figures, for the report and the benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: String,
    /// The passing check round after the solution.
    pub check_millis: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct LintReport {
    pub lab: String,
    /// What was proved, one line each.
    pub proved: Vec<String>,
    /// What failed; empty means the lab is fair.
    pub problems: Vec<String>,
    pub steps: Vec<StepTiming>,
    /// A cluster lint created (and the caller may delete).
    #[serde(skip)]
    pub created_cluster: Option<String>,
    pub millis: u64,
}

impl LintReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Lint one lab end to end. `store` gives the lab cluster's kubeconfig location; the work
/// folder is a fresh one under it, and no student progress is read or written.
pub async fn lint(entry: &Entry, store: &Store, lang: Lang, progress: Progress) -> LintReport {
    let started = Instant::now();
    let mut r = LintReport {
        lab: entry.id().to_string(),
        ..Default::default()
    };
    let workdir = store.dir.join("lint-work").join(entry.id());
    let _ = std::fs::remove_dir_all(&workdir);
    let prepared = match session::prepare(entry, store, workdir.clone(), progress).await {
        Ok(p) => p,
        Err(e) => {
            r.problems.push(format!("could not prepare the lab: {e}"));
            return r;
        }
    };
    r.created_cluster = prepared.created_cluster.clone();
    let env = prepared.env;
    if let Err(e) = run_opt("setup", entry.lab.setup.as_deref(), &env).await {
        r.problems.push(e);
    } else {
        steps(entry, &env, lang, progress, &mut r).await;
    }
    if let Err(e) = run_opt("cleanup", entry.lab.cleanup.as_deref(), &env).await {
        r.problems.push(e);
    }
    let _ = std::fs::remove_dir_all(&workdir);
    r.millis = started.elapsed().as_millis() as u64;
    r
}

async fn run_opt(what: &str, script: Option<&str>, env: &Env) -> Result<(), String> {
    match script {
        Some(s) if !s.trim().is_empty() => runner::run(what, s, env, false)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

fn context(entry: &Entry, env: &Env, answers: &BTreeMap<String, usize>) -> Context {
    Context::new(entry.lab.clone(), env.clone(), answers.clone())
}

async fn steps(entry: &Entry, env: &Env, lang: Lang, progress: Progress, r: &mut LintReport) {
    let lab = &entry.lab;
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for (i, step) in lab.steps().iter().enumerate() {
        if !step.graded() {
            continue;
        }
        let sid = &step.id.value;
        let st = progress.step(format!("{}: step {sid}", lab.id()));

        // 1. Nothing passes before the student acts.
        let fresh =
            checks::run_step(step, &context(entry, env, &answers), lang, Some(FRESH_CAP)).await;
        for c in &fresh.checks {
            if c.passed {
                r.problems.push(format!(
                    "step {sid}: check {} passes before the solution ran, so it grades nothing: {}",
                    c.id,
                    c.evidence.join("; ")
                ));
            }
        }
        if fresh.checks.iter().all(|c| !c.passed) {
            r.proved.push(format!(
                "step {sid}: all {} check(s) fail before the solution",
                fresh.checks.len()
            ));
        }

        // 2. Each lookalike leaves its check failing.
        for (k, l) in lab
            .lookalikes
            .iter()
            .enumerate()
            .filter(|(_, l)| l.step.value == *sid)
        {
            let Some(check) = step.checks.iter().find(|c| c.id.value == l.check.value) else {
                continue;
            };
            let what = format!("lookalike {k} ({})", l.why.value.get(lang));
            match runner::run("lookalike", &l.commands.value, env, false).await {
                Err(e) => r
                    .problems
                    .push(format!("step {sid}: {what}: its commands failed: {e}")),
                Ok(_) => {
                    let res = checks::run(
                        check,
                        &context(entry, env, &answers),
                        lang,
                        Some(LOOKALIKE_CAP),
                    )
                    .await;
                    if res.passed {
                        r.problems.push(format!(
                            "step {sid}: {what} passes check {}, which must fail it: {}",
                            check.id.value,
                            res.evidence.join("; ")
                        ));
                    } else {
                        r.proved
                            .push(format!("step {sid}: {what} fails check {}", check.id.value));
                    }
                }
            }
            if let Err(e) = undo(entry, env, i, l.undo.as_deref()).await {
                r.problems.push(format!("step {sid}: undoing {what}: {e}"));
                return;
            }
        }

        // 3. Wrong quiz answers fail; the right one, set as the "solution", passes.
        for c in &step.checks {
            if let Some(CheckKind::Quiz(q)) = c.kind()
                && let Some(question) = lab.question(q)
            {
                for wrong in (0..question.choices.len()).filter(|x| *x != question.answer.value) {
                    let mut a = answers.clone();
                    a.insert(q.to_string(), wrong);
                    if checks::run(c, &context(entry, env, &a), lang, None)
                        .await
                        .passed
                    {
                        r.problems.push(format!(
                            "step {sid}: quiz {q} passes with wrong choice {wrong}"
                        ));
                    }
                }
                answers.insert(q.to_string(), question.answer.value);
            }
        }

        // 4. The solution makes every check pass.
        if let Err(e) = run_opt("solution", step.solution.as_deref(), env).await {
            r.problems.push(format!("step {sid}: {e}"));
            return;
        }
        let solved = checks::run_step(step, &context(entry, env, &answers), lang, None).await;
        r.steps.push(StepTiming {
            step: sid.clone(),
            check_millis: solved.millis,
        });
        let failing: Vec<_> = solved.checks.iter().filter(|c| !c.passed).collect();
        if failing.is_empty() {
            r.proved.push(format!(
                "step {sid}: the solution passes all {} check(s) ({} ms)",
                solved.checks.len(),
                solved.millis
            ));
            st.done();
        } else {
            for c in failing {
                r.problems.push(format!(
                    "step {sid}: check {} still fails after the solution: {}",
                    c.id,
                    c.evidence.join("; ")
                ));
            }
            // Later steps build on this one; their results would only repeat this failure.
            return;
        }
    }
}

/// Back to the state at the start of step `i`: the lookalike's own `undo`, else cleanup,
/// setup and the solutions of the steps before.
async fn undo(entry: &Entry, env: &Env, i: usize, own: Option<&str>) -> Result<(), String> {
    if let Some(u) = own {
        return run_opt("undo", Some(u), env).await;
    }
    run_opt("cleanup", entry.lab.cleanup.as_deref(), env).await?;
    run_opt("setup", entry.lab.setup.as_deref(), env).await?;
    for s in &entry.lab.steps()[..i] {
        run_opt("solution", s.solution.as_deref(), env).await?;
    }
    Ok(())
}
