//! The lab file (`lab.yaml`): decoded strictly, then validated with every problem reported at once.
//!
//! Positions come from serde-saphyr's `Spanned`, so a validation problem names the line and
//! column it is about, like a decode error does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

use crate::cluster::config::{Cluster, validate_cluster_name};

pub const API_VERSION: &str = "kindling.dev/v1alpha1";
pub const KIND: &str = "Lab";
/// The course's tracks, in the order they are taught.
pub const TRACKS: &[&str] = &["docker", "images", "architecture", "workloads", "services"];
pub const MIN_MINUTES: u32 = 10;
pub const MAX_MINUTES: u32 = 30;
/// A lab teaches something only if the student does several graded things.
pub const MIN_GRADED_STEPS: usize = 3;
/// Longest `eventually`: a check that needs longer is testing the cluster, not the student.
pub const MAX_EVENTUALLY_SECS: f64 = 300.0;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Each problem is a whole line: `file:line:column: what is wrong and the fix`.
    #[error("{}", .problems.join("\n"))]
    Invalid { file: String, problems: Vec<String> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The language a student reads the lab in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// From `LC_ALL`, `LC_MESSAGES` or `LANG`, as gettext reads them: `zh*` is Chinese.
    pub fn from_env() -> Lang {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return if v.to_ascii_lowercase().starts_with("zh") {
                    Lang::Zh
                } else {
                    Lang::En
                };
            }
        }
        Lang::En
    }
}

/// Text given in both languages (`{en: ..., zh: ...}`); both are required by validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Text {
    #[serde(default)]
    pub en: Option<String>,
    #[serde(default)]
    pub zh: Option<String>,
}

impl Text {
    /// The text in `lang`, else the other language, else "".
    pub fn get(&self, lang: Lang) -> &str {
        let (first, second) = match lang {
            Lang::En => (&self.en, &self.zh),
            Lang::Zh => (&self.zh, &self.en),
        };
        first
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .or(second.as_deref())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lab {
    pub api_version: Spanned<String>,
    pub kind: Spanned<String>,
    pub id: Spanned<String>,
    pub track: Spanned<String>,
    #[serde(default)]
    pub order: u32,
    pub title: Spanned<Text>,
    pub summary: Spanned<Text>,
    pub minutes: Spanned<u32>,
    #[serde(default)]
    pub needs: Needs,
    #[serde(default)]
    pub setup: Option<String>,
    #[serde(default)]
    pub cleanup: Option<String>,
    pub steps: Spanned<Vec<Step>>,
    #[serde(default)]
    pub quiz: Vec<Question>,
    #[serde(default)]
    pub lookalikes: Vec<Lookalike>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Needs {
    #[serde(default)]
    pub images: Vec<Spanned<String>>,
    #[serde(default)]
    pub cluster: Option<ClusterNeed>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterNeed {
    pub name: Spanned<String>,
    /// A kind/Kindling cluster config; one control-plane node when omitted.
    #[serde(default)]
    pub config: Option<Spanned<String>>,
}

impl ClusterNeed {
    /// The decoded cluster config (validation has already proved it decodes).
    pub fn cluster_config(&self) -> std::result::Result<Cluster, String> {
        match &self.config {
            None => Ok(Cluster::default_config()),
            Some(c) => Cluster::parse("needs.cluster.config", &c.value).map_err(|e| e.to_string()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub id: Spanned<String>,
    pub title: Spanned<Text>,
    /// Paths of the step's Markdown files, relative to the lab folder.
    pub text: Spanned<Text>,
    #[serde(default)]
    pub hints: Vec<Spanned<Text>>,
    #[serde(default)]
    pub checks: Vec<Check>,
    #[serde(default)]
    pub solution: Option<String>,
}

impl Step {
    pub fn graded(&self) -> bool {
        !self.checks.is_empty()
    }
    pub fn points(&self) -> u32 {
        self.checks.iter().map(|c| c.points).sum()
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    pub id: Spanned<String>,
    #[serde(default = "one")]
    pub points: u32,
    pub title: Spanned<Text>,
    /// Keep retrying up to this many seconds before failing.
    #[serde(default)]
    pub eventually: Option<f64>,
    #[serde(default)]
    pub docker: Option<DockerCheck>,
    #[serde(default)]
    pub kube: Option<KubeCheck>,
    #[serde(default)]
    pub exec: Option<ExecCheck>,
    #[serde(default)]
    pub http: Option<HttpCheck>,
    #[serde(default)]
    pub quiz: Option<Spanned<String>>,
}

/// The one kind a check is (validation guarantees exactly one).
#[derive(Debug, Clone, Copy)]
pub enum CheckKind<'a> {
    Docker(&'a DockerCheck),
    Kube(&'a KubeCheck),
    Exec(&'a ExecCheck),
    Http(&'a HttpCheck),
    Quiz(&'a str),
}

impl Check {
    pub fn kinds(&self) -> Vec<CheckKind<'_>> {
        let mut v = Vec::new();
        if let Some(d) = &self.docker {
            v.push(CheckKind::Docker(d));
        }
        if let Some(k) = &self.kube {
            v.push(CheckKind::Kube(k));
        }
        if let Some(e) = &self.exec {
            v.push(CheckKind::Exec(e));
        }
        if let Some(h) = &self.http {
            v.push(CheckKind::Http(h));
        }
        if let Some(q) = &self.quiz {
            v.push(CheckKind::Quiz(&q.value));
        }
        v
    }

    /// The check's kind; `None` only for a file that failed validation.
    pub fn kind(&self) -> Option<CheckKind<'_>> {
        let k = self.kinds();
        if k.len() == 1 {
            k.first().copied()
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerCheck {
    #[serde(default)]
    pub container: Option<ContainerCheck>,
    #[serde(default)]
    pub network: Option<NetworkCheck>,
    #[serde(default)]
    pub image: Option<ImageCheck>,
    #[serde(default)]
    pub volume: Option<VolumeCheck>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerCheck {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub state: Option<Spanned<String>>,
    #[serde(default)]
    pub network_mode: Option<String>,
    #[serde(default)]
    pub publish: Vec<Publish>,
    #[serde(default)]
    pub mounts: Vec<MountMatch>,
    #[serde(default)]
    pub fields: Vec<FieldMatch>,
}

pub const CONTAINER_STATES: &[&str] = &[
    "running",
    "exited",
    "created",
    "paused",
    "restarting",
    "dead",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Publish {
    pub container_port: u16,
    #[serde(default)]
    pub host_port: Option<u16>,
    #[serde(default)]
    pub protocol: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountMatch {
    pub destination: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The volume's name (type volume).
    #[serde(default)]
    pub name: Option<String>,
    /// The host path (type bind).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkCheck {
    pub name: String,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub fields: Vec<FieldMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageCheck {
    pub reference: String,
    #[serde(default)]
    pub min_layers: Option<usize>,
    #[serde(default)]
    pub max_layers: Option<usize>,
    #[serde(default, rename = "maxSizeMB")]
    pub max_size_mb: Option<f64>,
    #[serde(default)]
    pub history_contains: Vec<String>,
    #[serde(default)]
    pub fields: Vec<FieldMatch>,
    /// Files read out of the image without running it.
    #[serde(default)]
    pub files: Vec<FileMatch>,
    /// The image's own command, run in a fresh container, prints this.
    #[serde(default)]
    pub runs: Option<RunMatch>,
    /// The image's own command, started in a fresh container, answers HTTP like this.
    #[serde(default)]
    pub serves: Option<ServeMatch>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunMatch {
    /// A regex on what the command prints (stdout and stderr).
    pub output: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeMatch {
    pub port: u16,
    #[serde(default = "root_path")]
    pub path: String,
    /// Text the response body contains.
    pub body: String,
}

fn root_path() -> String {
    "/".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeCheck {
    pub name: String,
    /// No container, running or stopped, has the volume mounted.
    #[serde(default)]
    pub unused: bool,
    #[serde(default)]
    pub fields: Vec<FieldMatch>,
    /// Files read out of the volume (paths inside it) without running anything.
    #[serde(default)]
    pub files: Vec<FileMatch>,
}

/// A file in an image or volume and what it must hold: a substring, a regex, or (neither)
/// only that it is there.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileMatch {
    pub path: Spanned<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub matches: Option<Spanned<String>>,
}

/// A matcher on a dotted path into an object's JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldMatch {
    pub path: Spanned<String>,
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    #[serde(default)]
    pub matches: Option<Spanned<String>>,
    #[serde(default)]
    pub exists: Option<bool>,
    #[serde(default)]
    pub contains: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeCheck {
    pub kind: Spanned<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub selector: Option<Spanned<String>>,
    #[serde(default)]
    pub count: Option<Count>,
    #[serde(default)]
    pub fields: Vec<FieldMatch>,
    #[serde(default)]
    pub condition: Option<Condition>,
}

/// `count: 3`, or `count: {min: 1}` / `{max: 2}` / both.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Count {
    Exact(u32),
    Range(CountRange),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CountRange {
    #[serde(default)]
    pub min: Option<u32>,
    #[serde(default)]
    pub max: Option<u32>,
}

impl Count {
    pub fn admits(&self, n: usize) -> bool {
        let n = n as u32;
        match self {
            Count::Exact(e) => n == *e,
            Count::Range(r) => r.min.is_none_or(|m| n >= m) && r.max.is_none_or(|m| n <= m),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Exact(e) => write!(f, "exactly {e}"),
            Count::Range(CountRange {
                min: Some(a),
                max: Some(b),
            }) => write!(f, "{a} to {b}"),
            Count::Range(CountRange { min: Some(a), .. }) => write!(f, "at least {a}"),
            Count::Range(CountRange { max: Some(b), .. }) => write!(f, "at most {b}"),
            Count::Range(_) => write!(f, "any number"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "true_string")]
    pub status: String,
}

fn true_string() -> String {
    "True".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecCheck {
    #[serde(rename = "in")]
    pub target: Spanned<String>,
    pub command: String,
    #[serde(default)]
    pub exit_code: i64,
    #[serde(default)]
    pub output: Option<Spanned<String>>,
    #[serde(default)]
    pub not_output: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub body: Option<Spanned<String>>,
}

fn ok_status() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Question {
    pub id: Spanned<String>,
    pub question: Spanned<Text>,
    pub choices: Vec<Spanned<Text>>,
    pub answer: Spanned<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lookalike {
    pub step: Spanned<String>,
    pub check: Spanned<String>,
    pub why: Spanned<Text>,
    pub commands: Spanned<String>,
    /// Shell that removes what `commands` made; without it lint restores the step's starting
    /// state by running cleanup, setup and the earlier steps' solutions.
    #[serde(default)]
    pub undo: Option<String>,
}

/// Where an `exec` check runs or an `http` check comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host,
    /// A Docker container by name: a node (`node:`) or any container (`container:`).
    Container(String),
    Pod {
        namespace: String,
        name: String,
        container: Option<String>,
    },
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "{s:?} is not a place to run in; use host, node:<node container>, container:<name> or pod:<namespace>/<pod>[/<container>]"
            )
        };
        if s == "host" {
            return Ok(Target::Host);
        }
        if let Some(c) = s
            .strip_prefix("node:")
            .or_else(|| s.strip_prefix("container:"))
        {
            return if c.is_empty() {
                Err(bad())
            } else {
                Ok(Target::Container(c.into()))
            };
        }
        if let Some(p) = s.strip_prefix("pod:") {
            let parts: Vec<&str> = p.split('/').collect();
            return match parts.as_slice() {
                [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(Target::Pod {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    container: None,
                }),
                [ns, name, c] if !ns.is_empty() && !name.is_empty() && !c.is_empty() => {
                    Ok(Target::Pod {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        container: Some(c.to_string()),
                    })
                }
                _ => Err(bad()),
            };
        }
        Err(bad())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host => f.write_str("host"),
            Target::Container(c) => write!(f, "container {c}"),
            Target::Pod {
                namespace,
                name,
                container: Some(c),
            } => write!(f, "pod {namespace}/{name} container {c}"),
            Target::Pod {
                namespace, name, ..
            } => write!(f, "pod {namespace}/{name}"),
        }
    }
}

impl Lab {
    /// Decode `text` strictly (named `file` in errors) and validate it. `exists` says whether
    /// a path relative to the lab folder names a file (for the steps' Markdown).
    pub fn parse(file: &str, text: &str, exists: &dyn Fn(&str) -> bool) -> Result<Lab> {
        let (lab, errors) = crate::yaml::decode_all::<Lab>(text);
        let mut problems: Vec<String> = errors
            .iter()
            .map(|e| format!("{file}:{}:{}: {}", e.line, e.column, e.message))
            .collect();
        // What decoded without the bad entries is validated too: every problem at once.
        problems.extend(lab.iter().flat_map(|l| l.problems(file, exists)));
        match lab {
            Some(lab) if problems.is_empty() => Ok(lab),
            _ => Err(Error::Invalid {
                file: file.to_string(),
                problems,
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.id.value
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps.value
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps().iter().position(|s| s.id.value == id)
    }

    pub fn question(&self, id: &str) -> Option<&Question> {
        self.quiz.iter().find(|q| q.id.value == id)
    }

    pub fn total_points(&self) -> u32 {
        self.steps().iter().map(Step::points).sum()
    }

    pub fn graded_steps(&self) -> usize {
        self.steps().iter().filter(|s| s.graded()).count()
    }

    /// Every problem, each as `file:line:column: message`.
    pub fn problems(&self, file: &str, exists: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut p = Problems {
            file,
            list: Vec::new(),
        };
        if self.api_version.value != API_VERSION {
            p.at(
                &self.api_version,
                format!(
                    "apiVersion: must be {API_VERSION:?}, not {:?}",
                    self.api_version.value
                ),
            );
        }
        if self.kind.value != KIND {
            p.at(
                &self.kind,
                format!("kind: must be {KIND:?}, not {:?}", self.kind.value),
            );
        }
        if let Err(e) = check_id(&self.id.value) {
            p.at(&self.id, format!("id: {e}"));
        }
        if !TRACKS.contains(&self.track.value.as_str()) {
            p.at(
                &self.track,
                format!(
                    "track: {:?} is not a track; use one of {}",
                    self.track.value,
                    TRACKS.join(", ")
                ),
            );
        }
        p.text(&self.title, "title");
        p.text(&self.summary, "summary");
        if !(MIN_MINUTES..=MAX_MINUTES).contains(&self.minutes.value) {
            p.at(
                &self.minutes,
                format!(
                    "minutes: {} is outside {MIN_MINUTES}-{MAX_MINUTES}; split a longer lab or merge a shorter one",
                    self.minutes.value
                ),
            );
        }
        self.needs_problems(&mut p);

        let quiz_ids: BTreeSet<&str> = self.quiz.iter().map(|q| q.id.value.as_str()).collect();
        let mut step_ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut check_ids: BTreeMap<&str, String> = BTreeMap::new();
        let mut graded_quiz: BTreeSet<&str> = BTreeSet::new();
        if self.steps().is_empty() {
            p.at(&self.steps, "steps: a lab needs at least one step");
        }
        for (i, step) in self.steps().iter().enumerate() {
            let at = format!("steps[{i}]");
            if let Err(e) = check_id(&step.id.value) {
                p.at(&step.id, format!("{at}.id: {e}"));
            }
            if let Some(prev) = step_ids.insert(&step.id.value, i) {
                p.at(
                    &step.id,
                    format!(
                        "{at}.id: {:?} is already the id of steps[{prev}]; step ids must be unique",
                        step.id.value
                    ),
                );
            }
            p.text(&step.title, &format!("{at}.title"));
            p.text(&step.text, &format!("{at}.text"));
            for (lang, path) in [("en", &step.text.value.en), ("zh", &step.text.value.zh)] {
                if let Some(path) = path
                    && !path.trim().is_empty()
                {
                    if !path.ends_with(".md") {
                        p.at(
                            &step.text,
                            format!("{at}.text.{lang}: {path:?} should name a Markdown file (.md)"),
                        );
                    } else if !exists(path) {
                        p.at(
                            &step.text,
                            format!(
                                "{at}.text.{lang}: file {path:?} does not exist; create it beside lab.yaml"
                            ),
                        );
                    }
                }
            }
            for (j, h) in step.hints.iter().enumerate() {
                p.text(h, &format!("{at}.hints[{j}]"));
            }
            let mut needs_solution = false;
            for (j, check) in step.checks.iter().enumerate() {
                let cat = format!("{at}.checks[{j}]");
                if let Err(e) = check_id(&check.id.value) {
                    p.at(&check.id, format!("{cat}.id: {e}"));
                }
                if let Some(prev) = check_ids.insert(&check.id.value, cat.clone()) {
                    p.at(
                        &check.id,
                        format!(
                            "{cat}.id: {:?} is already the id of {prev}; check ids must be unique in a lab",
                            check.id.value
                        ),
                    );
                }
                p.text(&check.title, &format!("{cat}.title"));
                if check.points == 0 || check.points > 100 {
                    p.at(
                        &check.id,
                        format!("{cat}.points: {} is outside 1-100", check.points),
                    );
                }
                if let Some(e) = check.eventually
                    && !(e > 0.0 && e <= MAX_EVENTUALLY_SECS)
                {
                    p.at(
                        &check.id,
                        format!("{cat}.eventually: {e} is outside 0-{MAX_EVENTUALLY_SECS} seconds"),
                    );
                }
                let kinds = check.kinds();
                match kinds.as_slice() {
                    [] => p.at(
                        &check.id,
                        format!("{cat}: has no check kind; add exactly one of docker, kube, exec, http, quiz"),
                    ),
                    [kind] => {
                        if !matches!(kind, CheckKind::Quiz(_)) {
                            needs_solution = true;
                        }
                        self.kind_problems(&mut p, &cat, check, *kind, &quiz_ids, &mut graded_quiz);
                    }
                    many => p.at(
                        &check.id,
                        format!(
                            "{cat}: has {} kinds ({}); a check is exactly one of docker, kube, exec, http, quiz — split it into several checks",
                            many.len(),
                            many.iter().map(kind_name).collect::<Vec<_>>().join(", ")
                        ),
                    ),
                }
            }
            if needs_solution && step.solution.as_deref().is_none_or(|s| s.trim().is_empty()) {
                p.at(
                    &step.id,
                    format!("{at}.solution: a graded step needs a solution (lint runs it to prove the checks can pass)"),
                );
            }
        }
        if self.graded_steps() < MIN_GRADED_STEPS {
            p.at(
                &self.steps,
                format!(
                    "steps: {} graded step(s); a lab needs at least {MIN_GRADED_STEPS} steps with checks",
                    self.graded_steps()
                ),
            );
        }

        let mut seen_q: BTreeSet<&str> = BTreeSet::new();
        for (i, q) in self.quiz.iter().enumerate() {
            let at = format!("quiz[{i}]");
            if let Err(e) = check_id(&q.id.value) {
                p.at(&q.id, format!("{at}.id: {e}"));
            }
            if !seen_q.insert(&q.id.value) {
                p.at(
                    &q.id,
                    format!(
                        "{at}.id: {:?} is used by another question; question ids must be unique",
                        q.id.value
                    ),
                );
            }
            p.text(&q.question, &format!("{at}.question"));
            if q.choices.len() < 2 {
                p.at(
                    &q.id,
                    format!("{at}.choices: a question needs at least 2 choices"),
                );
            }
            for (j, c) in q.choices.iter().enumerate() {
                p.text(c, &format!("{at}.choices[{j}]"));
            }
            if q.answer.value >= q.choices.len() {
                p.at(
                    &q.answer,
                    format!(
                        "{at}.answer: {} is not a choice; answers count from 0 (0-{})",
                        q.answer.value,
                        q.choices.len().saturating_sub(1)
                    ),
                );
            }
            if !graded_quiz.contains(q.id.value.as_str()) {
                p.at(
                    &q.id,
                    format!(
                        "{at}: no check grades question {:?}; add `quiz: {}` as a check of a step",
                        q.id.value, q.id.value
                    ),
                );
            }
        }

        for (i, l) in self.lookalikes.iter().enumerate() {
            let at = format!("lookalikes[{i}]");
            match self.step_index(&l.step.value) {
                None => p.at(
                    &l.step,
                    format!(
                        "{at}.step: no step {:?}; use one of {}",
                        l.step.value,
                        self.steps()
                            .iter()
                            .map(|s| s.id.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(si) => {
                    let step = &self.steps()[si];
                    match step.checks.iter().find(|c| c.id.value == l.check.value) {
                        None => p.at(
                            &l.check,
                            format!(
                                "{at}.check: step {:?} has no check {:?}; use one of {}",
                                l.step.value,
                                l.check.value,
                                step.checks.iter().map(|c| c.id.value.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ),
                        Some(c) if matches!(c.kind(), Some(CheckKind::Quiz(_))) => p.at(
                            &l.check,
                            format!("{at}.check: {:?} is a quiz check; lookalikes are commands, so name a docker, kube, exec or http check", l.check.value),
                        ),
                        Some(_) => {}
                    }
                }
            }
            p.text(&l.why, &format!("{at}.why"));
            if l.commands.value.trim().is_empty() {
                p.at(&l.commands, format!("{at}.commands: must not be empty"));
            }
        }
        p.list
    }

    fn needs_problems(&self, p: &mut Problems) {
        for img in &self.needs.images {
            let want = crate::cluster::load::normalize(&img.value);
            if !crate::nodeimage::bundled::BUNDLED
                .iter()
                .any(|(r, _)| crate::cluster::load::normalize(r) == want)
            {
                p.at(
                    img,
                    format!(
                        "needs.images: {:?} is not a bundled image; use one of {}",
                        img.value,
                        crate::nodeimage::bundled::BUNDLED
                            .iter()
                            .map(|(r, _)| *r)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        let has_cluster = self.needs.cluster.is_some();
        if let Some(c) = &self.needs.cluster {
            if let Err(e) = validate_cluster_name(&c.name.value) {
                p.at(&c.name, format!("needs.cluster.name: {e}"));
            }
            if let Some(cfg) = &c.config
                && let Err(e) = Cluster::parse("config", &cfg.value)
            {
                for line in e.to_string().lines() {
                    let line = line.trim().trim_start_matches("- ");
                    if !line.is_empty() && !line.ends_with("invalid cluster config:") {
                        p.at(cfg, format!("needs.cluster.config: {line}"));
                    }
                }
            }
        }
        if !has_cluster {
            for (i, step) in self.steps().iter().enumerate() {
                for (j, check) in step.checks.iter().enumerate() {
                    let needs = match check.kind() {
                        Some(CheckKind::Kube(_)) => true,
                        Some(CheckKind::Exec(e)) => {
                            matches!(e.target.value.parse(), Ok(Target::Pod { .. }))
                        }
                        Some(CheckKind::Http(h)) => h
                            .from
                            .as_ref()
                            .is_some_and(|f| matches!(f.value.parse(), Ok(Target::Pod { .. }))),
                        _ => false,
                    };
                    if needs {
                        p.at(
                            &check.id,
                            format!("steps[{i}].checks[{j}]: talks to a cluster, but the lab has no needs.cluster; add one"),
                        );
                    }
                }
            }
        }
    }

    fn kind_problems<'a>(
        &'a self,
        p: &mut Problems,
        at: &str,
        check: &Check,
        kind: CheckKind<'a>,
        quiz_ids: &BTreeSet<&str>,
        graded_quiz: &mut BTreeSet<&'a str>,
    ) {
        match kind {
            CheckKind::Docker(d) => {
                let at = format!("{at}.docker");
                let n = [
                    d.container.is_some(),
                    d.network.is_some(),
                    d.image.is_some(),
                    d.volume.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if n != 1 {
                    p.at(
                        &check.id,
                        format!("{at}: give exactly one of container, network, image, volume (found {n})"),
                    );
                }
                if let Some(c) = &d.container {
                    if c.name.is_none() && c.image.is_none() {
                        p.at(
                            &check.id,
                            format!(
                                "{at}.container: give a name or an image to find the container by"
                            ),
                        );
                    }
                    if let Some(s) = &c.state
                        && !CONTAINER_STATES.contains(&s.value.as_str())
                    {
                        p.at(
                            s,
                            format!(
                                "{at}.container.state: {:?} is not a state; use one of {}",
                                s.value,
                                CONTAINER_STATES.join(", ")
                            ),
                        );
                    }
                    for (k, pb) in c.publish.iter().enumerate() {
                        if pb.container_port == 0 {
                            p.at(
                                &check.id,
                                format!(
                                    "{at}.container.publish[{k}].containerPort: must be 1-65535"
                                ),
                            );
                        }
                        if let Some(proto) = &pb.protocol
                            && !matches!(proto.value.as_str(), "tcp" | "udp" | "sctp")
                        {
                            p.at(
                                proto,
                                format!("{at}.container.publish[{k}].protocol: use tcp, udp or sctp, not {:?}", proto.value),
                            );
                        }
                    }
                    for (k, m) in c.mounts.iter().enumerate() {
                        if let Some(t) = &m.kind
                            && !matches!(t.as_str(), "volume" | "bind" | "tmpfs")
                        {
                            p.at(
                                &check.id,
                                format!("{at}.container.mounts[{k}].type: use volume, bind or tmpfs, not {t:?}"),
                            );
                        }
                    }
                    p.fields(&c.fields, &format!("{at}.container"));
                }
                if let Some(nw) = &d.network {
                    p.fields(&nw.fields, &format!("{at}.network"));
                }
                if let Some(img) = &d.image {
                    if let (Some(a), Some(b)) = (img.min_layers, img.max_layers)
                        && a > b
                    {
                        p.at(
                            &check.id,
                            format!("{at}.image: minLayers {a} is above maxLayers {b}"),
                        );
                    }
                    p.fields(&img.fields, &format!("{at}.image"));
                    p.files(&img.files, &format!("{at}.image"));
                    if let Some(r) = &img.runs {
                        p.regex(&r.output, &format!("{at}.image.runs.output"));
                    }
                }
                if let Some(v) = &d.volume {
                    p.fields(&v.fields, &format!("{at}.volume"));
                    p.files(&v.files, &format!("{at}.volume"));
                }
            }
            CheckKind::Kube(k) => {
                let at = format!("{at}.kube");
                if k.kind.value.trim().is_empty() {
                    p.at(&k.kind, format!("{at}.kind: must not be empty"));
                }
                if k.name.is_some() && k.selector.is_some() {
                    p.at(
                        &k.kind,
                        format!("{at}: give a name or a selector, not both"),
                    );
                }
                if let Some(s) = &k.selector
                    && let Err(e) = crate::lab::checks::kube::parse_selector(&s.value)
                {
                    p.at(s, format!("{at}.selector: {e}"));
                }
                p.fields(&k.fields, &at);
            }
            CheckKind::Exec(e) => {
                let at = format!("{at}.exec");
                if let Err(err) = e.target.value.parse::<Target>() {
                    p.at(&e.target, format!("{at}.in: {err}"));
                }
                if e.command.trim().is_empty() {
                    p.at(&e.target, format!("{at}.command: must not be empty"));
                }
                for (name, re) in [("output", &e.output), ("notOutput", &e.not_output)] {
                    if let Some(re) = re {
                        p.regex(re, &format!("{at}.{name}"));
                    }
                }
            }
            CheckKind::Http(h) => {
                let at = format!("{at}.http");
                let from = h.from.as_ref().map(|f| (f, f.value.parse::<Target>()));
                if let Some((f, Err(err))) = &from {
                    p.at(*f, format!("{at}.from: {err}"));
                }
                let from_host = from
                    .as_ref()
                    .is_none_or(|(_, t)| matches!(t, Ok(Target::Host)));
                let url_ok = h.url.value.starts_with("http://")
                    || (h.url.value.starts_with("https://") && !from_host);
                if !url_ok {
                    p.at(
                        &h.url,
                        format!(
                            "{at}.url: {:?} must start with http://{}",
                            h.url.value,
                            if from_host {
                                " (https is checked only from a pod or container)"
                            } else {
                                " or https://"
                            }
                        ),
                    );
                }
                if !(100..=599).contains(&h.status) {
                    p.at(
                        &h.url,
                        format!("{at}.status: {} is not an HTTP status", h.status),
                    );
                }
                if let Some(re) = &h.body {
                    p.regex(re, &format!("{at}.body"));
                }
            }
            CheckKind::Quiz(q) => {
                if quiz_ids.contains(q) {
                    if let Some(question) = self.quiz.iter().find(|x| x.id.value == q) {
                        graded_quiz.insert(question.id.value.as_str());
                    }
                } else {
                    let loc = check.quiz.as_ref().expect("a quiz kind has its field");
                    p.at(
                        loc,
                        format!(
                            "{at}.quiz: no question {q:?} in quiz; use one of {}",
                            if quiz_ids.is_empty() {
                                "(none defined)".to_string()
                            } else {
                                quiz_ids.iter().copied().collect::<Vec<_>>().join(", ")
                            }
                        ),
                    );
                }
            }
        }
    }
}

fn kind_name(k: &CheckKind) -> &'static str {
    match k {
        CheckKind::Docker(_) => "docker",
        CheckKind::Kube(_) => "kube",
        CheckKind::Exec(_) => "exec",
        CheckKind::Http(_) => "http",
        CheckKind::Quiz(_) => "quiz",
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lab, step, check and question ids: lower-case letters, digits and '-'.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if crate::node::apiserver::validation::is_dns1123_label(id) {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a valid id; use 1-63 lower-case letters, digits and '-'"
        ))
    }
}

struct Problems<'a> {
    file: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn loc(&mut self, l: Location, message: impl fmt::Display) {
        if l.line() == 0 {
            self.list.push(format!("{}: {message}", self.file));
        } else {
            self.list.push(format!(
                "{}:{}:{}: {message}",
                self.file,
                l.line(),
                l.column()
            ));
        }
    }

    fn at<T>(&mut self, s: &Spanned<T>, message: impl fmt::Display) {
        self.loc(s.referenced, message)
    }

    /// Both languages present and not blank.
    fn text(&mut self, t: &Spanned<Text>, at: &str) {
        for (lang, v) in [("en", &t.value.en), ("zh", &t.value.zh)] {
            if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
                self.at(
                    t,
                    format!(
                        "{at}.{lang}: missing {} text; every text is given in en and zh",
                        if lang == "en" { "English" } else { "Chinese" }
                    ),
                );
            }
        }
    }

    fn regex(&mut self, re: &Spanned<String>, at: &str) {
        if let Err(e) = regex::Regex::new(&re.value) {
            self.at(
                re,
                format!("{at}: not a valid regex: {}", one_line(&e.to_string())),
            );
        }
    }

    fn files(&mut self, files: &[FileMatch], at: &str) {
        for (i, f) in files.iter().enumerate() {
            let at = format!("{at}.files[{i}]");
            if !f.path.value.starts_with('/') {
                self.at(
                    &f.path,
                    format!("{at}.path: {:?} must be absolute", f.path.value),
                );
            }
            if f.contains.is_some() && f.matches.is_some() {
                self.at(
                    &f.path,
                    format!("{at}: give at most one of contains, matches"),
                );
            }
            if let Some(re) = &f.matches {
                self.regex(re, &format!("{at}.matches"));
            }
        }
    }

    fn fields(&mut self, fields: &[FieldMatch], at: &str) {
        for (i, f) in fields.iter().enumerate() {
            let at = format!("{at}.fields[{i}]");
            if f.path.value.trim().is_empty() {
                self.at(&f.path, format!("{at}.path: must not be empty"));
            }
            let n = [
                f.equals.is_some(),
                f.matches.is_some(),
                f.exists.is_some(),
                f.contains.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                self.at(
                    &f.path,
                    format!(
                        "{at}: give exactly one of equals, matches, exists, contains (found {n})"
                    ),
                );
            }
            for (name, v) in [("equals", &f.equals), ("contains", &f.contains)] {
                if let Some(v) = v
                    && (v.is_object() || v.is_array() || v.is_null())
                {
                    self.at(
                        &f.path,
                        format!("{at}.{name}: must be a string, number or boolean"),
                    );
                }
            }
            if let Some(re) = &f.matches {
                self.regex(re, &format!("{at}.matches"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (String, String) {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        (name.to_string(), std::fs::read_to_string(&path).unwrap())
    }

    fn problems_of(name: &str) -> Vec<String> {
        let (file, text) = fixture(name);
        match Lab::parse(&file, &text, &|p| {
            p.starts_with("steps/") && !p.contains("missing")
        }) {
            Err(Error::Invalid { problems, .. }) => problems,
            other => panic!("{name}: expected validation problems, got {other:?}"),
        }
    }

    fn assert_has(problems: &[String], line: &str) {
        assert!(
            problems.iter().any(|p| p == line),
            "missing\n  {line}\nin\n  {}",
            problems.join("\n  ")
        );
    }

    const MINIMAL: &str = r#"apiVersion: kindling.dev/v1alpha1
kind: Lab
id: mini
track: docker
title: {en: Mini, zh: 迷你}
summary: {en: A lab, zh: 一个实验}
minutes: 10
steps:
  - id: a
    title: {en: A, zh: 甲}
    text: {en: steps/a.en.md, zh: steps/a.zh.md}
    checks:
      - {id: a1, title: {en: x, zh: x}, exec: {in: host, command: "true"}}
    solution: "true"
  - id: b
    title: {en: B, zh: 乙}
    text: {en: steps/b.en.md, zh: steps/b.zh.md}
    checks:
      - {id: b1, points: 2, title: {en: x, zh: x}, docker: {container: {name: web, state: running}}}
    solution: "true"
  - id: c
    title: {en: C, zh: 丙}
    text: {en: steps/c.en.md, zh: steps/c.zh.md}
    checks:
      - {id: c1, title: {en: x, zh: x}, quiz: q1}
quiz:
  - id: q1
    question: {en: Q?, zh: 问?}
    choices: [{en: yes, zh: 是}, {en: no, zh: 否}]
    answer: 1
"#;

    #[test]
    fn a_minimal_lab_decodes_with_its_steps_and_points() {
        let lab = Lab::parse("lab.yaml", MINIMAL, &|_| true).unwrap();
        assert_eq!(lab.id(), "mini");
        assert_eq!(lab.steps().len(), 3);
        assert_eq!(lab.total_points(), 4);
        assert_eq!(lab.graded_steps(), 3);
        assert!(matches!(
            lab.steps()[2].checks[0].kind(),
            Some(CheckKind::Quiz("q1"))
        ));
        assert_eq!(lab.title.value.get(Lang::Zh), "迷你");
        assert_eq!(lab.question("q1").unwrap().answer.value, 1);
    }

    #[test]
    fn a_missing_markdown_file_is_named_with_its_position() {
        let problems = match Lab::parse("lab.yaml", MINIMAL, &|p| p != "steps/b.zh.md") {
            Err(Error::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "lab.yaml:17:11: steps[1].text.zh: file \"steps/b.zh.md\" does not exist"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_field_is_a_decode_error_at_its_line_and_column() {
        let p = problems_of("invalid-lab-unknown-field.yaml");
        assert!(
            p[0].starts_with("invalid-lab-unknown-field.yaml:12:5: unknown field `hint`"),
            "{p:?}"
        );
    }

    #[test]
    fn a_wrong_type_is_a_decode_error_at_its_line_and_column() {
        let p = problems_of("invalid-lab-wrong-type.yaml");
        assert!(
            p[0].starts_with("invalid-lab-wrong-type.yaml:7:10: "),
            "{p:?}"
        );
        // Only that: `minutes` is missing because its bad value was stepped over.
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn every_decode_error_is_reported_at_once_with_the_validation_problems() {
        let p = problems_of("invalid-lab-decode-errors.yaml");
        for at in [
            "invalid-lab-decode-errors.yaml:8:1: unknown field `author`",
            "invalid-lab-decode-errors.yaml:13:5: unknown field `hint`",
            "invalid-lab-decode-errors.yaml:15:5: unknown field `points`",
            "invalid-lab-decode-errors.yaml:19:12: expected sequence start",
            "invalid-lab-decode-errors.yaml:20:5: unknown field `timeout`",
        ] {
            assert!(
                p.iter().any(|l| l.starts_with(at)),
                "{at} missing:\n{}",
                p.join("\n")
            );
        }
        // And what the rest of the file gets wrong: two reading steps are not a lab.
        assert!(
            p.iter()
                .any(|l| l.contains("a lab needs at least 3 steps with checks")),
            "{}",
            p.join("\n")
        );
        assert_eq!(p.len(), 6, "{}", p.join("\n"));
    }

    #[test]
    fn missing_chinese_text_is_reported_for_every_text() {
        let p = problems_of("invalid-lab-missing-zh.yaml");
        assert_has(
            &p,
            "invalid-lab-missing-zh.yaml:5:8: title.zh: missing Chinese text; every text is given in en and zh",
        );
        assert_has(
            &p,
            "invalid-lab-missing-zh.yaml:13:9: steps[0].hints[0].zh: missing Chinese text; every text is given in en and zh",
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn a_check_with_no_kind_or_two_kinds_is_refused() {
        let p = problems_of("invalid-lab-bad-check.yaml");
        assert_has(
            &p,
            "invalid-lab-bad-check.yaml:13:13: steps[0].checks[0]: has no check kind; add exactly one of docker, kube, exec, http, quiz",
        );
        assert_has(
            &p,
            "invalid-lab-bad-check.yaml:15:13: steps[0].checks[1]: has 2 kinds (docker, exec); a check is exactly one of docker, kube, exec, http, quiz — split it into several checks",
        );
        assert_has(
            &p,
            "invalid-lab-bad-check.yaml:35:28: steps[2].checks[1].docker.image.files[0].path: \"relative.txt\" must be absolute",
        );
        assert_has(
            &p,
            "invalid-lab-bad-check.yaml:35:28: steps[2].checks[1].docker.image.files[0]: give at most one of contains, matches",
        );
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn duplicate_ids_are_reported_where_the_second_one_is() {
        let p = problems_of("invalid-lab-duplicate-ids.yaml");
        assert_has(
            &p,
            "invalid-lab-duplicate-ids.yaml:17:9: steps[1].id: \"run\" is already the id of steps[0]; step ids must be unique",
        );
        assert_has(
            &p,
            "invalid-lab-duplicate-ids.yaml:21:13: steps[1].checks[0].id: \"up\" is already the id of steps[0].checks[0]; check ids must be unique in a lab",
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn every_problem_in_a_file_is_reported_at_once() {
        let p = problems_of("invalid-lab-many-problems.yaml");
        for line in [
            "invalid-lab-many-problems.yaml:1:13: apiVersion: must be \"kindling.dev/v1alpha1\", not \"kindling.dev/v1\"",
            "invalid-lab-many-problems.yaml:3:5: id: \"Bad_Id\" is not a valid id; use 1-63 lower-case letters, digits and '-'",
            "invalid-lab-many-problems.yaml:4:8: track: \"networking\" is not a track; use one of docker, images, architecture, workloads, services",
            "invalid-lab-many-problems.yaml:7:10: minutes: 45 is outside 10-30; split a longer lab or merge a shorter one",
            "invalid-lab-many-problems.yaml:9:12: needs.images: \"nginx:latest\" is not a bundled image; use one of kindling/pause:3.10, kindling/toolbox:latest, kindling/whoami:latest, kindling/registry:latest",
            "invalid-lab-many-problems.yaml:13:11: steps[0].text.en: file \"steps/missing.en.md\" does not exist; create it beside lab.yaml",
            "invalid-lab-many-problems.yaml:17:48: steps[0].checks[0].docker.container.state: \"up\" is not a state; use one of running, exited, created, paused, restarting, dead",
            "invalid-lab-many-problems.yaml:18:84: steps[0].checks[1].exec.output: not a valid regex: regex parse error: ( ^ error: unclosed group",
            "invalid-lab-many-problems.yaml:19:14: steps[0].checks[2]: talks to a cluster, but the lab has no needs.cluster; add one",
            "invalid-lab-many-problems.yaml:11:9: steps[0].solution: a graded step needs a solution (lint runs it to prove the checks can pass)",
            "invalid-lab-many-problems.yaml:11:3: steps: 1 graded step(s); a lab needs at least 3 steps with checks",
            "invalid-lab-many-problems.yaml:24:13: quiz[0].answer: 2 is not a choice; answers count from 0 (0-1)",
            "invalid-lab-many-problems.yaml:21:9: quiz[0]: no check grades question \"q\"; add `quiz: q` as a check of a step",
            "invalid-lab-many-problems.yaml:26:11: lookalikes[0].step: no step \"nope\"; use one of s",
            "invalid-lab-many-problems.yaml:31:12: lookalikes[1].check: step \"s\" has no check \"ghost\"; use one of state, out, pods",
        ] {
            assert_has(&p, line);
        }
        assert_eq!(p.len(), 15, "{}", p.join("\n"));
    }

    #[test]
    fn targets_parse_hosts_containers_and_pods() {
        assert_eq!("host".parse::<Target>().unwrap(), Target::Host);
        assert_eq!(
            "node:lab-worker".parse::<Target>().unwrap(),
            Target::Container("lab-worker".into())
        );
        assert_eq!(
            "pod:default/web/app".parse::<Target>().unwrap(),
            Target::Pod {
                namespace: "default".into(),
                name: "web".into(),
                container: Some("app".into())
            }
        );
        for bad in ["pod:web", "node:", "vm:x", "pod:a/b/c/d", ""] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_admit_exact_numbers_and_ranges() {
        assert!(Count::Exact(3).admits(3));
        assert!(!Count::Exact(3).admits(2));
        let r = Count::Range(CountRange {
            min: Some(1),
            max: Some(2),
        });
        assert!(r.admits(1) && r.admits(2) && !r.admits(0) && !r.admits(3));
        #[derive(Deserialize)]
        struct W {
            c: Count,
        }
        let w: W = serde_saphyr::from_str("c: {min: 2}").unwrap();
        assert_eq!(
            w.c,
            Count::Range(CountRange {
                min: Some(2),
                max: None
            })
        );
        let w: W = serde_saphyr::from_str("c: 0").unwrap();
        assert_eq!(w.c, Count::Exact(0));
    }

    #[test]
    fn the_language_comes_from_the_locale() {
        // Text falls back to the other language when one is blank.
        let t = Text {
            en: Some("hi".into()),
            zh: Some(" ".into()),
        };
        assert_eq!(t.get(Lang::Zh), "hi");
    }
}
