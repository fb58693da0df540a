//! LoadBalancer Services without a cloud: the first control-plane node's kube-proxy gives each
//! one an address from the top of the nodes' Docker network, writes it into
//! `status.loadBalancer.ingress` and answers for it on eth0, so the host reaches the service
//! there (what cloud-provider-kind does for kind, without an extra container).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::node::flannel::{run_cmd, run_cmd_output};

/// How many addresses below the network's broadcast address are handed out.
const POOL: u32 = 50;

/// eth0's IPv4 address and prefix length.
async fn eth0() -> anyhow::Result<(Ipv4Addr, u32)> {
    let out = run_cmd_output(&["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).await?;
    let v: Value = serde_json::from_str(&out)?;
    let info = v[0]["addr_info"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|i| i["prefixlen"].as_u64().is_some_and(|p| p < 32))
        })
        .ok_or_else(|| anyhow::anyhow!("eth0 has no IPv4 network address"))?;
    let ip: Ipv4Addr = info["local"].as_str().unwrap_or_default().parse()?;
    Ok((ip, info["prefixlen"].as_u64().unwrap_or(32) as u32))
}

/// The pool, highest address first: the top of the network, which Docker hands out last.
fn pool(ip: Ipv4Addr, prefix: u32) -> Vec<Ipv4Addr> {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let broadcast = (u32::from(ip) & mask) | !mask;
    let size = (!mask).saturating_sub(1);
    (1..=POOL.min(size / 2))
        .map(|i| Ipv4Addr::from(broadcast - i))
        .collect()
}

fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// The addresses in `status.loadBalancer.ingress`.
pub(super) fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// Gives every LoadBalancer Service without an address one from the pool, then makes eth0
/// hold exactly the pool addresses in use.
pub async fn reconcile(client: &kube::Client, services: &[Arc<Service>]) -> anyhow::Result<()> {
    let (ip, prefix) = eth0().await?;
    let pool = pool(ip, prefix);
    let mut used: BTreeSet<Ipv4Addr> = services
        .iter()
        .filter(|s| is_load_balancer(s))
        .flat_map(|s| ingress_ips(s))
        .collect();
    for svc in services
        .iter()
        .filter(|s| is_load_balancer(s) && ingress_ips(s).is_empty())
    {
        let (Some(ns), Some(name)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let Some(free) = pool.iter().find(|a| !used.contains(a)).copied() else {
            eprintln!("kube-proxy: no free load-balancer address left for {ns}/{name}");
            break;
        };
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": free.to_string(), "ipMode": "VIP"}]}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        used.insert(free);
    }
    let held = run_cmd_output(&["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).await?;
    let held: Value = serde_json::from_str(&held)?;
    let held: BTreeSet<Ipv4Addr> = held[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["prefixlen"] == 32)
        .filter_map(|i| i["local"].as_str()?.parse().ok())
        .filter(|a| pool.contains(a))
        .collect();
    for a in used
        .iter()
        .filter(|a| pool.contains(a) && !held.contains(a))
    {
        run_cmd(&["ip", "addr", "add", &format!("{a}/32"), "dev", "eth0"]).await?;
    }
    for a in held.difference(&used) {
        run_cmd(&["ip", "addr", "del", &format!("{a}/32"), "dev", "eth0"]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_the_top_of_the_nodes_network() {
        let p = pool("172.18.0.2".parse().unwrap(), 16);
        assert_eq!(p.len(), 50);
        assert_eq!(p[0], "172.18.255.254".parse::<Ipv4Addr>().unwrap());
        assert_eq!(p[49], "172.18.255.205".parse::<Ipv4Addr>().unwrap());
        // A small network keeps its lower half for the nodes.
        let small = pool("10.0.0.2".parse().unwrap(), 28);
        assert_eq!(small.len(), 7);
        assert_eq!(small[0], "10.0.0.14".parse::<Ipv4Addr>().unwrap());
    }
}
