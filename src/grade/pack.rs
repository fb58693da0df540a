//! A teacher's check pack (`--checks FILE`): extra checks per step, in lab.yaml's check syntax,
//! that students never see; they count like the lab's own checks and are marked hidden.
//!
//! ```yaml
//! apiVersion: kindling.dev/v1alpha1
//! kind: CheckPack
//! lab: docker-network-modes
//! steps:
//!   - step: bridge
//!     checks:
//!       - id: bridge-has-ip
//!         points: 1
//!         title: {en: ..., zh: ...}
//!         exec: {in: host, command: ..., output: ...}
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::{Error, Result, decode_error};
use crate::lab::model::{API_VERSION, Check, Lab};

pub const KIND: &str = "CheckPack";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    lab: Spanned<String>,
    steps: Vec<PackStep>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PackStep {
    step: Spanned<String>,
    checks: Vec<Check>,
}

/// A decoded, validated check pack.
#[derive(Debug, Clone)]
pub struct Pack {
    pub file_name: String,
    pub sha256: String,
    /// (step id, its extra checks)
    pub steps: Vec<(String, Vec<Check>)>,
}

impl Pack {
    pub fn load(path: &Path, lab: &Lab) -> Result<Pack> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            what: "check pack",
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Pack::parse(
            &path.display().to_string(),
            &name,
            &String::from_utf8_lossy(&bytes),
            lab,
        )
    }

    /// Decode strictly, then validate the pack's checks exactly as lab.yaml's are validated
    /// (by merging them into a copy of the lab), every problem reported together.
    pub fn parse(file: &str, name: &str, text: &str, lab: &Lab) -> Result<Pack> {
        let f: File = serde_saphyr::from_str(text).map_err(|e| decode_error(file, &e))?;
        let at = |s: &Spanned<String>| {
            format!("{file}:{}:{}", s.referenced.line(), s.referenced.column())
        };
        let mut problems = Vec::new();
        if f.api_version.value != API_VERSION {
            problems.push(format!(
                "{}: apiVersion: must be {API_VERSION:?}, not {:?}",
                at(&f.api_version),
                f.api_version.value
            ));
        }
        if f.kind.value != KIND {
            problems.push(format!(
                "{}: kind: must be {KIND:?}, not {:?}",
                at(&f.kind),
                f.kind.value
            ));
        }
        if f.lab.value != lab.id() {
            problems.push(format!(
                "{}: lab: this pack is for {:?}, not {:?}; grade that lab or use its pack",
                at(&f.lab),
                f.lab.value,
                lab.id()
            ));
        }
        for s in &f.steps {
            if lab.step_index(&s.step.value).is_none() {
                problems.push(format!(
                    "{}: step: lab {} has no step {:?}; its steps are {}",
                    at(&s.step),
                    lab.id(),
                    s.step.value,
                    lab.steps()
                        .iter()
                        .map(|s| s.id.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if s.checks.is_empty() {
                problems.push(format!(
                    "{}: checks: give at least one check for step {:?}",
                    at(&s.step),
                    s.step.value
                ));
            }
        }
        let pack = Pack {
            file_name: name.to_string(),
            sha256: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
            steps: f
                .steps
                .into_iter()
                .map(|s| (s.step.value, s.checks))
                .collect(),
        };
        if problems.is_empty() {
            let mut merged = lab.clone();
            pack.apply(&mut merged);
            // The lab itself is valid, so what is wrong now came with the pack. A pack step
            // needs no solution of its own (the teacher grades, nobody lints the pack).
            for step in merged.steps.value.iter_mut() {
                step.solution.get_or_insert_with(|| "true".into());
            }
            problems.extend(merged.problems(file, &|_| true));
        }
        if problems.is_empty() {
            Ok(pack)
        } else {
            Err(Error::Invalid(problems))
        }
    }

    /// Add the pack's checks to their steps; returns the ids of the checks added.
    pub fn apply(&self, lab: &mut Lab) -> BTreeSet<String> {
        let mut added = BTreeSet::new();
        for (step, checks) in &self.steps {
            if let Some(i) = lab.step_index(step) {
                for c in checks {
                    added.insert(c.id.value.clone());
                    lab.steps.value[i].checks.push(c.clone());
                }
            }
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::catalog::Catalog;

    const GOOD: &str = r#"apiVersion: kindling.dev/v1alpha1
kind: CheckPack
lab: docker-network-modes
steps:
  - step: bridge
    checks:
      - id: hidden-bridge-ip
        points: 3
        title: {en: "lab-net-bridge has an address on 172.17/16", zh: "lab-net-bridge 有 172.17/16 的地址"}
        exec: {in: host, command: "docker exec lab-net-bridge ip -4 addr", output: 'inet 172\.'}
"#;

    fn lab() -> Lab {
        Catalog::bundled()
            .get("docker-network-modes")
            .unwrap()
            .lab
            .clone()
    }

    #[test]
    fn a_pack_adds_hidden_checks_to_its_step() {
        let mut lab = lab();
        let before = lab.total_points();
        let pack = Pack::parse("pack.yaml", "pack.yaml", GOOD, &lab).unwrap();
        let added = pack.apply(&mut lab);
        assert_eq!(added.into_iter().collect::<Vec<_>>(), ["hidden-bridge-ip"]);
        assert_eq!(lab.total_points(), before + 3);
        assert!(pack.sha256.starts_with("sha256:"));
    }

    #[test]
    fn a_pack_is_decoded_strictly_with_positions() {
        let e = Pack::parse(
            "pack.yaml",
            "pack.yaml",
            &GOOD.replace("points: 3", "points: 3\n        pionts: 1"),
            &lab(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("pack.yaml:"), "{e}");
        assert!(e.contains("pionts"), "{e}");
    }

    #[test]
    fn every_problem_in_a_pack_is_reported_together() {
        let bad = GOOD
            .replace("lab: docker-network-modes", "lab: docker-basics")
            .replace("step: bridge", "step: bridgee")
            .replace("kind: CheckPack", "kind: Pack");
        let e = Pack::parse("pack.yaml", "pack.yaml", &bad, &lab())
            .unwrap_err()
            .to_string();
        assert!(e.contains("kind: must be \"CheckPack\""), "{e}");
        assert!(e.contains("this pack is for \"docker-basics\""), "{e}");
        assert!(e.contains("no step \"bridgee\""), "{e}");
        assert_eq!(e.lines().count(), 3, "{e}");
        // A check the lab validator refuses is refused in a pack too, at the pack's line.
        let dup = GOOD.replace("hidden-bridge-ip", "bridge-mode");
        let e = Pack::parse("pack.yaml", "pack.yaml", &dup, &lab())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pack.yaml:") && e.contains("check ids must be unique"),
            "{e}"
        );
        let two = GOOD.replace("exec:", "quiz: shared-namespace\n        exec:");
        let e = Pack::parse("pack.yaml", "pack.yaml", &two, &lab())
            .unwrap_err()
            .to_string();
        assert!(e.contains("has 2 kinds"), "{e}");
    }
}
