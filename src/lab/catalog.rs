//! Finding labs: the bundled ones embedded from `labs/` and a teacher's own folders
//! (`--labs-dir DIR`, laid out as `DIR/<track>/<lab>/lab.yaml`).

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::lab::model::{self, Lab, Lang, TRACKS};

static BUNDLED: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/labs");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no lab {id:?}{}; `kindling lab list` shows them all", did_you_mean(.close))]
    Unknown { id: String, close: Vec<String> },
    #[error("labs folder {0} does not exist; pass a folder holding <track>/<lab>/lab.yaml")]
    NoDir(PathBuf),
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no lab named; name one (`kindling lab list` shows them) or start one with `kindling lab start LAB`"
    )]
    NoneNamed,
}

fn did_you_mean(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a lab's files come from.
#[derive(Debug, Clone)]
pub enum Source {
    Bundled(&'static Dir<'static>),
    Disk(PathBuf),
}

/// A lab and its folder.
#[derive(Debug, Clone)]
pub struct Entry {
    pub lab: Lab,
    pub source: Source,
    /// The lab file's name in messages: `labs/docker/publish/lab.yaml` or a real path.
    pub file: String,
}

impl Entry {
    pub fn id(&self) -> &str {
        self.lab.id()
    }

    /// A file of the lab folder, by its path relative to the folder.
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        read_in(&self.source, rel)
    }

    /// A step's Markdown text in `lang`.
    pub fn step_text(&self, step: usize, lang: Lang) -> String {
        let Some(s) = self.lab.steps().get(step) else {
            return String::new();
        };
        let path = s.text.value.get(lang);
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Files under the lab's `files/` folder (relative to it), copied into the work folder.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        match &self.source {
            Source::Bundled(dir) => {
                let root = dir.path().join("files");
                if let Some(files) = BUNDLED.get_dir(&root) {
                    collect_embedded(files, &root, &mut out);
                }
            }
            Source::Disk(dir) => collect_disk(&dir.join("files"), Path::new(""), &mut out),
        }
        out
    }
}

fn collect_embedded(dir: &Dir<'_>, root: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for f in dir.files() {
        let rel = f.path().strip_prefix(root).unwrap_or(f.path());
        out.push((rel.to_path_buf(), f.contents().to_vec()));
    }
    for d in dir.dirs() {
        collect_embedded(d, root, out);
    }
}

fn collect_disk(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let r = rel.join(e.file_name());
        if p.is_dir() {
            collect_disk(&p, &r, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((r, bytes));
        }
    }
}

fn read_in(source: &Source, rel: &str) -> Option<Vec<u8>> {
    // Lab files name paths inside their folder; `..` would escape it.
    if rel.split('/').any(|c| c == "..") || rel.starts_with('/') {
        return None;
    }
    match source {
        Source::Bundled(dir) => BUNDLED
            .get_file(dir.path().join(rel))
            .map(|f| f.contents().to_vec()),
        Source::Disk(dir) => std::fs::read(dir.join(rel)).ok(),
    }
}

/// Every lab found, and every lab file that failed to load (with all its problems).
#[derive(Debug, Default)]
pub struct Catalog {
    pub labs: Vec<Entry>,
    pub broken: Vec<model::Error>,
}

impl Catalog {
    /// The labs embedded in this binary.
    pub fn bundled() -> Catalog {
        let mut c = Catalog::default();
        let mut dirs = Vec::new();
        find_embedded(&BUNDLED, &mut dirs);
        for dir in dirs {
            let Some(file) = BUNDLED.get_file(dir.path().join("lab.yaml")) else {
                continue;
            };
            let name = format!("labs/{}", file.path().display());
            let source = Source::Bundled(dir);
            c.add(&name, &String::from_utf8_lossy(file.contents()), source);
        }
        c.finish();
        c
    }

    /// The labs in a folder: `DIR/<track>/<lab>/lab.yaml`, or DIR itself holding `lab.yaml`.
    pub fn from_dir(root: &Path) -> Result<Catalog> {
        if !root.is_dir() {
            return Err(Error::NoDir(root.to_path_buf()));
        }
        let mut c = Catalog::default();
        let mut dirs = Vec::new();
        find_disk(root, 0, &mut dirs);
        dirs.sort();
        for dir in dirs {
            let path = dir.join("lab.yaml");
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            c.add(&path.display().to_string(), &text, Source::Disk(dir));
        }
        c.finish();
        Ok(c)
    }

    /// Bundled labs, plus a folder's labs when given (a folder's lab replaces a bundled lab
    /// with the same id, so a teacher can adapt one).
    pub fn load(extra: Option<&Path>) -> Result<Catalog> {
        let mut c = Catalog::bundled();
        if let Some(dir) = extra {
            let more = Catalog::from_dir(dir)?;
            let ids: Vec<String> = more.labs.iter().map(|e| e.id().to_string()).collect();
            c.labs.retain(|e| !ids.iter().any(|i| i == e.id()));
            c.labs.extend(more.labs);
            c.broken.extend(more.broken);
            c.finish();
        }
        Ok(c)
    }

    fn add(&mut self, file: &str, text: &str, source: Source) {
        let src = source.clone();
        let exists = move |rel: &str| read_in(&src, rel).is_some();
        match Lab::parse(file, text, &exists) {
            Ok(lab) => {
                if let Some(prev) = self.labs.iter().find(|e| e.id() == lab.id()) {
                    self.broken.push(model::Error::Invalid {
                        file: file.to_string(),
                        problems: vec![format!(
                            "{file}: id: {:?} is already the id of {}; lab ids must be unique",
                            lab.id(),
                            prev.file
                        )],
                    });
                } else {
                    self.labs.push(Entry {
                        lab,
                        source,
                        file: file.to_string(),
                    });
                }
            }
            Err(e) => self.broken.push(e),
        }
    }

    /// Course order: track, then order in the track, then id.
    fn finish(&mut self) {
        let track_pos = |t: &str| TRACKS.iter().position(|x| *x == t).unwrap_or(usize::MAX);
        self.labs.sort_by(|a, b| {
            (track_pos(&a.lab.track.value), a.lab.order, a.id()).cmp(&(
                track_pos(&b.lab.track.value),
                b.lab.order,
                b.id(),
            ))
        });
    }

    pub fn get(&self, id: &str) -> Result<&Entry> {
        self.labs
            .iter()
            .find(|e| e.id() == id)
            .ok_or_else(|| Error::Unknown {
                id: id.to_string(),
                close: self.close_to(id),
            })
    }

    /// Ids a mistyped `id` probably meant.
    pub fn close_to(&self, id: &str) -> Vec<String> {
        let mut scored: Vec<(usize, &str)> = self
            .labs
            .iter()
            .map(|e| (distance(id, e.id()), e.id()))
            .filter(|(d, other)| {
                *d <= 3 || other.contains(id) || (id.len() >= 3 && id.contains(*other))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(3)
            .map(|(_, i)| i.to_string())
            .collect()
    }
}

fn find_embedded(dir: &'static Dir<'static>, out: &mut Vec<&'static Dir<'static>>) {
    for d in dir.dirs() {
        if d.get_file(d.path().join("lab.yaml")).is_some() {
            out.push(d);
        } else {
            find_embedded(d, out);
        }
    }
}

fn find_disk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if dir.join("lab.yaml").is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    if depth >= 3 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                find_disk(&e.path(), depth + 1, out);
            }
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Catalog {
        Catalog::from_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/labs")).unwrap()
    }

    #[test]
    fn the_fixture_labs_load_in_course_order() {
        let c = fixtures();
        assert!(c.broken.is_empty(), "{:?}", c.broken);
        let ids: Vec<&str> = c.labs.iter().map(Entry::id).collect();
        assert_eq!(ids, ["fixture-docker", "fixture-cluster"]);
        let e = c.get("fixture-docker").unwrap();
        assert!(e.step_text(0, Lang::En).starts_with('#'));
        assert!(e.step_text(0, Lang::Zh).starts_with('#'));
    }

    #[test]
    fn an_unknown_lab_names_the_close_ones() {
        let c = fixtures();
        let e = c.get("fixture-dockr").unwrap_err().to_string();
        assert_eq!(
            e,
            "no lab \"fixture-dockr\" (did you mean fixture-docker?); `kindling lab list` shows them all"
        );
        let e = c.get("zzz").unwrap_err().to_string();
        assert_eq!(e, "no lab \"zzz\"; `kindling lab list` shows them all");
    }

    #[test]
    fn every_bundled_lab_loads() {
        let c = Catalog::bundled();
        let problems: Vec<String> = c.broken.iter().map(|e| e.to_string()).collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn paths_cannot_leave_the_lab_folder() {
        let c = fixtures();
        let e = c.get("fixture-docker").unwrap();
        assert!(e.read("lab.yaml").is_some());
        assert!(e.read("../fixture-cluster/lab.yaml").is_none());
    }

    #[test]
    fn edit_distance_counts_single_changes() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("a", "a"), 0);
    }
}
