//! Grading: every graded check of a lab run against live state, scored per step, signed with
//! the class key, rendered for people and CI (text, JSON, JUnit, Gradescope), and collected
//! into a class report.
//!
//! What is graded is the cluster and the Docker engine as they are now, never the progress
//! file, which a student can edit. Quiz answers are the one thing live state cannot show: they
//! come from an answers file the student hands in (`--answers`), else from the answers saved
//! by `kindling lab answer` on the machine being graded; the result records which.

pub mod format;
pub mod pack;
pub mod report;
pub mod sign;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lab::catalog::{Entry, Source};
use crate::lab::checks::{self, Context};
use crate::lab::model::{Check, CheckKind, Lab, Lang, Target};
use crate::lab::runner::Env;

pub use pack::Pack;
pub use sign::{Key, Verdict};

/// Names the shape of a result file; a report refuses files of another format.
pub const FORMAT: &str = "kindling.dev/grade/v1";

/// Grading looks at settled state: a check that is still failing after this is failing.
/// (`lab check` waits a check's whole `eventually`; a grader of thirty students cannot.)
pub const EVENTUALLY_CAP: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read the class key {path}: {source}; pass the key file with --key-file")]
    KeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "class key {path} holds only {len} bytes; make a real one with `head -c 32 /dev/urandom | base64 > {path}`"
    )]
    KeyShort { path: PathBuf, len: usize },
    #[error("could not read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Decode {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error(
        "student id {0:?} is not usable; use letters, digits, '.', '_', '-' or '@' (it names result files)"
    )]
    BadStudent(String),
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One graded result: what a result file holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GradeResult {
    pub format: String,
    /// The kindling version that graded.
    pub kindling: String,
    pub student: String,
    /// RFC 3339, UTC, whole seconds.
    pub graded_at: String,
    pub lab: LabInfo,
    /// Where quiz answers came from: `file:<name>`, `progress` or `none`.
    pub answers_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_checks: Option<PackInfo>,
    pub score: u32,
    pub max_score: u32,
    pub millis: u64,
    pub steps: Vec<StepGrade>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabInfo {
    pub id: String,
    pub title: String,
    /// The lab file's format version (`apiVersion`); labs carry no version of their own, so
    /// `contentHash` is what tells two versions of one lab apart.
    pub version: String,
    /// `sha256:` over every file of the lab folder (paths and contents).
    pub content_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PackInfo {
    pub file: String,
    pub sha256: String,
    pub checks: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepGrade {
    pub id: String,
    pub title: String,
    pub score: u32,
    pub max_score: u32,
    pub passed: bool,
    pub checks: Vec<CheckGrade>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckGrade {
    pub id: String,
    pub title: String,
    pub points: u32,
    pub earned: u32,
    pub passed: bool,
    /// From the teacher's check pack: students never saw it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// Why the check was not run (it needs the student's own machine), when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_graded: Option<String>,
    pub evidence: Vec<String>,
    pub millis: u64,
}

impl GradeResult {
    /// The first step not fully passed: where the student is stuck.
    pub fn first_failing_step(&self) -> Option<&StepGrade> {
        self.steps.iter().find(|s| !s.passed)
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("results serialize")
    }

    /// Sign in place with the class key.
    pub fn sign(&mut self, key: &Key) {
        self.signature = None;
        let mut v = self.to_value();
        sign::sign(&mut v, key);
        self.signature = v.get(sign::SIGNATURE_FIELD).cloned();
    }

    /// Pretty JSON, as result files are written (the signature covers the canonical form, so
    /// indentation does not matter).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results serialize") + "\n"
    }
}

/// Quiz answers for grading, and where they came from.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Question id → choice, 0-based.
    pub choices: BTreeMap<String, usize>,
    pub from: String,
}

impl Answers {
    pub fn none() -> Answers {
        Answers {
            choices: BTreeMap::new(),
            from: "none".into(),
        }
    }

    /// An answers file: a YAML or JSON map of question id to the choice number as students
    /// type it for `kindling lab answer` (from 1), e.g. `{secret-word: 3}`.
    pub fn load(path: &Path, lab: &Lab) -> Result<Answers> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            what: "answers file",
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let raw: BTreeMap<String, usize> =
            serde_saphyr::from_str(&text).map_err(|e| decode_error(&file, &e))?;
        let mut problems = Vec::new();
        let mut choices = BTreeMap::new();
        for (q, n) in raw {
            match lab.question(&q) {
                None => problems.push(format!(
                    "{file}: lab {} has no question {q:?}; its questions are {}",
                    lab.id(),
                    lab.quiz
                        .iter()
                        .map(|q| q.id.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Some(question) if n == 0 || n > question.choices.len() => problems.push(format!(
                    "{file}: {q}: {n} is not a choice; choices count from 1 to {}",
                    question.choices.len()
                )),
                Some(_) => {
                    choices.insert(q, n - 1);
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(file);
        Ok(Answers {
            choices,
            from: format!("file:{name}"),
        })
    }
}

pub(crate) fn decode_error(file: &str, e: &serde_saphyr::Error) -> Error {
    let (line, column, message) = crate::yaml::locate(e);
    Error::Decode {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// What a grading run needs besides the lab.
#[derive(Debug, Clone)]
pub struct Options {
    pub student: String,
    /// The cluster to grade, for labs that have one.
    pub kubeconfig: Option<PathBuf>,
    pub answers: Answers,
    pub pack: Option<Pack>,
    pub lang: Lang,
    /// Grading from afar (`class grade`): the student's Docker engine and shell are out of
    /// reach, so checks that need them are listed as not graded instead of run here.
    pub remote: bool,
    /// Where host commands run (the lab's work folder).
    pub workdir: PathBuf,
}

/// Student ids name result files and CSV rows: keep them plain.
pub fn validate_student(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadStudent(id.to_string()))
    }
}

/// Does this check look at the student's own machine (their Docker engine or shell) rather
/// than the cluster the kubeconfig reaches?
pub fn needs_local_machine(check: &Check) -> bool {
    match check.kind() {
        Some(CheckKind::Docker(_)) => true,
        Some(CheckKind::Exec(e)) => !matches!(e.target.value.parse(), Ok(Target::Pod { .. })),
        Some(CheckKind::Http(h)) => !h
            .from
            .as_ref()
            .is_some_and(|f| matches!(f.value.parse(), Ok(Target::Pod { .. }))),
        Some(CheckKind::Kube(_)) | Some(CheckKind::Quiz(_)) | None => false,
    }
}

/// Run every graded check of the lab (plus the pack's hidden ones) and score them.
pub async fn grade(entry: &Entry, opts: &Options) -> GradeResult {
    let started = Instant::now();
    let mut lab = entry.lab.clone();
    let hidden: BTreeSet<String> = match &opts.pack {
        Some(p) => p.apply(&mut lab),
        None => BTreeSet::new(),
    };
    let env = Env {
        lab: lab.id().to_string(),
        kubeconfig: opts.kubeconfig.clone(),
        workdir: opts.workdir.clone(),
    };
    let ctx = Context::new(lab.clone(), env, opts.answers.choices.clone());
    let lang = opts.lang;
    // Every check of every step at once: a lab's grading takes as long as its slowest check.
    let runs = lab.steps().iter().filter(|s| s.graded()).map(|step| {
        let ctx = &ctx;
        let hidden = &hidden;
        async move {
            let results = futures::future::join_all(step.checks.iter().map(|c| async move {
                let is_hidden = hidden.contains(&c.id.value);
                if opts.remote && needs_local_machine(c) {
                    return CheckGrade {
                        id: c.id.value.clone(),
                        title: c.title.value.get(lang).to_string(),
                        points: c.points,
                        earned: 0,
                        passed: false,
                        hidden: is_hidden,
                        not_graded: Some(NOT_GRADED_REMOTELY.into()),
                        evidence: vec![format!("✗ {NOT_GRADED_REMOTELY}")],
                        millis: 0,
                    };
                }
                let r = checks::run(c, ctx, lang, Some(EVENTUALLY_CAP)).await;
                CheckGrade {
                    id: r.id,
                    title: r.title,
                    points: r.points,
                    earned: r.earned,
                    passed: r.passed,
                    hidden: is_hidden,
                    not_graded: None,
                    evidence: r.evidence,
                    millis: r.millis,
                }
            }))
            .await;
            StepGrade {
                id: step.id.value.clone(),
                title: step.title.value.get(lang).to_string(),
                score: results.iter().map(|c| c.earned).sum(),
                max_score: results.iter().map(|c| c.points).sum(),
                passed: results.iter().all(|c| c.passed),
                checks: results,
            }
        }
    });
    let steps = futures::future::join_all(runs).await;
    let now = jiff::Timestamp::now();
    let graded_at = jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string();
    GradeResult {
        format: FORMAT.into(),
        kindling: env!("CARGO_PKG_VERSION").into(),
        student: opts.student.clone(),
        graded_at,
        lab: LabInfo {
            id: lab.id().to_string(),
            title: lab.title.value.get(lang).to_string(),
            version: lab.api_version.value.clone(),
            content_hash: content_hash(entry),
        },
        answers_from: opts.answers.from.clone(),
        hidden_checks: opts.pack.as_ref().map(|p| PackInfo {
            file: p.file_name.clone(),
            sha256: p.sha256.clone(),
            checks: hidden.len(),
        }),
        score: steps.iter().map(|s| s.score).sum(),
        max_score: steps.iter().map(|s| s.max_score).sum(),
        millis: started.elapsed().as_millis() as u64,
        steps,
        signature: None,
    }
}

/// Evidence for a check `class grade` cannot run from the teacher's machine.
pub const NOT_GRADED_REMOTELY: &str = "not graded: this check needs the student's own Docker engine or shell; have the student run `kindling grade` on their machine";

/// `sha256:` of the lab folder: every file's path (relative, `/`-separated) and contents, in
/// path order, so any edit to the lab (a check, a step text, a prepared file) changes it.
pub fn content_hash(entry: &Entry) -> String {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    match &entry.source {
        Source::Bundled(dir) => collect_bundled(dir, dir.path(), &mut files),
        Source::Disk(dir) => collect_disk(dir, dir, &mut files),
    }
    hash_files(files)
}

fn hash_files(mut files: Vec<(String, Vec<u8>)>) -> String {
    files.sort();
    let mut h = Sha256::new();
    for (path, bytes) in &files {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

fn collect_bundled(dir: &include_dir::Dir<'_>, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for f in dir.files() {
        let rel = f.path().strip_prefix(root).unwrap_or(f.path());
        out.push((slash_path(rel), f.contents().to_vec()));
    }
    for d in dir.dirs() {
        collect_bundled(d, root, out);
    }
}

fn collect_disk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_disk(&p, root, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            out.push((slash_path(rel), bytes));
        }
    }
}

fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::catalog::Catalog;

    pub(crate) fn fixture_result(student: &str, lab: &str, passed: &[bool]) -> GradeResult {
        let checks: Vec<CheckGrade> = passed
            .iter()
            .enumerate()
            .map(|(i, p)| CheckGrade {
                id: format!("check-{i}"),
                title: format!("check number {i} <&>"),
                points: 2,
                earned: if *p { 2 } else { 0 },
                passed: *p,
                hidden: i == 2,
                not_graded: None,
                evidence: vec![format!("saw thing {i}"), "a \"quoted\" line\u{1}".into()],
                millis: 5,
            })
            .collect();
        let steps: Vec<StepGrade> = checks
            .chunks(2)
            .enumerate()
            .map(|(i, c)| StepGrade {
                id: format!("step-{i}"),
                title: format!("Step {i}"),
                score: c.iter().map(|c| c.earned).sum(),
                max_score: c.iter().map(|c| c.points).sum(),
                passed: c.iter().all(|c| c.passed),
                checks: c.to_vec(),
            })
            .collect();
        GradeResult {
            format: FORMAT.into(),
            kindling: "0.1.0".into(),
            student: student.into(),
            graded_at: "2026-11-22T07:00:00Z".into(),
            lab: LabInfo {
                id: lab.into(),
                title: format!("The {lab} lab"),
                version: "kindling.dev/v1alpha1".into(),
                content_hash: "sha256:00".into(),
            },
            answers_from: "none".into(),
            hidden_checks: None,
            score: steps.iter().map(|s| s.score).sum(),
            max_score: steps.iter().map(|s| s.max_score).sum(),
            millis: 12,
            steps,
            signature: None,
        }
    }

    #[test]
    fn a_signed_result_verifies_and_an_edited_one_does_not() {
        let key = Key::from_bytes(b"0123456789abcdef0123");
        let mut r = fixture_result("ana", "lab-a", &[true, false, true]);
        r.sign(&key);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(sign::verify(&v, &key), Verdict::Valid);
        let edited = r.to_json().replace("\"score\": 4", "\"score\": 6");
        assert_ne!(edited, r.to_json());
        let v: serde_json::Value = serde_json::from_str(&edited).unwrap();
        assert_eq!(sign::verify(&v, &key), Verdict::Tampered);
    }

    #[test]
    fn student_ids_must_be_plain() {
        for ok in ["ana", "s-01", "ana.lee@school.edu", "A_B"] {
            validate_student(ok).unwrap();
        }
        for bad in ["", "../x", "a b", ".hidden", "a/b"] {
            let e = validate_student(bad).unwrap_err().to_string();
            assert!(e.contains("not usable"), "{e}");
        }
    }

    #[test]
    fn the_content_hash_changes_with_any_file_of_the_lab() {
        let a = hash_files(vec![("lab.yaml".into(), b"x".to_vec())]);
        let b = hash_files(vec![("lab.yaml".into(), b"y".to_vec())]);
        let c = hash_files(vec![
            ("lab.yaml".into(), b"x".to_vec()),
            ("steps/a.md".into(), vec![]),
        ]);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
        assert_ne!(a, b);
        assert_ne!(a, c);
        // Bundled labs hash their embedded folder: stable and distinct per lab.
        let cat = Catalog::bundled();
        let one = content_hash(cat.get("docker-basics").unwrap());
        assert_eq!(one, content_hash(cat.get("docker-basics").unwrap()));
        assert_ne!(one, content_hash(cat.get("docker-network-modes").unwrap()));
    }

    #[test]
    fn answers_files_count_choices_from_one_and_name_bad_questions() {
        let cat = Catalog::bundled();
        let lab = &cat.get("docker-basics").unwrap().lab;
        let dir = std::env::temp_dir().join(format!("kindling-answers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("answers.yaml");
        std::fs::write(&good, "secret-word: 3\n").unwrap();
        let a = Answers::load(&good, lab).unwrap();
        assert_eq!(a.choices.get("secret-word"), Some(&2));
        assert_eq!(a.from, "file:answers.yaml");
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"secret-word": 9, "nope": 1}"#).unwrap();
        let e = Answers::load(&bad, lab).unwrap_err().to_string();
        assert!(e.contains("no question \"nope\""), "{e}");
        assert!(e.contains("9 is not a choice"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn checks_on_the_students_machine_are_told_apart_from_cluster_checks() {
        let cat = Catalog::bundled();
        let lab = &cat.get("docker-basics").unwrap().lab;
        let kinds: Vec<(String, bool)> = lab
            .steps()
            .iter()
            .flat_map(|s| &s.checks)
            .map(|c| (c.id.value.clone(), needs_local_machine(c)))
            .collect();
        assert!(kinds.contains(&("web-running".into(), true)));
        assert!(kinds.contains(&("notes-inside".into(), true)));
        assert!(kinds.contains(&("secret-word".into(), false)));
    }
}
