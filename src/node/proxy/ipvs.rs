//! kube-proxy's ipvs mode, laid out as upstream's ipvs proxier (`pkg/proxy/ipvs/proxier.go`):
//! every Service address on the dummy device `kube-ipvs0`, one ipvs virtual server per address
//! and port with round-robin real servers, the KUBE-* ipsets, and a few iptables rules that
//! match those sets for masquerading.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::rules::{MASQ_MARK, ServicePort};
use crate::node::flannel::{run_cmd, run_cmd_output, run_cmd_stdin};

/// The dummy device holding every ClusterIP and LoadBalancer address, so the node accepts them.
pub const DUMMY: &str = "kube-ipvs0";

/// Whether the kernel can do ipvs: the `ip_vs` module is loaded or loadable.
pub async fn available() -> bool {
    if Path::new("/proc/net/ip_vs").exists() {
        return true;
    }
    let _ = run_cmd(&["modprobe", "ip_vs"]).await;
    Path::new("/proc/net/ip_vs").exists()
}

/// What ipvs mode programs for a set of service ports.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Addresses bound to `kube-ipvs0`.
    pub addresses: BTreeSet<Ipv4Addr>,
    /// `ipvsadm-restore` input, in the order `ipvsadm -Sn` prints it.
    pub ipvs: String,
    /// `ipset restore` input: the sets created (if missing), flushed and filled.
    pub ipsets: String,
    /// `iptables-restore --noflush` input for the nat table.
    pub nat: String,
}

/// Builds the plan for `ports` on a node whose addresses are `node_ips`.
pub fn plan(ports: &[ServicePort], node_ips: &[Ipv4Addr], cluster_cidr: &str) -> Plan {
    let mut p = Plan::default();
    let mut servers = Vec::new();
    let mut cluster_ip_set = BTreeSet::new();
    let mut loop_back_set = BTreeSet::new();
    let mut lb_set = BTreeSet::new();
    let mut node_ports: [BTreeSet<u16>; 2] = Default::default();
    let mut sorted: Vec<&ServicePort> = ports.iter().collect();
    sorted.sort_by_key(|p| p.id());
    for sp in sorted {
        let Some(ip) = sp.cluster_ip else { continue };
        let flag = match sp.protocol.as_str() {
            "udp" => "-u",
            "sctp" => "--sctp-service",
            _ => "-t",
        };
        let mut fronts = vec![(ip, sp.port)];
        p.addresses.insert(ip);
        cluster_ip_set.insert(format!("{ip},{}:{}", sp.protocol, sp.port));
        for lb in &sp.lb_ips {
            p.addresses.insert(*lb);
            fronts.push((*lb, sp.port));
            lb_set.insert(format!("{lb},{}:{}", sp.protocol, sp.port));
        }
        if let Some(np) = sp.node_port {
            fronts.extend(node_ips.iter().map(|n| (*n, np)));
            match sp.protocol.as_str() {
                "udp" => node_ports[1].insert(np),
                _ => node_ports[0].insert(np),
            };
        }
        for ep in &sp.endpoints {
            // A pod reaching itself through its Service is masqueraded (hairpin).
            loop_back_set.insert(format!("{},{}:{},{}", ep.ip, sp.protocol, ep.port, ep.ip));
        }
        for (addr, port) in fronts {
            let persistence = sp
                .sticky_seconds
                .map(|s| format!(" -p {s}"))
                .unwrap_or_default();
            servers.push(format!("-A {flag} {addr}:{port} -s rr{persistence}"));
            let mut eps = sp.endpoints.clone();
            eps.sort();
            for ep in eps {
                servers.push(format!(
                    "-a {flag} {addr}:{port} -r {}:{} -m -w 1",
                    ep.ip, ep.port
                ));
            }
        }
    }
    p.ipvs = lines(&servers);
    let sets: [(&str, &str, &str, BTreeSet<String>); 5] = [
        (
            "KUBE-CLUSTER-IP",
            "hash:ip,port",
            "Kubernetes service cluster ip + port for masquerade purpose",
            cluster_ip_set,
        ),
        (
            "KUBE-LOOP-BACK",
            "hash:ip,port,ip",
            "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose",
            loop_back_set,
        ),
        (
            "KUBE-LOAD-BALANCER",
            "hash:ip,port",
            "Kubernetes service lb portal",
            lb_set,
        ),
        (
            "KUBE-NODE-PORT-TCP",
            "bitmap:port range 0-65535",
            "Kubernetes nodeport TCP port for masquerade purpose",
            node_ports[0].iter().map(u16::to_string).collect(),
        ),
        (
            "KUBE-NODE-PORT-UDP",
            "bitmap:port range 0-65535",
            "Kubernetes nodeport UDP port for masquerade purpose",
            node_ports[1].iter().map(u16::to_string).collect(),
        ),
    ];
    let mut ipset = Vec::new();
    for (name, kind, comment, members) in &sets {
        let family = if kind.starts_with("bitmap") {
            String::new()
        } else {
            " family inet hashsize 1024 maxelem 65536".into()
        };
        ipset.push(format!("create {name} {kind}{family} comment"));
        ipset.push(format!("flush {name}"));
        for m in members {
            ipset.push(format!("add {name} {m} comment \"{comment}\""));
        }
    }
    p.ipsets = lines(&ipset);
    let nat = [
        "*nat".to_string(),
        ":KUBE-SERVICES - [0:0]".into(),
        ":KUBE-NODE-PORT - [0:0]".into(),
        ":KUBE-LOAD-BALANCER - [0:0]".into(),
        ":KUBE-POSTROUTING - [0:0]".into(),
        ":KUBE-MARK-MASQ - [0:0]".into(),
        format!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}"),
        "-A KUBE-POSTROUTING -m comment --comment \"Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose\" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE".into(),
        format!("-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
        format!("-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}"),
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully".into(),
        format!("-A KUBE-SERVICES ! -s {cluster_cidr} -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ"),
        "-A KUBE-SERVICES -m comment --comment \"Kubernetes service lb portal\" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER".into(),
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT".into(),
        "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT".into(),
        "-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT".into(),
        "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ".into(),
        "-A KUBE-NODE-PORT -p tcp -m comment --comment \"Kubernetes nodeport TCP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ".into(),
        "-A KUBE-NODE-PORT -p udp -m comment --comment \"Kubernetes nodeport UDP port for masquerade purpose\" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ".into(),
        "COMMIT".into(),
    ];
    p.nat = lines(&nat);
    p
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

/// Puts `plan` in place: addresses on the dummy device, ipsets, nat rules, then the virtual
/// servers (rewritten only when `ipvsadm -Sn` differs, so open connections survive resyncs).
pub async fn apply(plan: &Plan) -> anyhow::Result<()> {
    if run_cmd(&["ip", "link", "show", DUMMY]).await.is_err() {
        run_cmd(&["ip", "link", "add", DUMMY, "type", "dummy"]).await?;
    }
    let shown = run_cmd_output(&["ip", "-4", "-o", "addr", "show", "dev", DUMMY]).await?;
    let bound: BTreeSet<Ipv4Addr> = shown
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    for gone in bound.difference(&plan.addresses) {
        let _ = run_cmd(&["ip", "addr", "del", &format!("{gone}/32"), "dev", DUMMY]).await;
    }
    for new in plan.addresses.difference(&bound) {
        run_cmd(&["ip", "addr", "add", &format!("{new}/32"), "dev", DUMMY]).await?;
    }
    run_cmd_stdin(&["ipset", "restore", "-exist"], &plan.ipsets).await?;
    run_cmd_stdin(&["iptables-restore", "-w", "--noflush"], &plan.nat).await?;
    let current = run_cmd_output(&["ipvsadm", "-Sn"]).await?;
    if normalize(&current) != normalize(&plan.ipvs) {
        run_cmd(&["ipvsadm", "--clear"]).await?;
        run_cmd_stdin(&["ipvsadm-restore"], &plan.ipvs).await?;
    }
    Ok(())
}

/// `ipvsadm -Sn` lines, sorted, for comparing what is in the kernel with the plan.
fn normalize(save: &str) -> Vec<String> {
    let mut v: Vec<String> = save
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::super::rules::Endpoint;
    use super::*;

    fn web() -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: String::new(),
            protocol: "tcp".into(),
            cluster_ip: Some("10.96.14.7".parse().unwrap()),
            port: 80,
            node_port: Some(30080),
            lb_ips: vec![],
            endpoints: ["10.244.1.3", "10.244.2.4", "10.244.1.2"]
                .iter()
                .map(|ip| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: 80,
                    local: false,
                })
                .collect(),
            sticky_seconds: None,
            external_local: false,
        }
    }

    #[test]
    fn a_service_with_three_pods_is_one_round_robin_virtual_server_per_address() {
        let plan = plan(&[web()], &["172.18.0.3".parse().unwrap()], "10.244.0.0/16");
        assert_eq!(
            plan.ipvs,
            "-A -t 10.96.14.7:80 -s rr\n\
             -a -t 10.96.14.7:80 -r 10.244.1.2:80 -m -w 1\n\
             -a -t 10.96.14.7:80 -r 10.244.1.3:80 -m -w 1\n\
             -a -t 10.96.14.7:80 -r 10.244.2.4:80 -m -w 1\n\
             -A -t 172.18.0.3:30080 -s rr\n\
             -a -t 172.18.0.3:30080 -r 10.244.1.2:80 -m -w 1\n\
             -a -t 172.18.0.3:30080 -r 10.244.1.3:80 -m -w 1\n\
             -a -t 172.18.0.3:30080 -r 10.244.2.4:80 -m -w 1\n"
        );
        assert_eq!(
            plan.addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["10.96.14.7"]
        );
        assert!(plan.ipsets.contains(
            "add KUBE-CLUSTER-IP 10.96.14.7,tcp:80 comment \"Kubernetes service cluster ip + port for masquerade purpose\""
        ));
        assert!(plan.ipsets.contains("add KUBE-NODE-PORT-TCP 30080 "));
        assert!(
            plan.ipsets
                .contains("add KUBE-LOOP-BACK 10.244.2.4,tcp:80,10.244.2.4 ")
        );
        assert!(
            plan.nat
                .contains("-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT")
        );
    }

    #[test]
    fn client_ip_affinity_is_ipvs_persistence_and_udp_has_its_own_flag() {
        let mut sp = web();
        sp.protocol = "udp".into();
        sp.node_port = None;
        sp.sticky_seconds = Some(10800);
        let plan = plan(&[sp], &[], "10.244.0.0/16");
        assert!(
            plan.ipvs
                .starts_with("-A -u 10.96.14.7:80 -s rr -p 10800\n"),
            "{}",
            plan.ipvs
        );
    }

    #[test]
    fn what_the_kernel_holds_is_compared_regardless_of_order_and_spacing() {
        let kernel = "-a -t 10.96.14.7:80 -r 10.244.1.2:80 -m  -w 1\n-A -t 10.96.14.7:80 -s rr\n";
        let planned = "-A -t 10.96.14.7:80 -s rr\n-a -t 10.96.14.7:80 -r 10.244.1.2:80 -m -w 1\n";
        assert_eq!(normalize(kernel), normalize(planned));
    }
}
