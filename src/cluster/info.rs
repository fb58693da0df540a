//! Reading a running cluster: its nodes, its kubeconfig (from the control-plane node, the only
//! place it is kept), and every component's logs.

use std::path::{Path, PathBuf};

use bollard::Docker;
use futures::StreamExt;
use serde::Serialize;

use crate::cluster::create::context_name;
use crate::cluster::docker;
use crate::cluster::kubeconfig::Entry;
use crate::consts::{ADMIN_KUBECONFIG_PATH, API_SERVER_PORT, LABEL_CLUSTER, LABEL_ROLE, LOG_DIR};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no cluster named {0:?}; `kindling get clusters` lists them")]
    NoCluster(String),
    #[error(
        "cluster {cluster:?} has no published API server port; is node {node} running? (`docker start {node}`)"
    )]
    NoPort { cluster: String, node: String },
    #[error("the kubeconfig stored in {node} is unreadable: {message}")]
    BadKubeconfig { node: String, message: String },
    #[error(transparent)]
    Docker(#[from] docker::Error),
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<bollard::errors::Error> for Error {
    fn from(e: bollard::errors::Error) -> Self {
        Error::Docker(docker::Error::Api(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A node container as `kindling get nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub role: String,
    pub state: String,
}

pub async fn nodes(docker: &Docker, cluster: &str) -> Result<Vec<NodeInfo>> {
    let mut v: Vec<NodeInfo> =
        docker::containers_with_labels(docker, &[format!("{LABEL_CLUSTER}={cluster}")])
            .await?
            .iter()
            .map(|c| NodeInfo {
                name: docker::container_name(c),
                role: docker::label(c, LABEL_ROLE).unwrap_or_default().to_string(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect();
    v.sort_by(|a, b| (&a.role, &a.name).cmp(&(&b.role, &b.name)));
    Ok(v)
}

/// The first control-plane node: it holds admin.conf and publishes the API server port.
async fn first_control_plane(docker: &Docker, cluster: &str) -> Result<String> {
    let want = format!("{cluster}-control-plane");
    let all = nodes(docker, cluster).await?;
    if all.is_empty() {
        return Err(Error::NoCluster(cluster.into()));
    }
    Ok(all
        .iter()
        .find(|n| n.name == want)
        .or_else(|| all.iter().find(|n| n.role == "control-plane"))
        .map(|n| n.name.clone())
        .unwrap_or(want))
}

/// The cluster's admin kubeconfig entry: pointing at the published port on the host, or at the
/// control-plane node by name (`internal`) for use from other containers on the network.
pub async fn kubeconfig(docker: &Docker, cluster: &str, internal: bool) -> Result<Entry> {
    let node = first_control_plane(docker, cluster).await?;
    let bytes = docker::read_file(docker, &node, ADMIN_KUBECONFIG_PATH).await?;
    let text = String::from_utf8_lossy(&bytes);
    let mut entry =
        Entry::from_yaml(&text, &context_name(cluster)).map_err(|e| Error::BadKubeconfig {
            node: node.clone(),
            message: e.to_string(),
        })?;
    if !internal {
        entry.server = published_server(docker, cluster, &node).await?;
    }
    Ok(entry)
}

async fn published_server(docker: &Docker, cluster: &str, node: &str) -> Result<String> {
    let info = docker.inspect_container(node, None).await?;
    let binding = info
        .host_config
        .and_then(|h| h.port_bindings)
        .and_then(|p| p.get(&format!("{API_SERVER_PORT}/tcp")).cloned().flatten())
        .and_then(|b| b.into_iter().next())
        .ok_or_else(|| Error::NoPort {
            cluster: cluster.into(),
            node: node.into(),
        })?;
    let ip = match binding.host_ip.as_deref() {
        None | Some("") | Some("0.0.0.0") => "127.0.0.1".to_string(),
        Some(ip) => ip.to_string(),
    };
    Ok(format!(
        "https://{ip}:{}",
        binding.host_port.unwrap_or_default()
    ))
}

/// Copy every node's component logs and its init output into `dir/<node>/`.
pub async fn export_logs(docker: &Docker, cluster: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let all = nodes(docker, cluster).await?;
    if all.is_empty() {
        return Err(Error::NoCluster(cluster.into()));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    let mut written = Vec::new();
    for n in &all {
        let node_dir = dir.join(&n.name);
        std::fs::create_dir_all(&node_dir).map_err(write_err(&node_dir))?;
        // The component logs, as a tar of /var/log/kindling.
        let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
            .path(LOG_DIR)
            .build();
        let mut bytes = Vec::new();
        let mut s = docker.download_from_container(&n.name, Some(opts));
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(_) => break,
            }
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        if let Ok(entries) = archive.entries() {
            for mut entry in entries.flatten() {
                let Some(file) = entry
                    .path()
                    .ok()
                    .and_then(|p| p.file_name().map(|f| f.to_owned()))
                else {
                    continue;
                };
                if entry.header().entry_type().is_file() {
                    let path = node_dir.join(file);
                    entry.unpack(&path).map_err(write_err(&path))?;
                    written.push(path);
                }
            }
        }
        // PID 1's own output: what `docker logs` shows.
        let opts = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut logs = docker.logs(&n.name, Some(opts));
        let mut text = String::new();
        while let Some(Ok(chunk)) = logs.next().await {
            text.push_str(&chunk.to_string());
        }
        let path = node_dir.join("init.log");
        std::fs::write(&path, text).map_err(write_err(&path))?;
        written.push(path);
    }
    Ok(written)
}
