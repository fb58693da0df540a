//! kubelet: registers its Node and keeps it Ready with status heartbeats and a Lease in
//! kube-node-lease, and runs the pods bound to the node through CRI, as the upstream kubelet does.

mod backoff;
pub mod cri;
mod events;
mod images;
mod mirror;
mod node_status;
mod pods;
mod probe;
mod server;
mod spec;
mod status;
mod stream;
mod volumes;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::consts::{CONTAINERD_SOCKET, KUBELET_KUBECONFIG_PATH, NODE_LEASE_NAMESPACE};
use crate::node::config::NodeConfig;

pub use node_status::{NodeFacts, desired_node, status_patch};

/// How often the node's status and lease are renewed (upstream's default is 10s).
const HEARTBEAT: Duration = Duration::from_secs(crate::consts::NODE_HEARTBEAT_SECONDS as u64);
/// Retry interval before the node is registered, short so a new cluster is Ready quickly.
const REGISTER_RETRY: Duration = Duration::from_millis(300);
const LEASE_SECONDS: i32 = 40;

/// A client authenticated with the kubelet's own certificate.
pub async fn client() -> anyhow::Result<kube::Client> {
    crate::node::client_from(KUBELET_KUBECONFIG_PATH).await
}

pub async fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::load()?;
    let client = client().await?;
    let facts = NodeFacts::gather();
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut ctx = pods::Ctx::new(
        cri::client::Cri::new(CONTAINERD_SOCKET),
        client.clone(),
        cfg.node_name.clone(),
        facts.internal_ip.clone(),
        spec::dns_from_resolv_conf(&resolv),
        [
            facts.cpus as f64,
            facts.memory_ki as f64 * 1024.0,
            facts.storage_ki as f64 * 1024.0,
        ],
    );
    ctx.cluster_dns = crate::node::dns::service_ip(&cfg.service_subnet);
    tokio::spawn(mirror::run(
        client.clone(),
        cfg.clone(),
        facts.internal_ip.clone(),
        ctx.mirror_wake.clone(),
    ));
    tokio::spawn(pods::run(std::sync::Arc::new(ctx)));
    let (name, ip) = (cfg.node_name.clone(), facts.internal_ip.clone());
    tokio::spawn(async move {
        if let Err(e) = server::serve(name, ip).await {
            eprintln!("kubelet: {e}");
        }
    });
    heartbeat(cfg, client, facts).await
}

/// Registers the Node, then renews its status and Lease for as long as the kubelet runs.
async fn heartbeat(cfg: NodeConfig, client: kube::Client, facts: NodeFacts) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, NODE_LEASE_NAMESPACE);
    let mut uid: Option<String> = None;
    // (ready, since): when the Ready condition last changed.
    let mut ready_state: Option<(bool, jiff::Timestamp)> = None;
    loop {
        let result = async {
            let node_uid = match &uid {
                Some(u) => u.clone(),
                None => {
                    let u = register(&nodes, &cfg).await?;
                    eprintln!("kubelet: node {} registered", cfg.node_name);
                    uid = Some(u.clone());
                    u
                }
            };
            let ready = node_status::runtime_is_up().await;
            let since = match ready_state {
                Some((was, since)) if was == ready => since,
                _ => jiff::Timestamp::now(),
            };
            ready_state = Some((ready, since));
            let patch = status_patch(&facts, ready, since);
            nodes
                .patch_status(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            renew_lease(&leases, &cfg.node_name, &node_uid).await?;
            anyhow::Ok(ready)
        }
        .await;
        match result {
            Ok(true) => tokio::time::sleep(HEARTBEAT).await,
            // Check again soon: the runtime usually comes up within a second of the kubelet.
            Ok(false) => tokio::time::sleep(REGISTER_RETRY).await,
            Err(e) => {
                if let Some(kube::Error::Api(s)) = e.downcast_ref::<kube::Error>()
                    && s.code == 404
                {
                    // The Node was deleted under us: register again, as upstream does.
                    uid = None;
                }
                eprintln!("kubelet: {e:#}");
                tokio::time::sleep(if uid.is_some() {
                    HEARTBEAT / 5
                } else {
                    REGISTER_RETRY
                })
                .await;
            }
        }
    }
}

/// Create the Node, or adopt the existing one (after a restart), keeping its labels current.
async fn register(nodes: &Api<Node>, cfg: &NodeConfig) -> anyhow::Result<String> {
    let desired = desired_node(cfg);
    match nodes.create(&PostParams::default(), &desired).await {
        Ok(n) => Ok(n.metadata.uid.unwrap_or_default()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": desired.metadata.labels}});
            let n = nodes
                .patch(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            Ok(n.metadata.uid.unwrap_or_default())
        }
        Err(e) => Err(e.into()),
    }
}

async fn renew_lease(leases: &Api<Lease>, node: &str, node_uid: &str) -> anyhow::Result<()> {
    let now = MicroTime(jiff::Timestamp::now());
    let patch = json!({"spec": {"holderIdentity": node, "renewTime": now,
                                "leaseDurationSeconds": LEASE_SECONDS}});
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE,
                    "ownerReferences": [OwnerReference {
                        api_version: "v1".into(), kind: "Node".into(), name: node.into(),
                        uid: node_uid.into(), ..Default::default()
                    }]},
                "spec": {"holderIdentity": node, "renewTime": now,
                         "leaseDurationSeconds": LEASE_SECONDS},
            }))?;
            leases.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
