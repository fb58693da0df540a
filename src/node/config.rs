//! The node's own configuration, written by the host into `/etc/kindling/node.json` before the
//! node container starts, and read by `kindling node init` and the components.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cluster::config::{FlannelBackend, KubeProxyMode, NodeLifecycle, Role};
use crate::consts::NODE_CONFIG_PATH;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub cluster: String,
    /// Node and container name, e.g. `dev-worker2`.
    pub node_name: String,
    pub role: Role,
    /// Names of every control-plane node, in order (they form the etcd cluster).
    pub control_planes: Vec<String>,
    pub pod_subnet: String,
    pub service_subnet: String,
    /// Extra labels from the cluster config.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Taints the kubelet registers the node with.
    #[serde(default)]
    pub register_taints: Vec<Taint>,
    #[serde(default)]
    pub kube_proxy_mode: KubeProxyMode,
    #[serde(default)]
    pub flannel_backend: FlannelBackend,
    #[serde(default)]
    pub node_lifecycle: NodeLifecycle,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read node config {NODE_CONFIG_PATH}")]
    Read(#[from] std::io::Error),
    #[error("node config {NODE_CONFIG_PATH} is invalid")]
    Parse(#[from] serde_json::Error),
}

impl NodeConfig {
    pub fn load() -> Result<Self, Error> {
        Ok(serde_json::from_slice(&std::fs::read(NODE_CONFIG_PATH)?)?)
    }

    /// The API server address node components use: the first control plane, by name, so it
    /// survives Docker handing out new IPs after a restart.
    pub fn api_server_url(&self) -> String {
        format!(
            "https://{}:{}",
            self.control_planes[0],
            crate::consts::API_SERVER_PORT
        )
    }
}

#[cfg(test)]
impl NodeConfig {
    /// A node `dev-control-plane` of cluster `dev` with the given role and kind's defaults.
    pub fn example(role: Role) -> Self {
        NodeConfig {
            cluster: "dev".into(),
            node_name: "dev-control-plane".into(),
            role,
            control_planes: vec!["dev-control-plane".into()],
            pod_subnet: crate::consts::DEFAULT_POD_SUBNET.into(),
            service_subnet: crate::consts::DEFAULT_SERVICE_SUBNET.into(),
            labels: BTreeMap::new(),
            register_taints: vec![],
            kube_proxy_mode: KubeProxyMode::default(),
            flannel_backend: FlannelBackend::default(),
            node_lifecycle: NodeLifecycle::default(),
        }
    }
}
