//! The images pods need, built locally from the same Debian base as the node image (no registry):
//! the pause image, `kindling/toolbox` and `kindling/whoami`. Each is rebuilt only when its
//! build context changes, and all are preloaded into every node's containerd.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use super::{BuildOptions, Error, Result, ensure_base, run_build};
use crate::cluster::docker;
use crate::progress::Progress;

static IMAGES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/images");

/// Label holding a hash of the build context, so a changed context means a rebuild.
const CONTEXT_LABEL: &str = "dev.kindling.context-hash";

/// (image reference, folder under images/)
pub const BUNDLED: &[(&str, &str)] = &[
    ("kindling/pause:3.10", "pause"),
    ("kindling/toolbox:latest", "toolbox"),
    ("kindling/whoami:latest", "whoami"),
    ("kindling/registry:latest", "registry"),
];

/// Where the host puts the bundle in a node; `kindling node init` imports it into containerd.
/// Outside /var: files copied into a created container under a volume path are hidden by the
/// volume once the container starts.
pub const NODE_BUNDLE_PATH: &str = "/opt/kindling/bundled.tar";

fn context(folder: &str) -> Vec<(String, u32, Vec<u8>)> {
    let Some(dir) = IMAGES.get_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<_> = dir
        .files()
        .map(|f| {
            let name = f
                .path()
                .strip_prefix(folder)
                .unwrap_or(f.path())
                .display()
                .to_string();
            let mode = if name.ends_with(".cgi") { 0o755 } else { 0o644 };
            (name, mode, f.contents().to_vec())
        })
        .collect();
    files.sort();
    files
}

fn hash(files: &[(String, u32, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (name, mode, content) in files {
        h.update(name.as_bytes());
        h.update(mode.to_le_bytes());
        h.update(content);
    }
    hex::encode(h.finalize())[..16].to_string()
}

async fn current_hash(docker: &Docker, reference: &str) -> Option<String> {
    let image = docker.inspect_image(reference).await.ok()?;
    image.config?.labels?.get(CONTEXT_LABEL).cloned()
}

/// Build every bundled image that is missing or out of date; returns their references.
pub async fn ensure(
    docker: &Docker,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<Vec<String>> {
    let mut base = None;
    for (reference, folder) in BUNDLED {
        let files = context(folder);
        let want = hash(&files);
        if current_hash(docker, reference).await.as_deref() == Some(want.as_str()) {
            continue;
        }
        let base = match &base {
            Some(b) => b,
            None => base.insert(ensure_base(docker, opts, progress).await?),
        };
        let step = progress.step(format!("Building {reference}"));
        let mut args = HashMap::new();
        args.insert("BASE_IMAGE", base.as_str());
        let mut labels = HashMap::new();
        labels.insert(CONTEXT_LABEL, want.as_str());
        let build = BuildImageOptionsBuilder::default()
            .t(reference)
            .rm(true)
            .forcerm(true)
            .buildargs(&args)
            .labels(&labels)
            .build();
        run_build(docker, build, docker::tar_of(&files), progress).await?;
        step.done();
    }
    Ok(BUNDLED.iter().map(|(r, _)| r.to_string()).collect())
}

/// `docker save` of `references` as one tar, ready for `ctr images import`.
pub async fn save(docker: &Docker, references: &[String]) -> Result<Vec<u8>> {
    let refs: Vec<&str> = references.iter().map(String::as_str).collect();
    let mut stream = docker.export_images(&refs);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.map_err(|e| Error::Build(format!("docker save: {e}")))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_image_has_a_dockerfile() {
        for (reference, folder) in BUNDLED {
            let files = context(folder);
            assert!(
                files.iter().any(|f| f.0 == "Dockerfile"),
                "{reference}: {files:?}"
            );
        }
    }

    #[test]
    fn the_whoami_script_is_executable_in_the_context() {
        let files = context("whoami");
        let cgi = files.iter().find(|f| f.0 == "index.cgi").unwrap();
        assert_eq!(cgi.1, 0o755);
    }
}
