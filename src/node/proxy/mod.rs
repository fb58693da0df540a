//! kube-proxy: keeps every node's iptables (or ipvs) in step with Services and their
//! EndpointSlices, so ClusterIPs, NodePorts and LoadBalancer addresses reach the ready endpoints.

mod ipvs;
mod lb;
pub mod rules;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use crate::cluster::config::KubeProxyMode;
use crate::node::config::NodeConfig;
use crate::node::flannel::{run_cmd, run_cmd_output, run_cmd_stdin};
use rules::{Endpoint, ServicePort};

/// How often the rules are rewritten even when nothing changed (someone may have flushed them).
const RESYNC: Duration = Duration::from_secs(30);
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset: three hours, as upstream.
const DEFAULT_STICKY_SECONDS: i32 = 10800;

pub async fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::load()?;
    let client = crate::node::kubelet::client().await?;
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, eps_writer) = reflector::store::<EndpointSlice>();
    let svc_events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(svc_writer)
    .map(|_| ())
    .boxed();
    let eps_events = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(eps_writer)
    .map(|_| ())
    .boxed();
    // The watches fill the stores only while polled: a task drives them and rings on change.
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let ring = changed.clone();
    tokio::spawn(async move {
        let mut triggers = futures::stream::select(svc_events, eps_events);
        while triggers.next().await.is_some() {
            ring.notify_one();
        }
    });
    let _ = tokio::join!(services.wait_until_ready(), slices.wait_until_ready());
    let mode = match cfg.kube_proxy_mode {
        KubeProxyMode::Ipvs if !ipvs::available().await => {
            // Upstream refuses to start here; a classroom cluster is more useful with working
            // Services, so say why and carry on with iptables.
            eprintln!(
                "kube-proxy: ipvs mode needs the ip_vs kernel module, which this host's kernel does not have (modprobe ip_vs failed); programming Services with iptables instead"
            );
            KubeProxyMode::Iptables
        }
        KubeProxyMode::Ipvs => {
            let _ = std::fs::write("/proc/sys/net/ipv4/vs/conntrack", "1");
            KubeProxyMode::Ipvs
        }
        other => other,
    };
    eprintln!("kube-proxy: using the {mode:?} proxier");
    // NodePorts listen on the node's InternalIP (eth0, listed first).
    let node_ips: Vec<std::net::Ipv4Addr> = crate::node::net::ipv4_addrs()
        .into_iter()
        .take(1)
        .filter_map(|ip| match ip {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    // The first control plane stands in for a cloud's load balancer.
    let hands_out_addresses = cfg.control_planes.first() == Some(&cfg.node_name);
    let mut last = String::new();
    loop {
        if hands_out_addresses && let Err(e) = lb::reconcile(&client, &services.state()).await {
            eprintln!("kube-proxy: load balancers: {e:#}");
        }
        let ports = service_ports(&services.state(), &slices.state(), &cfg.node_name);
        let synced = match mode {
            KubeProxyMode::Iptables => sync(&ports, &cfg.pod_subnet, &last).await,
            KubeProxyMode::Ipvs => sync_ipvs(&ports, &node_ips, &cfg.pod_subnet, &last).await,
            // `kubeProxyMode: none`: something else programs Services.
            KubeProxyMode::None => Ok(String::new()),
        };
        match synced {
            Ok(applied) => last = applied,
            Err(e) => {
                eprintln!("kube-proxy: {e:#}");
                last.clear();
            }
        }
        // Batch bursts of events (a rollout changes many slices) into one write.
        if tokio::time::timeout(RESYNC, changed.notified())
            .await
            .is_err()
        {
            last.clear();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes the rules unless they equal `last` (what was written before); returns what is now
/// in place.
async fn sync(ports: &[ServicePort], cluster_cidr: &str, last: &str) -> anyhow::Result<String> {
    let save = run_cmd_output(&["iptables-save", "-t", "nat"]).await?;
    let stale = rules::existing_service_chains(&save);
    let payload = rules::restore_payload(ports, cluster_cidr, &stale);
    if payload == last && save.contains(":KUBE-SERVICES") {
        return Ok(payload);
    }
    run_cmd_stdin(&["iptables-restore", "-w", "--noflush"], &payload).await?;
    ensure_jumps().await?;
    Ok(payload)
}

/// Adds the jumps from the built-in chains into kube-proxy's where they are missing.
async fn ensure_jumps() -> anyhow::Result<()> {
    for (table, chain, spec) in rules::jumps() {
        let mut check = vec!["iptables", "-w", "-t", table, "-C", chain];
        check.extend(&spec);
        if run_cmd(&check).await.is_err() {
            let mut add = vec!["iptables", "-w", "-t", table, "-I", chain];
            add.extend(&spec);
            run_cmd(&add).await?;
        }
    }
    Ok(())
}

/// Programs ipvs mode, the plan and then the jumps from the built-in chains, unless the plan
/// equals `last` (what was applied before); returns what is now in place.
async fn sync_ipvs(
    ports: &[ServicePort],
    node_ips: &[std::net::Ipv4Addr],
    cluster_cidr: &str,
    last: &str,
) -> anyhow::Result<String> {
    let plan = ipvs::plan(ports, node_ips, cluster_cidr);
    let applied = format!("{plan:?}");
    if applied != last {
        ipvs::apply(&plan).await?;
        ensure_jumps().await?;
    }
    Ok(applied)
}

/// Every port of every Service with a ClusterIP, joined with its ready endpoints (marked local
/// when they run on `node`).
fn service_ports(
    services: &[std::sync::Arc<Service>],
    slices: &[std::sync::Arc<EndpointSlice>],
    node: &str,
) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for svc in services {
        let (Some(ns), Some(name), Some(spec)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
            svc.spec.as_ref(),
        ) else {
            continue;
        };
        let cluster_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
        let sticky_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_STICKY_SECONDS)
        });
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let own: Vec<&EndpointSlice> = slices
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(ns)
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        .map(String::as_str)
                        == Some(name)
                    && s.address_type == "IPv4"
            })
            .collect();
        for p in spec.ports.iter().flatten() {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
            let mut endpoints = Vec::new();
            for slice in &own {
                let Some(port) = slice.ports.iter().flatten().find(|sp| {
                    sp.name.as_deref().unwrap_or_default() == port_name
                        && sp
                            .protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .eq_ignore_ascii_case(&protocol)
                }) else {
                    continue;
                };
                let Some(number) = port.port.and_then(|n| u16::try_from(n).ok()) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    // Upstream treats an unset condition as ready.
                    if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                        continue;
                    }
                    let local = ep.node_name.as_deref() == Some(node);
                    for a in &ep.addresses {
                        if let Ok(ip) = a.parse() {
                            endpoints.push(Endpoint {
                                ip,
                                port: number,
                                local,
                            });
                        }
                    }
                }
            }
            endpoints.sort();
            endpoints.dedup();
            out.push(ServicePort {
                namespace: ns.to_string(),
                name: name.to_string(),
                port_name,
                protocol,
                cluster_ip,
                port: u16::try_from(p.port).unwrap_or_default(),
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()),
                lb_ips: lb::ingress_ips(svc),
                endpoints,
                sticky_seconds,
                external_local,
            });
        }
    }
    out
}
