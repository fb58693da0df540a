//! Images without a registry: `load docker-image` and `load image-archive` copy images from the
//! host's Docker engine into containerd's `k8s.io` namespace on each node, skipping nodes that
//! already have the same image.

use bollard::Docker;

use crate::cluster::docker;
use crate::cluster::info;
use crate::nodeimage::bundled;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "image {0:?} is not in the local Docker engine; build it first (`docker build -t {0} .`) or check the name with `docker images`"
    )]
    NoImage(String),
    #[error("cluster {cluster:?} has no node {node:?}; its nodes are: {known}")]
    NoNode {
        cluster: String,
        node: String,
        known: String,
    },
    #[error("no cluster named {0:?}; `kindling get clusters` lists them")]
    NoCluster(String),
    #[error("node {node} is not running; start it with `docker start {node}`")]
    NotRunning { node: String },
    #[error("importing into node {node} failed: {output}")]
    Import { node: String, output: String },
    #[error("could not read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Docker(#[from] docker::Error),
    #[error(transparent)]
    Info(#[from] info::Error),
    #[error(transparent)]
    Image(#[from] crate::nodeimage::Error),
}

impl From<bollard::errors::Error> for Error {
    fn from(e: bollard::errors::Error) -> Self {
        Error::Docker(docker::Error::Api(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What happened on one node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeResult {
    pub node: String,
    pub loaded: Vec<String>,
    pub skipped: Vec<String>,
}

/// The name containerd stores an image under: `app:dev` is `docker.io/library/app:dev`.
pub fn normalize(reference: &str) -> String {
    let (name, suffix) = match reference.find('@') {
        Some(i) => (&reference[..i], &reference[i..]),
        None => (reference, ""),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tagged = suffix.is_empty() && !last.contains(':');
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    format!("{full}{}{suffix}", if tagged { ":latest" } else { "" })
}

/// Where a node remembers which image ID it holds for a reference.
fn marker_path(reference: &str) -> String {
    let safe: String = normalize(reference)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("/var/lib/kindling/images/loaded/{safe}")
}

/// The running nodes of `cluster`, or just those named in `only`.
async fn target_nodes(docker: &Docker, cluster: &str, only: &[String]) -> Result<Vec<String>> {
    let all = info::nodes(docker, cluster).await?;
    if all.is_empty() {
        return Err(Error::NoCluster(cluster.into()));
    }
    for n in only {
        if !all.iter().any(|a| &a.name == n) {
            return Err(Error::NoNode {
                cluster: cluster.into(),
                node: n.clone(),
                known: all
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|n| only.is_empty() || only.contains(&n.name))
        .collect();
    if let Some(n) = chosen.iter().find(|n| n.state != "running") {
        return Err(Error::NotRunning {
            node: n.name.clone(),
        });
    }
    Ok(chosen.into_iter().map(|n| n.name).collect())
}

async fn import(docker: &Docker, node: &str, archive: Vec<u8>) -> Result<()> {
    let path = format!("/var/lib/kindling/images/load-{}.tar", std::process::id());
    docker::upload(
        docker,
        node,
        docker::tar_of(&[(path.clone(), 0o600, archive)]),
    )
    .await?;
    let script = format!(
        "ctr -n k8s.io images import --all-platforms {path}; rc=$?; rm -f {path}; exit $rc"
    );
    let (code, output) = docker::exec(docker, node, &["sh", "-c", &script]).await?;
    if code != 0 {
        return Err(Error::Import {
            node: node.into(),
            output: output.trim().to_string(),
        });
    }
    Ok(())
}

/// Does `node` already hold `reference` as image `id`?
async fn has_image(docker: &Docker, node: &str, reference: &str, id: &str) -> bool {
    let check = format!(
        "[ \"$(cat {} 2>/dev/null)\" = '{id}' ] && ctr -n k8s.io images ls -q 'name=={}' | grep -q .",
        marker_path(reference),
        normalize(reference)
    );
    matches!(
        docker::exec(docker, node, &["sh", "-c", &check]).await,
        Ok((0, _))
    )
}

/// Load images from the host engine into the cluster's nodes.
pub async fn docker_images(
    docker: &Docker,
    cluster: &str,
    images: &[String],
    only: &[String],
) -> Result<Vec<NodeResult>> {
    let mut ids = Vec::new();
    for image in images {
        match docker.inspect_image(image).await {
            Ok(i) => ids.push(i.id.unwrap_or_default()),
            Err(e) if docker::is_status(&e, 404) => return Err(Error::NoImage(image.clone())),
            Err(e) => return Err(e.into()),
        }
    }
    let nodes = target_nodes(docker, cluster, only).await?;
    let per_node = nodes.iter().map(|node| {
        let ids = &ids;
        async move {
            let mut result = NodeResult {
                node: node.clone(),
                loaded: vec![],
                skipped: vec![],
            };
            for (image, id) in images.iter().zip(ids) {
                if has_image(docker, node, image, id).await {
                    result.skipped.push(image.clone());
                } else {
                    result.loaded.push(image.clone());
                }
            }
            if !result.loaded.is_empty() {
                let archive = bundled::save(docker, &result.loaded).await?;
                import(docker, node, archive).await?;
                for (image, id) in images.iter().zip(ids) {
                    if result.loaded.contains(image) {
                        let path = marker_path(image);
                        let script =
                            format!("mkdir -p \"$(dirname {path})\" && echo '{id}' > {path}");
                        docker::exec(docker, node, &["sh", "-c", &script]).await?;
                    }
                }
            }
            Ok::<_, Error>(result)
        }
    });
    futures::future::join_all(per_node)
        .await
        .into_iter()
        .collect()
}

/// Load a `docker save` archive (or an OCI archive) from a file into the cluster's nodes.
pub async fn archive(
    docker: &Docker,
    cluster: &str,
    path: &str,
    only: &[String],
) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    let nodes = target_nodes(docker, cluster, only).await?;
    let imports = nodes.iter().map(|n| import(docker, n, bytes.clone()));
    for r in futures::future::join_all(imports).await {
        r?;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_the_way_containerd_stores_them() {
        assert_eq!(normalize("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalize("app:dev"), "docker.io/library/app:dev");
        assert_eq!(
            normalize("kindling/whoami"),
            "docker.io/kindling/whoami:latest"
        );
        assert_eq!(normalize("localhost:5000/x/y:1"), "localhost:5000/x/y:1");
        assert_eq!(normalize("ghcr.io/a/b"), "ghcr.io/a/b:latest");
        assert_eq!(normalize("a/b@sha256:abc"), "docker.io/a/b@sha256:abc");
    }

    #[test]
    fn markers_are_plain_file_names() {
        assert_eq!(
            marker_path("app:dev"),
            "/var/lib/kindling/images/loaded/docker_io_library_app_dev"
        );
    }
}
