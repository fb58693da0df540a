//! The Docker provider: connecting to the engine and the few container, network and image
//! operations clusters need, each idempotent (404 and 409 are ordinary outcomes).

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptionsBuilder;
use futures::StreamExt;

use crate::consts::LABEL_CLUSTER;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot reach the Docker engine ({0}); start Docker (for example `sudo systemctl start docker`) or set DOCKER_HOST"
    )]
    EngineUnavailable(String),
    #[error("docker")]
    Api(#[from] BollardError),
    #[error("could not read {path} from container {container}: {message}")]
    Download {
        container: String,
        path: String,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// True when the engine answered with HTTP status `code`.
pub fn is_status(e: &BollardError, code: u16) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// Connect to the local engine and agree on an API version both sides speak.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| Error::EngineUnavailable(e.to_string()))?;
    let docker = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        docker.negotiate_version(),
    )
    .await
    .map_err(|_| Error::EngineUnavailable("no answer within 10s".into()))?
    .map_err(|e| Error::EngineUnavailable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| Error::EngineUnavailable(e.to_string()))?;
    Ok(docker)
}

/// Containers (running or not) carrying every label in `labels` (`key` or `key=value`).
pub async fn containers_with_labels(
    docker: &Docker,
    labels: &[String],
) -> Result<Vec<ContainerSummary>> {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), labels.to_vec());
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    Ok(docker.list_containers(Some(opts)).await?)
}

/// Every node container of every cluster.
pub async fn all_nodes(docker: &Docker) -> Result<Vec<ContainerSummary>> {
    containers_with_labels(docker, &[LABEL_CLUSTER.to_string()]).await
}

/// The container's name without Docker's leading slash.
pub fn container_name(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

pub fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.as_ref()?.get(key).map(String::as_str)
}

/// Whether an image with this reference is present locally.
pub async fn image_exists(docker: &Docker, reference: &str) -> Result<bool> {
    match docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Copy a tar archive of files into a container (running or not) at `/`.
pub async fn upload(docker: &Docker, container: &str, tar: Vec<u8>) -> Result<()> {
    let opts = bollard::query_parameters::UploadToContainerOptionsBuilder::default()
        .path("/")
        .build();
    docker
        .upload_to_container(container, Some(opts), bollard::body_full(tar.into()))
        .await?;
    Ok(())
}

/// Read one regular file out of a container.
pub async fn read_file(docker: &Docker, container: &str, path: &str) -> Result<Vec<u8>> {
    let opts = bollard::query_parameters::DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(container, Some(opts));
    let mut tar_bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        tar_bytes.extend_from_slice(&chunk?);
    }
    let err = |message: String| Error::Download {
        container: container.into(),
        path: path.into(),
        message,
    };
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut entries = archive.entries().map_err(|e| err(e.to_string()))?;
    let mut entry = entries
        .next()
        .ok_or_else(|| err("empty archive".into()))?
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out).map_err(|e| err(e.to_string()))?;
    Ok(out)
}

/// A tar archive holding `files` (absolute path, mode, content), directories created as needed.
pub fn tar_of(files: &[(String, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path.trim_start_matches('/'), content.as_slice())
            .expect("writing to a Vec cannot fail");
    }
    b.into_inner().expect("writing to a Vec cannot fail")
}

/// Run a command in a running container and return its exit code and combined output.
pub async fn exec(docker: &Docker, container: &str, cmd: &[&str]) -> Result<(i64, String)> {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await?
    {
        while let Some(msg) = output.next().await {
            out.push_str(&msg?.to_string());
        }
    }
    let code = docker.inspect_exec(&exec.id).await?.exit_code.unwrap_or(-1);
    Ok((code, out))
}
