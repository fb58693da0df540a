//! The node image: built on the user's machine from the embedded build context plus the running
//! kindling executable, tagged by content, on a Debian base bootstrapped when none can be pulled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateImageOptionsBuilder};
use futures::StreamExt;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use crate::cluster::docker::{self, image_exists};
use crate::consts::{BOOTSTRAPPED_BASE_IMAGE, DEBIAN_SUITE, DEFAULT_BASE_IMAGE, NODE_IMAGE_REPO};
use crate::progress::Progress;

pub mod bundled;

static CONTEXT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/node-image");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Docker(#[from] docker::Error),
    #[error("could not read the kindling executable {path}")]
    Executable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "base image {0} is not present and could not be pulled; load it with `docker load`, or leave out --base-image to bootstrap one from a Debian mirror"
    )]
    BaseMissing(String),
    #[error(
        "debootstrap is not installed; install it (`sudo apt-get install debootstrap`) so kindling can bootstrap the Debian base image without a registry, or pass --base-image"
    )]
    NoDebootstrap,
    #[error(
        "bootstrapping the Debian base needs root (debootstrap creates device files); run `sudo kindling build node-image` once, or pass --base-image"
    )]
    NotRoot,
    #[error(
        "debootstrap failed ({status}); check that the Debian mirror{mirror} is reachable, or pass --debian-mirror URL. Last output:\n{tail}"
    )]
    Debootstrap {
        status: String,
        mirror: String,
        tail: String,
    },
    #[error("could not import the bootstrapped base image: {0}")]
    Import(String),
    #[error("node image build failed: {0}")]
    Build(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to build and from where.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Image reference to tag; default `kindling/node:<content hash>`.
    pub image: Option<String>,
    /// Base image; default debian:bookworm-slim, else a bootstrapped one.
    pub base_image: Option<String>,
    /// Debian mirror used by debootstrap (default: debootstrap's own).
    pub debian_mirror: Option<String>,
    /// Rebuild even when the tag exists.
    pub force: bool,
    /// Rebuild every layer (no build cache): a cold build, for benchmarks and broken caches.
    pub no_cache: bool,
}

/// The build context's files (embedded Dockerfile and configs plus the executable).
fn context_files(exe: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let mut files: Vec<(String, u32, Vec<u8>)> = CONTEXT
        .files()
        .map(|f| (f.path().display().to_string(), 0o644, f.contents().to_vec()))
        .collect();
    files.sort();
    files.push(("kindling".to_string(), 0o755, exe.to_vec()));
    files
}

fn current_exe() -> Result<Vec<u8>> {
    let path = std::env::current_exe().map_err(|source| Error::Executable {
        path: "/proc/self/exe".into(),
        source,
    })?;
    std::fs::read(&path).map_err(|source| Error::Executable { path, source })
}

/// The image a default build produces: the repository plus a hash of the whole context, so a
/// changed binary or Dockerfile gets a new tag and an unchanged one is reused.
fn tag_for(files: &[(String, u32, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (name, mode, content) in files {
        h.update(name.as_bytes());
        h.update(mode.to_le_bytes());
        h.update((content.len() as u64).to_le_bytes());
        h.update(content);
    }
    format!("{NODE_IMAGE_REPO}:{}", &hex::encode(h.finalize())[..12])
}

/// Build the node image unless it exists; returns its reference.
pub async fn ensure(docker: &Docker, opts: &BuildOptions, progress: Progress) -> Result<String> {
    let files = context_files(&current_exe()?);
    let tag = opts.image.clone().unwrap_or_else(|| tag_for(&files));
    if !opts.force && !opts.no_cache && image_exists(docker, &tag).await? {
        progress.say(&format!(" ✓ Node image {tag} is present"));
        return Ok(tag);
    }
    let base = ensure_base(docker, opts, progress).await?;
    let step = progress.step(format!("Building node image {tag} from {base}"));
    let tar = docker::tar_of(&files);
    let mut args = HashMap::new();
    args.insert("BASE_IMAGE", base.as_str());
    let mut labels = HashMap::new();
    labels.insert("dev.kindling.node-image", "true");
    let build = BuildImageOptionsBuilder::default()
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .nocache(opts.no_cache)
        .buildargs(&args)
        .labels(&labels)
        .build();
    run_build(docker, build, tar, progress).await?;
    if !image_exists(docker, &tag).await? {
        return Err(Error::Build(format!(
            "the engine reported no error but {tag} does not exist"
        )));
    }
    step.done();
    Ok(tag)
}

/// Run one build through the engine, showing its steps; the error carries the last lines.
pub(crate) async fn run_build(
    docker: &Docker,
    build: bollard::query_parameters::BuildImageOptions,
    tar: Vec<u8>,
    progress: Progress,
) -> Result<()> {
    let mut stream = docker.build_image(build, None, Some(bollard::body_full(tar.into())));
    let mut tail: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| Error::Build(e.to_string()))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(Error::Build(format!("{detail}\n{}", tail.join("\n"))));
        }
        if let Some(line) = info.stream {
            for l in line.lines().filter(|l| !l.trim().is_empty()) {
                if l.starts_with("Step ") {
                    progress.detail(l);
                }
                tail.push(l.to_string());
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
        }
    }
    Ok(())
}

/// The base image to build on: the one asked for, a present debian:bookworm-slim, a previously
/// bootstrapped one, a pulled one, or (with no registry at all) one bootstrapped now.
pub(crate) async fn ensure_base(
    docker: &Docker,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<String> {
    if let Some(base) = &opts.base_image {
        if image_exists(docker, base).await? || try_pull(docker, base).await {
            return Ok(base.clone());
        }
        return Err(Error::BaseMissing(base.clone()));
    }
    for candidate in [DEFAULT_BASE_IMAGE, BOOTSTRAPPED_BASE_IMAGE] {
        if image_exists(docker, candidate).await? {
            return Ok(candidate.to_string());
        }
    }
    if try_pull(docker, DEFAULT_BASE_IMAGE).await {
        return Ok(DEFAULT_BASE_IMAGE.to_string());
    }
    bootstrap_base(docker, opts.debian_mirror.as_deref(), progress).await?;
    Ok(BOOTSTRAPPED_BASE_IMAGE.to_string())
}

async fn try_pull(docker: &Docker, reference: &str) -> bool {
    let opts = CreateImageOptionsBuilder::default()
        .from_image(reference)
        .build();
    let pull = async {
        let mut s = docker.create_image(Some(opts), None, None);
        while let Some(item) = s.next().await {
            item?;
        }
        Ok::<_, bollard::errors::Error>(())
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(30), pull).await,
        Ok(Ok(()))
    ) && image_exists(docker, reference).await.unwrap_or(false)
}

/// debootstrap a minimal Debian into a temporary folder, trim it like the slim images, and
/// import it as [`BOOTSTRAPPED_BASE_IMAGE`].
pub async fn bootstrap_base(
    docker: &Docker,
    mirror: Option<&str>,
    progress: Progress,
) -> Result<()> {
    let debootstrap = which("debootstrap").ok_or(Error::NoDebootstrap)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::NotRoot);
    }
    let root = std::env::temp_dir().join(format!("kindling-rootfs-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(root.clone());
    let step = progress.step(format!(
        "Bootstrapping Debian {DEBIAN_SUITE} with debootstrap (no base image could be pulled; about a minute)"
    ));
    let mut cmd = tokio::process::Command::new(debootstrap);
    cmd.args(["--variant=minbase", DEBIAN_SUITE])
        .arg(&root)
        .stdin(Stdio::null());
    if let Some(m) = mirror {
        cmd.arg(m);
    }
    let out = cmd.output().await?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let tail: Vec<_> = text.lines().rev().take(8).collect();
        return Err(Error::Debootstrap {
            status: out.status.to_string(),
            mirror: mirror.map(|m| format!(" {m}")).unwrap_or_default(),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    trim_rootfs(&root)?;
    step.done();

    let step = progress.step(format!("Importing base image {BOOTSTRAPPED_BASE_IMAGE}"));
    let mut tar = tokio::process::Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = tar.stdout.take().expect("stdout is piped");
    let body = byte_chunks(stdout);
    let (repo, tag) = BOOTSTRAPPED_BASE_IMAGE
        .split_once(':')
        .expect("constant has a tag");
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .build();
    let mut s = docker.create_image(Some(opts), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = s.next().await {
        item.map_err(|e| Error::Import(e.to_string()))?;
    }
    let status = tar.wait().await?;
    if !status.success() {
        return Err(Error::Import(format!("tar exited with {status}")));
    }
    step.done();
    Ok(())
}

/// Stream a child's stdout as byte chunks.
fn byte_chunks(
    r: tokio::process::ChildStdout,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(r, |mut r| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    })
}

/// Remove what the slim Debian images leave out: docs, man pages, locales, apt caches.
fn trim_rootfs(root: &Path) -> std::io::Result<()> {
    for dir in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "var/log",
    ] {
        let p = root.join(dir);
        if p.exists() {
            std::fs::remove_dir_all(&p)?;
            std::fs::create_dir_all(&p)?;
        }
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_changes_with_the_binary_and_not_otherwise() {
        let a = tag_for(&context_files(b"binary one"));
        let b = tag_for(&context_files(b"binary one"));
        let c = tag_for(&context_files(b"binary two"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("kindling/node:"));
    }

    #[test]
    fn the_embedded_context_holds_the_dockerfile() {
        let files = context_files(b"x");
        let names: Vec<_> = files.iter().map(|f| f.0.as_str()).collect();
        assert!(names.contains(&"Dockerfile"), "{names:?}");
        assert!(names.contains(&"kindling"));
    }
}
