//! `kindling learn`'s lab source: the TUI crate's [`LabSource`] on the lab engine (catalog,
//! progress, checks, session), doing what the lab shell does for each key, plus the live
//! cluster watches.

pub mod cluster;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures::StreamExt;

use kindling_tui::{
    CheckView, ClusterSnapshot, LabDetail, LabSource, LabSummary, Question, Round, StepInfo,
    StepState,
};

use crate::lab::catalog::{Catalog, Entry};
use crate::lab::checks::{self, Context};
use crate::lab::model::{CheckKind, Lang};
use crate::lab::progress::{LabProgress, Store};
use crate::lab::session;
use crate::progress::Progress;

/// The lab shell's cap on an automatic re-check (a failing `eventually` check must not hold
/// the round up); a pass is then confirmed by a full `session::check`, as the shell does.
const AUTO_CHECK_CAP: Duration = Duration::from_secs(2);

enum Watch {
    Running(Arc<cluster::Watches>),
    Failed(String),
}

pub struct Source {
    pub catalog: Catalog,
    pub store: Store,
    pub lang: Lang,
    /// Passed on to `kindling lab shell`.
    pub labs_dir: Option<PathBuf>,
    rt: tokio::runtime::Handle,
    watches: Mutex<HashMap<String, Watch>>,
    /// Moves on every Docker engine event (containers, networks, images, volumes).
    docker_changes: Arc<AtomicU64>,
    docker_events: Once,
}

impl Source {
    /// Must be called inside the Tokio runtime the engine's futures will run on.
    pub fn new(catalog: Catalog, store: Store, lang: Lang, labs_dir: Option<PathBuf>) -> Source {
        Source {
            catalog,
            store,
            lang,
            labs_dir,
            rt: tokio::runtime::Handle::current(),
            watches: Mutex::new(HashMap::new()),
            docker_changes: Arc::new(AtomicU64::new(0)),
            docker_events: Once::new(),
        }
    }

    fn entry(&self, lab: &str) -> Result<&Entry, String> {
        self.catalog.get(lab).map_err(|e| e.to_string())
    }

    fn progress(&self, lab: &str) -> Result<LabProgress, String> {
        self.store.load(lab).map_err(|e| e.to_string())
    }
}

/// Follow the Docker engine's event stream for as long as the process runs, counting events;
/// an engine that is down or restarts is tried again every few seconds.
async fn follow_docker_events(changes: Arc<AtomicU64>) {
    loop {
        if let Ok(docker) = crate::cluster::docker::connect().await {
            let mut events = std::pin::pin!(docker.events(None));
            while let Some(Ok(_)) = events.next().await {
                changes.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

impl LabSource for Source {
    fn labs(&self) -> Vec<LabSummary> {
        let lang = self.lang;
        self.catalog
            .labs
            .iter()
            .map(|e| {
                let p = self
                    .store
                    .load(e.id())
                    .unwrap_or_else(|_| LabProgress::new(e.id()));
                LabSummary {
                    id: e.id().to_string(),
                    track: e.lab.track.value.clone(),
                    title: e.lab.title.value.get(lang).to_string(),
                    summary: e.lab.summary.value.get(lang).trim().to_string(),
                    minutes: e.lab.minutes.value,
                    steps: e.lab.steps().len(),
                    done: p.steps_done(&e.lab),
                    points: e.lab.total_points(),
                    earned: p.points_earned(),
                    started: p.started,
                }
            })
            .collect()
    }

    fn open(&self, lab: &str) -> Result<LabDetail, String> {
        let entry = self.entry(lab)?;
        let p = self.progress(lab)?;
        let lang = self.lang;
        let current = p.current_step(&entry.lab);
        let steps = entry
            .lab
            .steps()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let id = &s.id.value;
                let state = if p.done.contains(id) {
                    StepState::Done
                } else if current == Some(i) {
                    StepState::Current
                } else if p.skipped.contains(id) {
                    StepState::Skipped
                } else {
                    StepState::Todo
                };
                let questions = s
                    .checks
                    .iter()
                    .filter_map(|c| match c.kind() {
                        Some(CheckKind::Quiz(q)) => entry.lab.question(q),
                        _ => None,
                    })
                    .map(|q| Question {
                        id: q.id.value.clone(),
                        text: q.question.value.get(lang).to_string(),
                        choices: q
                            .choices
                            .iter()
                            .map(|c| c.value.get(lang).to_string())
                            .collect(),
                        answered: p.answers.get(&q.id.value).copied(),
                    })
                    .collect();
                StepInfo {
                    id: id.clone(),
                    title: s.title.value.get(lang).to_string(),
                    text: entry.step_text(i, lang),
                    graded: s.graded(),
                    points: s.points(),
                    state,
                    hints: s
                        .hints
                        .iter()
                        .map(|h| h.value.get(lang).to_string())
                        .collect(),
                    hints_shown: p.hints.get(id).copied().unwrap_or(0).min(s.hints.len()),
                    questions,
                }
            })
            .collect();
        Ok(LabDetail {
            id: lab.to_string(),
            title: entry.lab.title.value.get(lang).to_string(),
            steps,
            current,
            points: entry.lab.total_points(),
            earned: p.points_earned(),
            has_cluster: entry.lab.needs.cluster.is_some(),
            // The lab shell starts a lab that is not the current one again; so does the TUI.
            started: p.started && self.store.current().as_deref() == Some(lab),
        })
    }

    fn start(&self, lab: &str) -> Result<(), String> {
        let entry = self.entry(lab)?;
        self.rt
            .block_on(session::start(entry, &self.store, Progress::default()))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn reveal_hint(&self, lab: &str, step: usize) -> Result<usize, String> {
        let entry = self.entry(lab)?;
        let mut p = self.progress(lab)?;
        let Some(s) = entry.lab.steps().get(step) else {
            return Ok(0);
        };
        let shown = p.hints.get(&s.id.value).copied().unwrap_or(0);
        let n = (shown + 1).min(s.hints.len());
        p.hints.insert(s.id.value.clone(), n);
        self.store.save(&p).map_err(|e| e.to_string())?;
        Ok(n)
    }

    fn check(&self, lab: &str) -> Result<Option<Round>, String> {
        let entry = self.entry(lab)?;
        let p = self.progress(lab)?;
        let Some(index) = p.current_step(&entry.lab) else {
            return Ok(None);
        };
        let step = &entry.lab.steps()[index];
        let ctx = Context::new(
            entry.lab.clone(),
            session::env(entry, &self.store),
            p.answers.clone(),
        );
        let mut report = self.rt.block_on(checks::run_step(
            step,
            &ctx,
            self.lang,
            Some(AUTO_CHECK_CAP),
        ));
        if report.passed {
            report = self
                .rt
                .block_on(session::check(entry, &self.store, index, self.lang))
                .map_err(|e| e.to_string())?
                .0;
        }
        Ok(Some(Round {
            step: index,
            passed: report.passed,
            millis: report.millis,
            checks: report
                .checks
                .into_iter()
                .map(|c| CheckView {
                    title: c.title,
                    passed: c.passed,
                    points: c.points,
                    earned: c.earned,
                    evidence: c.evidence,
                })
                .collect(),
        }))
    }

    fn answer(&self, lab: &str, question: &str, choice: usize) -> Result<(), String> {
        let entry = self.entry(lab)?;
        let q = entry
            .lab
            .question(question)
            .ok_or_else(|| format!("lab {lab} has no question {question:?}"))?;
        if choice >= q.choices.len() {
            return Err(format!(
                "question {question} has {} choices",
                q.choices.len()
            ));
        }
        let mut p = self.progress(lab)?;
        p.answers.insert(question.to_string(), choice);
        self.store.save(&p).map_err(|e| e.to_string())
    }

    fn shell(&self, lab: &str) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("lab").arg("shell").arg(lab);
        cmd.arg("--lang").arg(match self.lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        });
        if let Some(dir) = &self.labs_dir {
            cmd.arg("--labs-dir").arg(dir);
        }
        let status = cmd
            .status()
            .map_err(|e| format!("could not start the lab shell: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the lab shell exited with {status}"))
        }
    }

    fn cluster(&self, lab: &str) -> Option<ClusterSnapshot> {
        let entry = self.entry(lab).ok()?;
        let need = entry.lab.needs.cluster.as_ref()?;
        let kubeconfig = self.store.kubeconfig(&need.name.value);
        let mut watches = self.watches.lock().expect("watches lock");
        if !watches.contains_key(lab) {
            if !kubeconfig.is_file() {
                return Some(ClusterSnapshot {
                    note: Some(format!(
                        "no lab cluster yet; it is created when the lab starts ({})",
                        kubeconfig.display()
                    )),
                    ..Default::default()
                });
            }
            let w = match self.rt.block_on(cluster::Watches::start(&kubeconfig)) {
                Ok(w) => Watch::Running(Arc::new(w)),
                Err(e) => Watch::Failed(e),
            };
            watches.insert(lab.to_string(), w);
        }
        Some(match &watches[lab] {
            Watch::Running(w) => w.snapshot(),
            Watch::Failed(e) => ClusterSnapshot {
                note: Some(e.clone()),
                ..Default::default()
            },
        })
    }

    fn changes(&self, lab: &str) -> u64 {
        self.docker_events.call_once(|| {
            self.rt
                .spawn(follow_docker_events(self.docker_changes.clone()));
        });
        let cluster = match self.watches.lock().expect("watches lock").get(lab) {
            Some(Watch::Running(w)) => w.changes(),
            _ => 0,
        };
        self.docker_changes.load(Ordering::Relaxed) + cluster
    }
}
