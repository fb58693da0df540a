//! `kindling class grade`: grade every student's live cluster, one kubeconfig per student,
//! in parallel, with a progress bar.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures::StreamExt;
use kindling::grade::{self, Answers, GradeResult, Options};
use kindling::lab::progress::write_atomic;
use kindling::lab::session::bar;

use super::grade::{LangArg, find_lab, lang, load_key, load_pack};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Every file in --kubeconfigs is one student's kubeconfig; its name without the extension is\nthe student id (ana.kubeconfig → ana). Results go to OUT/<student>-<lab>.json, signed when\n--key-file is given; `kindling class report OUT` turns them into grades.\n\nChecks that look at a student's own Docker engine or shell cannot be run from here; they are\nlisted as not graded (0 points) and the student runs `kindling grade` for those.\n\nExample:\n  kindling class grade --kubeconfigs kubeconfigs/ services-expose --key-file class.key --out results/"
)]
pub struct Args {
    /// The lab to grade.
    pub lab: String,
    /// Folder with one kubeconfig per student (file stem = student id).
    #[arg(long, value_name = "DIR")]
    pub kubeconfigs: PathBuf,
    /// Class key to sign the results with.
    #[arg(long, value_name = "FILE", env = "KINDLING_CLASS_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// A teacher's check pack: extra hidden checks per step.
    #[arg(long = "checks", value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// Folder of students' quiz answer files, <student>.yaml or <student>.json.
    #[arg(long, value_name = "DIR")]
    pub answers_dir: Option<PathBuf>,
    /// Folder to write the results into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many clusters to grade at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// A folder of your own labs (DIR/<track>/<lab>/lab.yaml), added to the bundled ones.
    #[arg(long, value_name = "DIR")]
    pub labs_dir: Option<PathBuf>,
    /// Language of the titles in the results: en or zh (default: from LANG).
    #[arg(long, value_enum)]
    pub lang: Option<LangArg>,
}

/// (student id, kubeconfig) for every file in the folder, sorted by id.
fn students(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "could not read kubeconfigs folder {}; pass a folder holding one kubeconfig per student",
            dir.display()
        )
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !p.is_file() || name.starts_with('.') {
            continue;
        }
        let id = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        grade::validate_student(&id)
            .with_context(|| format!("kubeconfig {} names no usable student", p.display()))?;
        out.push((id, p));
    }
    out.sort();
    anyhow::ensure!(
        !out.is_empty(),
        "kubeconfigs folder {} is empty; put one kubeconfig per student in it, named after the student",
        dir.display()
    );
    Ok(out)
}

fn answers_for(
    dir: Option<&Path>,
    student: &str,
    lab: &kindling::lab::Lab,
) -> anyhow::Result<Answers> {
    let Some(dir) = dir else {
        return Ok(Answers::none());
    };
    for ext in ["yaml", "yml", "json"] {
        let p = dir.join(format!("{student}.{ext}"));
        if p.is_file() {
            return Ok(Answers::load(&p, lab)?);
        }
    }
    Ok(Answers::none())
}

/// Redraw the bar in place on a terminal; elsewhere (CI logs) one line per student.
fn show(done: usize, total: usize, last: &GradeResult, tty: bool) {
    let mut err = std::io::stderr().lock();
    let line = format!(
        "{} graded {} ({}/{})",
        bar(done, total, 30),
        last.student,
        last.score,
        last.max_score
    );
    if tty {
        let _ = write!(err, "\r\x1b[2K{line}");
        if done == total {
            let _ = writeln!(err);
        }
    } else {
        let _ = writeln!(err, "{line}");
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (catalog, index) = find_lab(args.labs_dir.as_deref(), &args.lab)?;
    let entry = &catalog.labs[index];
    let key = load_key(args.key_file.as_deref())?;
    let pack = load_pack(args.checks.as_deref(), entry)?;
    let students = students(&args.kubeconfigs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("could not create {}", args.out.display()))?;
    let workdir = std::env::temp_dir();
    let mut jobs = Vec::new();
    for (student, kubeconfig) in &students {
        jobs.push(Options {
            student: student.clone(),
            kubeconfig: Some(kubeconfig.clone()),
            answers: answers_for(args.answers_dir.as_deref(), student, &entry.lab)?,
            pack: pack.clone(),
            lang: lang(args.lang),
            remote: true,
            workdir: workdir.clone(),
        });
    }
    let total = jobs.len();
    let tty = std::io::stderr().is_terminal();
    let mut results = futures::stream::iter(jobs.iter())
        .map(|opts| grade::grade(entry, opts))
        .buffer_unordered(usize::from(args.jobs));
    let mut done = Vec::new();
    while let Some(mut r) = results.next().await {
        if let Some(key) = &key {
            r.sign(key);
        }
        let path = args.out.join(format!("{}-{}.json", r.student, r.lab.id));
        write_atomic(&path, r.to_json().as_bytes())
            .with_context(|| format!("could not write {}", path.display()))?;
        show(done.len() + 1, total, &r, tty);
        done.push(r);
    }
    done.sort_by(|a, b| a.student.cmp(&b.student));
    for r in &done {
        let stuck = r
            .first_failing_step()
            .map(|s| format!("stuck at {}", s.id))
            .unwrap_or_else(|| "done".into());
        println!(
            "{:<24} {:>4}/{:<4} {stuck}",
            r.student, r.score, r.max_score
        );
    }
    let remote = done
        .first()
        .map(|r| {
            r.steps
                .iter()
                .flat_map(|s| &s.checks)
                .filter(|c| c.not_graded.is_some())
                .count()
        })
        .unwrap_or(0);
    if remote > 0 {
        eprintln!(
            "note: {remote} check(s) of {} need each student's own machine and were not graded here",
            entry.id()
        );
    }
    eprintln!(
        "{} results{} → {}",
        done.len(),
        if key.is_some() {
            ", signed"
        } else {
            ", NOT signed (pass --key-file)"
        },
        args.out.display()
    );
    Ok(())
}
