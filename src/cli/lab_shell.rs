//! `kindling lab shell`: a plain-terminal front end for one lab. The student types real
//! commands (run with `sh -c`, the lab's KUBECONFIG set); after each one the current step is
//! re-checked, and a ✓ with the next step's text appears when it passes.

use std::path::PathBuf;
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context as RlContext, Editor, Helper};

use super::lab::{Common, print_step};
use kindling::lab::catalog::Entry;
use kindling::lab::checks::{self, Context};
use kindling::lab::session::{self, bar};
use kindling::progress::Progress;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Type docker, kubectl and kindling commands as in any shell; kubectl talks to the lab's\ncluster. After each command the current step is checked again.\n\nBuilt-ins:\n  check             check the current step and show what each check saw\n  hint              reveal the next hint\n  next              show the step you are on\n  skip              leave the current step for later and go on\n  answer Q N        answer quiz question Q with choice N\n  status            the steps and your progress\n  cd DIR            change folder\n  quit              leave (progress is kept)"
)]
pub struct Args {
    /// The lab's id (default: the lab last started).
    pub lab: Option<String>,
}

const BUILTINS: &[&str] = &[
    "answer", "cd", "check", "exit", "help", "hint", "next", "quit", "skip", "status",
];
const TOOLS: &[&str] = &["docker", "kubectl", "kindling"];
/// Second words worth completing for each tool.
const DOCKER_WORDS: &[&str] = &[
    "build", "exec", "history", "image", "images", "inspect", "logs", "network", "ps", "pull",
    "push", "rm", "rmi", "run", "start", "stop", "tag", "volume",
];
const KUBECTL_WORDS: &[&str] = &[
    "apply", "create", "delete", "describe", "edit", "exec", "expose", "get", "label", "logs",
    "rollout", "run", "scale", "set",
];
const KINDLING_WORDS: &[&str] = &["create", "delete", "get", "lab", "load"];
/// A re-check after each command must feel instant; `check` waits out `eventually` fully.
const AUTO_CHECK_CAP: Duration = Duration::from_secs(2);

struct ShellHelper {
    questions: Vec<String>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &RlContext<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = &head[start..];
        let before: Vec<&str> = head[..start].split_whitespace().collect();
        let choices: Vec<&str> = match before.as_slice() {
            [] => BUILTINS.iter().chain(TOOLS).copied().collect(),
            ["docker"] => DOCKER_WORDS.to_vec(),
            ["kubectl"] => KUBECTL_WORDS.to_vec(),
            ["kindling"] => KINDLING_WORDS.to_vec(),
            ["answer"] => self.questions.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let pairs = choices
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.to_string(),
                replacement: format!("{c} "),
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

pub async fn run(args: Args, common: &Common, progress: Progress) -> anyhow::Result<()> {
    let catalog = common.catalog()?;
    let entry = common.pick(&catalog, args.lab.as_deref())?;
    let store = &common.store;
    let mut env = session::env(entry, store);
    if !store.load(entry.id())?.started || store.current().as_deref() != Some(entry.id()) {
        env = session::start(entry, store, progress).await?;
    }
    let lang = common.lang;
    println!("{} — {}", entry.id(), entry.lab.title.value.get(lang));
    println!("Type commands as in any shell; `help` lists the built-ins, `quit` leaves.");
    show_current(entry, common);

    let mut rl: Editor<ShellHelper, DefaultHistory> = Editor::new()?;
    rl.set_helper(Some(ShellHelper {
        questions: entry.lab.quiz.iter().map(|q| q.id.value.clone()).collect(),
    }));
    let history = store.dir.join("shell_history");
    let _ = rl.load_history(&history);
    let mut cwd: PathBuf = env.workdir.clone();
    loop {
        let p = store.load(entry.id())?;
        let prompt = match p.current_step(&entry.lab) {
            Some(i) => format!("[{} {}/{}] $ ", entry.id(), i + 1, entry.lab.steps().len()),
            None => format!("[{} ✓] $ ", entry.id()),
        };
        let line = match tokio::task::block_in_place(|| rl.readline(&prompt)) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["quit" | "exit"] => break,
            ["help"] => println!(
                "check, hint, next, skip, answer QUESTION N, status, cd DIR, quit; anything else runs in sh"
            ),
            ["check"] => {
                check_and_advance(entry, common, None).await?;
            }
            ["hint"] => hint(entry, common)?,
            ["next"] => show_current(entry, common),
            ["skip"] => {
                let mut p = store.load(entry.id())?;
                if let Some(i) = p.current_step(&entry.lab) {
                    p.skipped.insert(entry.lab.steps()[i].id.value.clone());
                    store.save(&p)?;
                    println!(
                        "Skipped; `check` still grades it later with `kindling lab check --step`."
                    );
                }
                show_current(entry, common);
            }
            ["status"] => status(entry, common)?,
            ["answer", q, n] => {
                answer(entry, common, q, n)?;
                check_and_advance(entry, common, Some(AUTO_CHECK_CAP)).await?;
            }
            ["cd"] => cwd = env.workdir.clone(),
            ["cd", dir] => {
                let to = cwd.join(dir);
                if to.is_dir() {
                    cwd = to.canonicalize().unwrap_or(to);
                } else {
                    println!("cd: no folder {dir}");
                }
            }
            _ => {
                let mut cmd = std::process::Command::new("sh");
                cmd.arg("-c").arg(line);
                env.apply_std(&mut cmd);
                cmd.current_dir(&cwd);
                match tokio::task::block_in_place(|| cmd.status()) {
                    Ok(_) => {}
                    Err(e) => println!("could not run sh: {e}"),
                }
                // Re-check quietly: only a pass is news.
                let p = store.load(entry.id())?;
                if p.current_step(&entry.lab).is_some() {
                    check_and_advance(entry, common, Some(AUTO_CHECK_CAP)).await?;
                }
            }
        }
    }
    let _ = std::fs::create_dir_all(&store.dir);
    let _ = rl.save_history(&history);
    Ok(())
}

fn show_current(entry: &Entry, common: &Common) {
    match common
        .store
        .load(entry.id())
        .ok()
        .and_then(|p| p.current_step(&entry.lab))
    {
        Some(i) => print_step(entry, i, common.lang),
        None => println!("\n✓ Lab complete."),
    }
}

/// Check the current step. `quiet_cap` is the automatic re-check after a command: it prints
/// only a pass. Returns whether the step passed.
async fn check_and_advance(
    entry: &Entry,
    common: &Common,
    quiet_cap: Option<Duration>,
) -> anyhow::Result<bool> {
    let store = &common.store;
    let p = store.load(entry.id())?;
    let Some(index) = p.current_step(&entry.lab) else {
        println!("✓ Lab complete.");
        return Ok(true);
    };
    let step = &entry.lab.steps()[index];
    let passed = if quiet_cap.is_some() {
        let ctx = Context::new(
            entry.lab.clone(),
            session::env(entry, store),
            p.answers.clone(),
        );
        checks::run_step(step, &ctx, common.lang, quiet_cap)
            .await
            .passed
    } else {
        true
    };
    if !passed {
        return Ok(false);
    }
    let (report, p) = session::check(entry, store, index, common.lang).await?;
    if quiet_cap.is_none() || report.passed {
        for c in &report.checks {
            println!(
                "  {} {}  [{}/{} pt]",
                if c.passed { "✓" } else { "✗" },
                c.title,
                c.earned,
                c.points
            );
            if quiet_cap.is_none() {
                for line in &c.evidence {
                    println!("      {line}");
                }
            }
        }
    }
    if report.passed {
        println!("✓ {}", step.title.value.get(common.lang));
        match p.current_step(&entry.lab) {
            Some(next) => print_step(entry, next, common.lang),
            None => println!(
                "\n✓ Lab complete: {} of {} points.",
                p.points_earned(),
                entry.lab.total_points()
            ),
        }
    } else {
        println!("Not yet; `hint` gives a hint.");
    }
    Ok(report.passed)
}

fn hint(entry: &Entry, common: &Common) -> anyhow::Result<()> {
    let mut p = common.store.load(entry.id())?;
    let Some(index) = p.current_step(&entry.lab) else {
        println!("The lab is complete.");
        return Ok(());
    };
    let step = &entry.lab.steps()[index];
    if step.hints.is_empty() {
        println!("This step has no hints.");
        return Ok(());
    }
    let shown = p.hints.get(&step.id.value).copied().unwrap_or(0);
    let n = (shown + 1).min(step.hints.len());
    println!(
        "Hint {n}/{}: {}",
        step.hints.len(),
        step.hints[n - 1].value.get(common.lang).trim_end()
    );
    p.hints.insert(step.id.value.clone(), n);
    common.store.save(&p)?;
    Ok(())
}

fn status(entry: &Entry, common: &Common) -> anyhow::Result<()> {
    let p = common.store.load(entry.id())?;
    let lab = &entry.lab;
    println!(
        "{}  {} of {} points",
        bar(p.steps_done(lab), lab.steps().len(), 20),
        p.points_earned(),
        lab.total_points()
    );
    let current = p.current_step(lab);
    for (i, s) in lab.steps().iter().enumerate() {
        let mark = if p.done.contains(&s.id.value) {
            "✓"
        } else if current == Some(i) {
            "▶"
        } else {
            " "
        };
        println!("  {mark} {}. {}", i + 1, s.title.value.get(common.lang));
    }
    Ok(())
}

fn answer(entry: &Entry, common: &Common, q: &str, n: &str) -> anyhow::Result<()> {
    let Some(question) = entry.lab.question(q) else {
        println!(
            "no question {q:?}; the questions are {}",
            entry
                .lab
                .quiz
                .iter()
                .map(|q| q.id.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    };
    let Some(i) = super::lab_answer::parse_choice(n, question.choices.len()) else {
        println!(
            "{n:?} is not a choice; answer with a number from 1 to {}",
            question.choices.len()
        );
        return Ok(());
    };
    let mut p = common.store.load(entry.id())?;
    p.answers.insert(q.to_string(), i);
    common.store.save(&p)?;
    println!("Saved answer {} to {q}.", i + 1);
    Ok(())
}
