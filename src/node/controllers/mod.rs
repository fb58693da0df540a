//! kube-controller-manager: the control plane's reconcile loops (node IPAM and lifecycle,
//! ReplicaSets, Deployments, DaemonSets, StatefulSets, Jobs, CronJobs, Endpoints,
//! EndpointSlices, ServiceAccounts, the node components shown as workloads), active on one
//! control plane at a time through a leader Lease; also publishes Flannel's ConfigMap.

pub mod common;
pub mod components;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod history;
pub mod job;
pub mod leader;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod serviceaccount;
pub mod statefulset;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::consts::ADMIN_KUBECONFIG_PATH;
use crate::node::config::NodeConfig;
use crate::node::flannel;

/// The leader Lease's name and namespace, as upstream names them.
pub const LEADER_LEASE: &str = "kube-controller-manager";
pub const LEADER_NAMESPACE: &str = "kube-system";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: the API request failed")]
    Api(String, #[source] kube::Error),
    #[error("the pod network {0} has no free /24 left; use a larger podSubnet")]
    RangeFull(String),
    #[error("the pod network {cluster} is smaller than a /{mask} node range")]
    MaskTooSmall { cluster: String, mask: u8 },
    #[error("could not load the kubeconfig {ADMIN_KUBECONFIG_PATH}")]
    Kubeconfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "replica set {0} exists with another template (a pod-template-hash collision); retrying with the next collisionCount"
    )]
    HashCollision(String),
    #[error("lost the leader lease {LEADER_NAMESPACE}/{LEADER_LEASE}; restarting")]
    LostLease,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// The admin credentials for now; a dedicated `system:kube-controller-manager` certificate
// (as kubeadm issues) would give it only the rights it needs.
async fn client() -> Result<kube::Client> {
    crate::node::client_from(ADMIN_KUBECONFIG_PATH)
        .await
        .map_err(|e| Error::Kubeconfig(e.into()))
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The kube-flannel namespace and kube-flannel-cfg ConfigMap as upstream's manifest makes them.
pub fn flannel_objects(cfg: &NodeConfig) -> (Namespace, ConfigMap) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(flannel::NAMESPACE.into()),
            labels: labels(&[
                ("k8s-app", "flannel"),
                ("pod-security.kubernetes.io/enforce", "privileged"),
            ]),
            ..Default::default()
        },
        ..Default::default()
    };
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(flannel::CONFIG_MAP.into()),
            namespace: Some(flannel::NAMESPACE.into()),
            labels: labels(&[("app", "flannel"), ("k8s-app", "flannel"), ("tier", "node")]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (
                "cni-conf.json".to_string(),
                flannel::cni::CONFLIST.to_string(),
            ),
            (
                "net-conf.json".to_string(),
                flannel::net_conf_json(&cfg.pod_subnet, &cfg.flannel_backend),
            ),
        ])),
        ..Default::default()
    };
    (ns, cm)
}

/// Create them unless present; an existing ConfigMap is left as its owner edited it.
async fn ensure_flannel_objects(client: &kube::Client, cfg: &NodeConfig) -> Result<()> {
    let (ns, cm) = flannel_objects(cfg);
    let pp = PostParams::default();
    match Api::<Namespace>::all(client.clone()).create(&pp, &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(Error::Api(format!("namespace {}", flannel::NAMESPACE), e)),
    }
    match Api::<ConfigMap>::namespaced(client.clone(), flannel::NAMESPACE)
        .create(&pp, &cm)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(Error::Api(format!("configmap {}", flannel::CONFIG_MAP), e)),
    }
}

pub async fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::load()?;
    let client = client().await?;
    // The API server starts just before us: retry until it answers.
    while let Err(e) = ensure_flannel_objects(&client, &cfg).await {
        eprintln!("kube-controller-manager: {e:#}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEADER_NAMESPACE);
    let me = cfg.node_name.clone();
    loop {
        match leader::try_acquire(&leases, LEADER_LEASE, &me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => eprintln!("kube-controller-manager: {e:#}"),
        }
        tokio::time::sleep(leader::RETRY).await;
    }
    eprintln!("kube-controller-manager: {me} is the leader");
    let ca = std::fs::read_to_string(format!("{}/ca.crt", crate::consts::PKI_DIR)).ok();
    let ctx = Arc::new(nodeipam::Ctx {
        nodes: Api::<Node>::all(client.clone()),
        cluster: cfg.pod_subnet.parse()?,
        lock: tokio::sync::Mutex::new(()),
    });
    let renew = async {
        let mut failures_since_renewal = std::time::Instant::now();
        loop {
            tokio::time::sleep(leader::RETRY).await;
            match leader::try_acquire(&leases, LEADER_LEASE, &me).await {
                Ok(true) => failures_since_renewal = std::time::Instant::now(),
                // Someone else holds it now: stop acting, as upstream exits on lost leadership.
                Ok(false) => return Error::LostLease,
                Err(e) => eprintln!("kube-controller-manager: {e:#}"),
            }
            if failures_since_renewal.elapsed() > leader::LEASE_DURATION {
                return Error::LostLease;
            }
        }
    };
    tokio::select! {
        _ = nodeipam::run(ctx) => Ok(()),
        _ = replicaset::run(client.clone()) => Ok(()),
        _ = deployment::run(client.clone()) => Ok(()),
        _ = endpoints::run(client.clone()) => Ok(()),
        _ = endpointslice::run(client.clone()) => Ok(()),
        _ = job::run(client.clone()) => Ok(()),
        _ = cronjob::run(client.clone()) => Ok(()),
        _ = daemonset::run(client.clone()) => Ok(()),
        _ = statefulset::run(client.clone()) => Ok(()),
        _ = serviceaccount::run(client.clone(), ca) => Ok(()),
        _ = components::run(client.clone()) => Ok(()),
        _ = nodelifecycle::run(client.clone(), nodelifecycle::Settings {
            grace: std::time::Duration::from_secs(
                cfg.node_lifecycle.node_monitor_grace_period_seconds.into(),
            ),
        }) => Ok(()),
        e = renew => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::config::{FlannelBackend, Role};

    #[test]
    fn the_flannel_config_map_carries_net_conf_for_the_clusters_backend() {
        let cfg = NodeConfig {
            flannel_backend: FlannelBackend::Udp,
            ..NodeConfig::example(Role::ControlPlane)
        };
        let (ns, cm) = flannel_objects(&cfg);
        assert_eq!(ns.metadata.name.as_deref(), Some("kube-flannel"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-flannel"));
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-flannel-cfg"));
        let data = cm.data.unwrap();
        let net: serde_json::Value = serde_json::from_str(&data["net-conf.json"]).unwrap();
        assert_eq!(
            net,
            serde_json::json!({"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}})
        );
        assert!(data["cni-conf.json"].contains("\"cbr0\""));
    }
}
