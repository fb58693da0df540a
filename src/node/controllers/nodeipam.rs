//! The node IPAM controller: gives every Node a /24 of the pod network in `spec.podCIDR` and
//! `spec.podCIDRs`, the first one free, as kube-controller-manager's range allocator does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;

use super::{Error, Result};
use crate::node::flannel::subnet::Ipv4Net;

/// Upstream's default `--node-cidr-mask-size` for IPv4.
pub const NODE_CIDR_MASK: u8 = 24;

/// The first `/mask` of `cluster` that overlaps none of `used`.
pub fn first_free(cluster: Ipv4Net, mask: u8, used: &[Ipv4Net]) -> Result<Ipv4Net> {
    if mask < cluster.prefix || mask > 32 {
        return Err(Error::MaskTooSmall {
            cluster: cluster.to_string(),
            mask,
        });
    }
    let base = cluster.network();
    let count: u64 = 1 << (mask - cluster.prefix);
    let step: u64 = 1 << (32 - mask);
    (0..count)
        .map(|i| {
            Ipv4Net::new(
                std::net::Ipv4Addr::from((u64::from(u32::from(base.addr)) + i * step) as u32),
                mask,
            )
        })
        .find(|c| !used.iter().any(|u| u.overlaps(c)))
        .ok_or_else(|| Error::RangeFull(cluster.to_string()))
}

/// The pod CIDRs Nodes already hold.
pub fn used_cidrs(nodes: &[Node]) -> Vec<Ipv4Net> {
    nodes
        .iter()
        .filter_map(|n| n.spec.as_ref())
        .flat_map(|s| {
            s.pod_cidrs
                .clone()
                .unwrap_or_default()
                .into_iter()
                .chain(s.pod_cidr.clone())
        })
        .filter_map(|c| c.parse().ok())
        .collect()
}

pub struct Ctx {
    pub nodes: Api<Node>,
    pub cluster: Ipv4Net,
    /// One allocation at a time: each reads the Nodes fresh, so two Nodes never get one range.
    pub lock: tokio::sync::Mutex<()>,
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    let has_cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some();
    let Some(name) = node.metadata.name.clone() else {
        return Ok(Action::await_change());
    };
    if has_cidr || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let _one_at_a_time = ctx.lock.lock().await;
    let all = ctx
        .nodes
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Api(name.clone(), e))?;
    if let Some(current) = all
        .items
        .iter()
        .find(|n| n.metadata.name.as_ref() == Some(&name))
        && current
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_ref())
            .is_some()
    {
        return Ok(Action::await_change());
    }
    let cidr = first_free(ctx.cluster, NODE_CIDR_MASK, &used_cidrs(&all.items))?.to_string();
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    ctx.nodes
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| Error::Api(name.clone(), e))?;
    eprintln!("kube-controller-manager: node {name}: set podCIDR {cidr}");
    Ok(Action::await_change())
}

fn error_policy(node: Arc<Node>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    super::common::retry_after("node", &node.metadata, e, Duration::from_secs(5))
}

/// Run the controller until its watch ends.
pub async fn run(ctx: Arc<Ctx>) {
    Controller::new(ctx.nodes.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_node_gets_the_first_24() {
        assert_eq!(
            first_free(net("10.244.0.0/16"), 24, &[]).unwrap(),
            net("10.244.0.0/24")
        );
    }

    #[test]
    fn allocation_takes_the_first_gap_so_freed_ranges_are_reused() {
        let used = [net("10.244.0.0/24"), net("10.244.2.0/24")];
        assert_eq!(
            first_free(net("10.244.0.0/16"), 24, &used).unwrap(),
            net("10.244.1.0/24")
        );
        // A hand-set wider range blocks every /24 inside it.
        let used = [net("10.244.0.0/23")];
        assert_eq!(
            first_free(net("10.244.0.0/16"), 24, &used).unwrap(),
            net("10.244.2.0/24")
        );
    }

    #[test]
    fn a_full_pod_network_is_an_error_naming_it() {
        let e = first_free(net("10.244.0.0/24"), 24, &[net("10.244.0.0/24")]).unwrap_err();
        assert!(e.to_string().contains("10.244.0.0/24"), "{e}");
        assert!(first_free(net("10.244.0.0/25"), 24, &[]).is_err());
    }

    #[test]
    fn used_ranges_come_from_pod_cidr_and_pod_cidrs() {
        let nodes: Vec<Node> = serde_json::from_value(json!([
            {"metadata": {"name": "a"}, "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}},
            {"metadata": {"name": "b"}, "spec": {"podCIDRs": ["10.244.5.0/24"]}},
            {"metadata": {"name": "c"}, "spec": {}},
            {"metadata": {"name": "d"}}
        ]))
        .unwrap();
        let used = used_cidrs(&nodes);
        assert!(used.contains(&net("10.244.0.0/24")));
        assert!(used.contains(&net("10.244.5.0/24")));
        assert_eq!(
            first_free(net("10.244.0.0/16"), 24, &used).unwrap(),
            net("10.244.1.0/24")
        );
    }
}
