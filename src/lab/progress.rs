//! A student's progress, one JSON file per lab under the XDG data folder
//! (`$XDG_DATA_HOME/kindling/progress/<lab>.json`, else `~/.local/share/kindling/...`),
//! written atomically so a crash never leaves half a file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lab::model::Lab;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read progress file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("progress file {path} is damaged ({message}); delete it to start the lab over")]
    Damaged { path: PathBuf, message: String },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kindling's data folder: `$XDG_DATA_HOME/kindling`, else `~/.local/share/kindling`.
pub fn data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return x.join("kindling");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".local/share/kindling")
}

/// One lab's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabProgress {
    pub lab: String,
    #[serde(default)]
    pub started: bool,
    /// Steps whose checks passed.
    #[serde(default)]
    pub done: BTreeSet<String>,
    /// Steps passed over with `skip` (not graded as done).
    #[serde(default)]
    pub skipped: BTreeSet<String>,
    /// Hints revealed, per step.
    #[serde(default)]
    pub hints: BTreeMap<String, usize>,
    /// Quiz answers: question id → choice (0-based).
    #[serde(default)]
    pub answers: BTreeMap<String, usize>,
    /// Points earned, per check id, from the last round that passed its step.
    #[serde(default)]
    pub points: BTreeMap<String, u32>,
}

impl LabProgress {
    pub fn new(lab: &str) -> Self {
        LabProgress {
            lab: lab.into(),
            ..Default::default()
        }
    }

    /// Index of the first step neither done nor skipped; `None` when the lab is finished.
    pub fn current_step(&self, lab: &Lab) -> Option<usize> {
        lab.steps()
            .iter()
            .position(|s| !self.done.contains(&s.id.value) && !self.skipped.contains(&s.id.value))
    }

    pub fn steps_done(&self, lab: &Lab) -> usize {
        lab.steps()
            .iter()
            .filter(|s| self.done.contains(&s.id.value))
            .count()
    }

    pub fn points_earned(&self) -> u32 {
        self.points.values().sum()
    }
}

/// Where progress files live.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Default for Store {
    fn default() -> Self {
        Store { dir: data_dir() }
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    fn file(&self, lab: &str) -> PathBuf {
        self.dir.join("progress").join(format!("{lab}.json"))
    }

    /// The lab's progress; a lab never started has empty progress.
    pub fn load(&self, lab: &str) -> Result<LabProgress> {
        let path = self.file(lab);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Damaged {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LabProgress::new(lab)),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    pub fn save(&self, p: &LabProgress) -> Result<()> {
        let json = serde_json::to_vec_pretty(p).expect("progress serializes");
        write_atomic(&self.file(&p.lab), &json)
    }

    pub fn clear(&self, lab: &str) -> Result<()> {
        let path = self.file(lab);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write { path, source }),
        }
    }

    /// The lab last started, which commands use when no lab is named.
    pub fn current(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("current-lab"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    pub fn set_current(&self, lab: &str) -> Result<()> {
        write_atomic(&self.dir.join("current-lab"), format!("{lab}\n").as_bytes())
    }

    /// Where a lab cluster's kubeconfig is kept.
    pub fn kubeconfig(&self, cluster: &str) -> PathBuf {
        self.dir
            .join("clusters")
            .join(format!("{cluster}.kubeconfig"))
    }

    /// The folder a lab's scripts and shell work in.
    pub fn workdir(&self, lab: &str) -> PathBuf {
        self.dir.join("work").join(lab)
    }
}

/// Write to a temporary file beside `path`, flush it to disk, then rename it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> Store {
        let dir =
            std::env::temp_dir().join(format!("kindling-progress-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Store::new(dir)
    }

    #[test]
    fn progress_round_trips_through_its_file() {
        let store = temp("roundtrip");
        assert_eq!(store.load("web").unwrap(), LabProgress::new("web"));
        let mut p = LabProgress::new("web");
        p.started = true;
        p.done.insert("run".into());
        p.hints.insert("publish".into(), 2);
        p.answers.insert("bridge-ip".into(), 1);
        p.points.insert("web-up".into(), 3);
        store.save(&p).unwrap();
        assert_eq!(store.load("web").unwrap(), p);
        // Nothing but the file itself is left behind.
        let names: Vec<_> = std::fs::read_dir(store.dir.join("progress"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["web.json"]);
        store.set_current("web").unwrap();
        assert_eq!(store.current().as_deref(), Some("web"));
        store.clear("web").unwrap();
        assert_eq!(store.load("web").unwrap(), LabProgress::new("web"));
        let _ = std::fs::remove_dir_all(&store.dir);
    }

    #[test]
    fn a_damaged_file_says_how_to_recover() {
        let store = temp("damaged");
        write_atomic(&store.dir.join("progress/x.json"), b"{not json").unwrap();
        let e = store.load("x").unwrap_err().to_string();
        assert!(e.contains("is damaged") && e.contains("delete it"), "{e}");
        let _ = std::fs::remove_dir_all(&store.dir);
    }

    #[test]
    fn the_data_folder_follows_xdg() {
        // Read-only check of the rule, without changing this process's environment.
        let d = data_dir();
        match std::env::var_os("XDG_DATA_HOME").map(PathBuf::from) {
            Some(x) if x.is_absolute() => assert_eq!(d, x.join("kindling")),
            _ => assert!(d.ends_with(".local/share/kindling"), "{}", d.display()),
        }
    }
}
