//! A CRI client over containerd's unix socket: tonic's generic gRPC client with hand-written
//! prost messages, one method per RPC the kubelet uses.

use std::collections::HashMap;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::api::*;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the container runtime is not ready: {0}")]
    NotReady(String),
    #[error("CRI {method} failed: {status}")]
    Rpc {
        method: String,
        status: tonic::Status,
    },
}

impl Error {
    /// True when the runtime said the object doesn't exist (already removed).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Rpc { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The gRPC path of a RuntimeService method.
macro_rules! runtime {
    ($m:literal) => {
        concat!("/runtime.v1.RuntimeService/", $m)
    };
}
/// The gRPC path of an ImageService method.
macro_rules! image {
    ($m:literal) => {
        concat!("/runtime.v1.ImageService/", $m)
    };
}

/// The label every sandbox and container carries with its pod's UID (upstream's name), which is
/// how a restarted kubelet finds the sandboxes of the pods it already runs.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// A cheap-to-clone handle: every clone shares one HTTP/2 connection to containerd.
#[derive(Clone)]
pub struct Cri {
    grpc: tonic::client::Grpc<Channel>,
}

impl Cri {
    /// Connects lazily, so the kubelet may start before containerd; tonic reconnects when
    /// containerd restarts.
    pub fn new(socket: &'static str) -> Self {
        // The URI is required by the API but unused: the connector always dials the socket.
        let channel = Endpoint::from_static("http://[::1]:50051")
            .connect_timeout(Duration::from_secs(2))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }));
        Cri {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    async fn call<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let method = path.rsplit('/').next().unwrap_or(path);
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Error::NotReady(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let mut request = tonic::Request::new(req);
        // StopContainer may legitimately take the whole grace period; everything else is quick.
        request.set_timeout(Duration::from_secs(if method == "StopContainer" {
            330
        } else {
            60
        }));
        grpc.unary(request, http::uri::PathAndQuery::from_static(path), codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Error::Rpc {
                method: method.to_string(),
                status,
            })
    }

    pub async fn version(&self) -> Result<VersionResponse> {
        self.call(
            runtime!("Version"),
            VersionRequest {
                version: "v1".into(),
            },
        )
        .await
    }

    pub async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String> {
        let req = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let r: RunPodSandboxResponse = self.call(runtime!("RunPodSandbox"), req).await?;
        Ok(r.pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        let _: Empty = self.call(runtime!("StopPodSandbox"), req).await?;
        Ok(())
    }

    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = PodSandboxIdRequest {
            pod_sandbox_id: id.into(),
        };
        let _: Empty = self.call(runtime!("RemovePodSandbox"), req).await?;
        Ok(())
    }

    pub async fn pod_sandbox_status(&self, id: &str) -> Result<Option<PodSandboxStatus>> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        let r: PodSandboxStatusResponse = self.call(runtime!("PodSandboxStatus"), req).await?;
        Ok(r.status)
    }

    /// Sandboxes whose labels include all of `labels` (all of them when empty).
    pub async fn list_pod_sandboxes(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<PodSandbox>> {
        let req = ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                label_selector: labels,
                ..Default::default()
            }),
        };
        let r: ListPodSandboxResponse = self.call(runtime!("ListPodSandbox"), req).await?;
        Ok(r.items)
    }

    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let r: CreateContainerResponse = self.call(runtime!("CreateContainer"), req).await?;
        Ok(r.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<()> {
        let req = ContainerIdRequest {
            container_id: id.into(),
        };
        let _: Empty = self.call(runtime!("StartContainer"), req).await?;
        Ok(())
    }

    /// Sends SIGTERM, then SIGKILL after `grace_seconds`.
    pub async fn stop_container(&self, id: &str, grace_seconds: i64) -> Result<()> {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout: grace_seconds,
        };
        let _: Empty = self.call(runtime!("StopContainer"), req).await?;
        Ok(())
    }

    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let req = ContainerIdRequest {
            container_id: id.into(),
        };
        let _: Empty = self.call(runtime!("RemoveContainer"), req).await?;
        Ok(())
    }

    /// Containers of one sandbox (all sandboxes when `sandbox_id` is empty).
    pub async fn list_containers(&self, sandbox_id: &str) -> Result<Vec<Container>> {
        let req = ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: sandbox_id.into(),
                ..Default::default()
            }),
        };
        let r: ListContainersResponse = self.call(runtime!("ListContainers"), req).await?;
        Ok(r.containers)
    }

    pub async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>> {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        let r: ContainerStatusResponse = self.call(runtime!("ContainerStatus"), req).await?;
        Ok(r.status)
    }

    /// The image as containerd's CRI plugin knows it, or None when the node doesn't have it.
    pub async fn image_status(&self, image: &str) -> Result<Option<Image>> {
        let req = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        let r: ImageStatusResponse = self.call(image!("ImageStatus"), req).await?;
        Ok(r.image)
    }

    /// Runs a command to completion (exec probes); `timeout` 0 means none.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: i64,
    ) -> Result<ExecSyncResponse> {
        self.call(
            runtime!("ExecSync"),
            ExecSyncRequest {
                container_id: container_id.into(),
                cmd,
                timeout,
            },
        )
        .await
    }

    /// The streaming server's URL for one interactive command.
    pub async fn exec(&self, req: ExecRequest) -> Result<String> {
        let r: StreamingUrlResponse = self.call(runtime!("Exec"), req).await?;
        Ok(r.url)
    }

    /// The streaming server's URL for attaching to a container's main process.
    pub async fn attach(&self, req: AttachRequest) -> Result<String> {
        let r: StreamingUrlResponse = self.call(runtime!("Attach"), req).await?;
        Ok(r.url)
    }

    /// The streaming server's URL for forwarding ports into a sandbox's network namespace.
    pub async fn port_forward(&self, sandbox_id: &str, ports: Vec<i32>) -> Result<String> {
        let r: StreamingUrlResponse = self
            .call(
                runtime!("PortForward"),
                PortForwardRequest {
                    pod_sandbox_id: sandbox_id.into(),
                    port: ports,
                },
            )
            .await?;
        Ok(r.url)
    }
}
