//! What the lab commands do, as library calls the CLI, the lab shell and lint share: preparing
//! a lab's images, cluster and work folder, running a step's checks and recording progress.

use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;

use crate::cluster::create::{CreateOptions, create, plan_nodes};
use crate::cluster::{docker, info};
use crate::lab::catalog::Entry;
use crate::lab::checks::{self, Context, StepReport};
use crate::lab::model::{ClusterNeed, Lang};
use crate::lab::progress::{self, LabProgress, Store, write_atomic};
use crate::lab::runner::{self, Env};
use crate::nodeimage::{self, BuildOptions};
use crate::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Docker(#[from] docker::Error),
    #[error("could not create lab cluster {name:?}: {source}")]
    Create {
        name: String,
        source: crate::cluster::create::Error,
    },
    #[error(transparent)]
    Info(#[from] info::Error),
    #[error(transparent)]
    Image(#[from] nodeimage::Error),
    #[error(transparent)]
    Script(#[from] runner::Error),
    #[error(transparent)]
    Progress(#[from] progress::Error),
    #[error("lab cluster config: {0}")]
    Config(String),
    #[error(
        "cluster {name:?} exists with other nodes ({have}) than the lab needs ({want}); delete it with `kindling delete cluster --name {name}` and start the lab again"
    )]
    Shape {
        name: String,
        have: String,
        want: String,
    },
    #[error(
        "node {node} of lab cluster {name:?} is {state}; start it with `docker start {node}` and retry"
    )]
    Stopped {
        name: String,
        node: String,
        state: String,
    },
    #[error("lab {lab} has no step {step:?}; its steps are {steps}")]
    NoStep {
        lab: String,
        step: String,
        steps: String,
    },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long `lab start` waits for a new lab cluster's nodes.
const CLUSTER_WAIT: Duration = Duration::from_secs(180);

/// The environment a lab's commands and checks use (nothing is created).
pub fn env(entry: &Entry, store: &Store) -> Env {
    Env {
        lab: entry.id().to_string(),
        kubeconfig: entry
            .lab
            .needs
            .cluster
            .as_ref()
            .map(|c| store.kubeconfig(&c.name.value)),
        workdir: store.workdir(entry.id()),
    }
}

/// What `prepare` did, so lint can undo only what it made.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub env: Env,
    /// The cluster this call created (not one it found).
    pub created_cluster: Option<String>,
}

/// Make what the lab needs: its images, its cluster (created, or reused when one of that name
/// and shape exists), the kubeconfig file for it, and the work folder with the lab's files.
pub async fn prepare(
    entry: &Entry,
    store: &Store,
    workdir: PathBuf,
    progress: Progress,
) -> Result<Prepared> {
    let mut env = env(entry, store);
    env.workdir = workdir;
    let need_docker = !entry.lab.needs.images.is_empty() || entry.lab.needs.cluster.is_some();
    let mut created_cluster = None;
    if need_docker {
        let docker = docker::connect().await?;
        if !entry.lab.needs.images.is_empty() {
            nodeimage::bundled::ensure(&docker, &BuildOptions::default(), progress).await?;
        }
        if let Some(need) = &entry.lab.needs.cluster {
            let (path, created) = ensure_cluster(&docker, need, store, progress).await?;
            env.kubeconfig = Some(path);
            if created {
                created_cluster = Some(need.name.value.clone());
            }
        }
    }
    std::fs::create_dir_all(&env.workdir).map_err(|source| Error::Write {
        path: env.workdir.clone(),
        source,
    })?;
    for (rel, bytes) in entry.files() {
        let path = env.workdir.join(rel);
        write_atomic(&path, &bytes)?;
    }
    Ok(Prepared {
        env,
        created_cluster,
    })
}

/// Create the lab's cluster unless one of that name exists; returns its kubeconfig file and
/// whether it was created now.
pub async fn ensure_cluster(
    docker: &Docker,
    need: &ClusterNeed,
    store: &Store,
    progress: Progress,
) -> Result<(PathBuf, bool)> {
    let name = need.name.value.clone();
    let config = need.cluster_config().map_err(Error::Config)?;
    let path = store.kubeconfig(&name);
    let existing = info::nodes(docker, &name).await?;
    let created = existing.is_empty();
    if created {
        let opts = CreateOptions {
            name: name.clone(),
            config,
            image: None,
            wait: CLUSTER_WAIT,
            retain: false,
            kubeconfig: path.clone(),
            build: BuildOptions::default(),
        };
        create(docker, &opts, progress)
            .await
            .map_err(|source| Error::Create {
                name: name.clone(),
                source,
            })?;
    } else {
        let mut want: Vec<String> = plan_nodes(&name, &config)
            .into_iter()
            .map(|n| n.name)
            .collect();
        let mut have: Vec<String> = existing.iter().map(|n| n.name.clone()).collect();
        want.sort();
        have.sort();
        if want != have {
            return Err(Error::Shape {
                name,
                have: have.join(", "),
                want: want.join(", "),
            });
        }
        if let Some(n) = existing.iter().find(|n| n.state != "running") {
            return Err(Error::Stopped {
                name,
                node: n.name.clone(),
                state: n.state.clone(),
            });
        }
    }
    let entry = info::kubeconfig(docker, &name, false).await?;
    write_atomic(&path, entry.render().as_bytes())?;
    Ok((path, created))
}

/// `lab start`: prepare, run setup, and make this the current lab.
pub async fn start(entry: &Entry, store: &Store, progress: Progress) -> Result<Env> {
    let prepared = prepare(entry, store, store.workdir(entry.id()), progress).await?;
    if let Some(setup) = &entry.lab.setup {
        let step = progress.step("Running the lab's setup");
        runner::run("setup", setup, &prepared.env, false).await?;
        step.done();
    }
    let mut p = store.load(entry.id())?;
    p.started = true;
    store.save(&p)?;
    store.set_current(entry.id())?;
    Ok(prepared.env)
}

/// Index of step `id`, or the student's current step (the last one when all are done).
pub fn step_index(entry: &Entry, p: &LabProgress, id: Option<&str>) -> Result<usize> {
    match id {
        Some(id) => entry.lab.step_index(id).ok_or_else(|| Error::NoStep {
            lab: entry.id().to_string(),
            step: id.to_string(),
            steps: entry
                .lab
                .steps()
                .iter()
                .map(|s| s.id.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        None => Ok(p
            .current_step(&entry.lab)
            .unwrap_or(entry.lab.steps().len().saturating_sub(1))),
    }
}

/// Run one step's checks; when they all pass, mark the step done and keep its points.
pub async fn check(
    entry: &Entry,
    store: &Store,
    step: usize,
    lang: Lang,
) -> Result<(StepReport, LabProgress)> {
    let mut p = store.load(entry.id())?;
    let ctx = Context::new(entry.lab.clone(), env(entry, store), p.answers.clone());
    let s = &entry.lab.steps()[step];
    let report = checks::run_step(s, &ctx, lang, None).await;
    if report.passed {
        p.done.insert(s.id.value.clone());
        p.skipped.remove(&s.id.value);
        for c in &report.checks {
            p.points.insert(c.id.clone(), c.earned);
        }
        store.save(&p)?;
    }
    Ok((report, p))
}

/// `lab reset`: run the cleanup and forget the progress.
pub async fn reset(entry: &Entry, store: &Store) -> Result<()> {
    if let Some(cleanup) = &entry.lab.cleanup {
        let env = env(entry, store);
        // With the cluster gone, cleanup has nothing to clean there; forgetting still works.
        let cluster_gone = env.kubeconfig.as_ref().is_some_and(|k| !k.is_file());
        if !cluster_gone {
            runner::run("cleanup", cleanup, &env, false).await?;
        }
    }
    store.clear(entry.id())?;
    Ok(())
}

/// A text progress bar: `[██████░░░░] 3/5`.
pub fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(0).min(width);
    format!(
        "[{}{}] {done}/{total}",
        "█".repeat(filled),
        "░".repeat(width - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_fills_in_proportion() {
        assert_eq!(bar(0, 4, 8), "[░░░░░░░░] 0/4");
        assert_eq!(bar(2, 4, 8), "[████░░░░] 2/4");
        assert_eq!(bar(4, 4, 8), "[████████] 4/4");
        assert_eq!(bar(0, 0, 4), "[░░░░] 0/0");
    }
}
