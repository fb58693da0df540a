//! Deleting clusters: their node containers and volumes, the network once unused, and their
//! kubeconfig entries. Deleting what is already gone succeeds.

use std::path::Path;

use bollard::Docker;

use crate::cluster::create::{self, context_name, remove_node};
use crate::cluster::docker::{self, is_status};
use crate::cluster::kubeconfig;
use crate::consts::{LABEL_CLUSTER, NETWORK_NAME};

/// Remove cluster `name`; returns how many node containers were removed.
pub async fn delete(docker: &Docker, name: &str, kubeconfig_path: &Path) -> create::Result<usize> {
    let nodes =
        docker::containers_with_labels(docker, &[format!("{LABEL_CLUSTER}={name}")]).await?;
    let removals = nodes
        .iter()
        .map(docker::container_name)
        .map(|n| async move { remove_node(docker, &n).await });
    for r in futures::future::join_all(removals).await {
        r?;
    }
    remove_network_if_unused(docker).await?;
    kubeconfig::remove_entry(kubeconfig_path, &context_name(name))?;
    Ok(nodes.len())
}

/// Every cluster's name, sorted.
pub async fn cluster_names(docker: &Docker) -> docker::Result<Vec<String>> {
    let mut names: Vec<String> = docker::all_nodes(docker)
        .await?
        .iter()
        .filter_map(|c| docker::label(c, LABEL_CLUSTER).map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

async fn remove_network_if_unused(docker: &Docker) -> create::Result<()> {
    if !docker::all_nodes(docker).await?.is_empty() {
        return Ok(());
    }
    match docker.remove_network(NETWORK_NAME).await {
        Ok(()) => Ok(()),
        // Gone already, or something else still uses it (a user's own container): keep it.
        Err(e) if is_status(&e, 404) || is_status(&e, 409) || is_status(&e, 403) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
