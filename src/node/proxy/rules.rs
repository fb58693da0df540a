//! kube-proxy's iptables rules, laid out and named exactly as upstream's iptables proxier
//! (`pkg/proxy/iptables/proxier.go`) writes them, so what `iptables -t nat -S` shows on a
//! Kindling node is what the course shows for a real cluster.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

/// The mark kube-proxy sets on packets that must be masqueraded on their way out.
pub const MASQ_MARK: &str = "0x4000";

/// One port of one Service, with the endpoints that serve it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name; empty for a Service's single unnamed port.
    pub port_name: String,
    /// Lowercase, as upstream hashes and prints it: `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Addresses from `status.loadBalancer.ingress`.
    pub lb_ips: Vec<Ipv4Addr>,
    pub endpoints: Vec<Endpoint>,
    /// `sessionAffinity: ClientIP`: how long a client sticks to its endpoint, in seconds.
    pub sticky_seconds: Option<i32>,
    /// `externalTrafficPolicy: Local`: NodePort and LoadBalancer traffic only reaches endpoints
    /// on the node it arrived at, keeping the client's source address.
    pub external_local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The endpoint runs on this node.
    pub local: bool,
}

impl ServicePort {
    /// `ns/name:port`, upstream's ServicePortName string (no `:` for an unnamed port).
    pub fn id(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }
    pub fn svc_chain(&self) -> String {
        format!("KUBE-SVC-{}", hash(&[&self.id(), &self.protocol]))
    }
    pub fn ext_chain(&self) -> String {
        format!("KUBE-EXT-{}", hash(&[&self.id(), &self.protocol]))
    }
    /// The chain of node-local endpoints, for `externalTrafficPolicy: Local`.
    pub fn svl_chain(&self) -> String {
        format!("KUBE-SVL-{}", hash(&[&self.id(), &self.protocol]))
    }
    pub fn sep_chain(&self, ep: &Endpoint) -> String {
        let endpoint = format!("{}:{}", ep.ip, ep.port);
        format!(
            "KUBE-SEP-{}",
            hash(&[&self.id(), &self.protocol, &endpoint])
        )
    }
}

/// The first 16 characters of base32(sha256(parts joined)), upstream's chain-name hash.
fn hash(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.concat().as_bytes());
    data_encoding::BASE32.encode(&digest)[..16].to_string()
}

/// The `iptables-restore --noflush` input: kube-proxy's own chains in nat and filter, each
/// declared (which flushes it) and filled; `stale` chains left from removed services are
/// declared and deleted. The jumps from the built-in chains are in [`jumps`].
pub fn restore_payload(ports: &[ServicePort], cluster_cidr: &str, stale: &[String]) -> String {
    let mut nat_chains: Vec<String> = [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ]
    .map(String::from)
    .to_vec();
    let mut nat = Vec::new();
    nat.push(format!(
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    ));
    nat.push(format!(
        "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}"
    ));
    nat.push(
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
            .into(),
    );
    nat.push(format!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}"));
    let mut filter = Vec::new();
    let mut sorted: Vec<&ServicePort> = ports.iter().collect();
    sorted.sort_by_key(|p| p.id());
    for sp in sorted {
        let (id, proto) = (sp.id(), sp.protocol.as_str());
        let svc = sp.svc_chain();
        let Some(ip) = sp.cluster_ip else {
            continue;
        };
        if sp.endpoints.is_empty() {
            filter.push(format!(
                "-A KUBE-SERVICES -d {ip}/32 -p {proto} -m comment --comment \"{id} has no endpoints\" -m {proto} --dport {} -j REJECT --reject-with icmp-port-unreachable",
                sp.port
            ));
            if let Some(np) = sp.node_port {
                filter.push(format!(
                    "-A KUBE-EXTERNAL-SERVICES -p {proto} -m comment --comment \"{id} has no endpoints\" -m addrtype --dst-type LOCAL -m {proto} --dport {np} -j REJECT --reject-with icmp-port-unreachable"
                ));
            }
            continue;
        }
        nat_chains.push(svc.clone());
        nat.push(format!(
            "-A KUBE-SERVICES -d {ip}/32 -p {proto} -m comment --comment \"{id} cluster IP\" -m {proto} --dport {} -j {svc}",
            sp.port
        ));
        nat.push(format!(
            "-A {svc} ! -s {cluster_cidr} -d {ip}/32 -p {proto} -m comment --comment \"{id} cluster IP\" -m {proto} --dport {} -j KUBE-MARK-MASQ",
            sp.port
        ));
        let ext = sp.ext_chain();
        for lb in &sp.lb_ips {
            nat.push(format!(
                "-A KUBE-SERVICES -d {lb}/32 -p {proto} -m comment --comment \"{id} loadbalancer IP\" -m {proto} --dport {} -j {ext}",
                sp.port
            ));
        }
        if let Some(np) = sp.node_port {
            nat.push(format!(
                "-A KUBE-NODEPORTS -p {proto} -m comment --comment \"{id}\" -m {proto} --dport {np} -j {ext}"
            ));
        }
        let mut eps = sp.endpoints.clone();
        eps.sort();
        let local: Vec<Endpoint> = eps.iter().filter(|e| e.local).cloned().collect();
        if sp.node_port.is_some() || !sp.lb_ips.is_empty() {
            nat_chains.push(ext.clone());
            if !sp.external_local {
                nat.push(format!(
                    "-A {ext} -m comment --comment \"masquerade traffic for {id} external destinations\" -j KUBE-MARK-MASQ"
                ));
                nat.push(format!("-A {ext} -j {svc}"));
            } else {
                // Pods and the node itself still reach every endpoint; traffic from outside
                // stays on this node, unmasqueraded, or is dropped when none is here.
                nat.push(format!(
                    "-A {ext} -s {cluster_cidr} -m comment --comment \"pod traffic for {id} external destinations\" -j {svc}"
                ));
                nat.push(format!(
                    "-A {ext} -m comment --comment \"masquerade LOCAL traffic for {id} external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
                ));
                nat.push(format!(
                    "-A {ext} -m comment --comment \"route LOCAL traffic for {id} external destinations\" -m addrtype --src-type LOCAL -j {svc}"
                ));
                if local.is_empty() {
                    for lb in &sp.lb_ips {
                        filter.push(format!(
                            "-A KUBE-EXTERNAL-SERVICES -d {lb}/32 -p {proto} -m comment --comment \"{id} has no local endpoints\" -m {proto} --dport {} -j DROP",
                            sp.port
                        ));
                    }
                    if let Some(np) = sp.node_port {
                        filter.push(format!(
                            "-A KUBE-EXTERNAL-SERVICES -p {proto} -m comment --comment \"{id} has no local endpoints\" -m addrtype --dst-type LOCAL -m {proto} --dport {np} -j DROP"
                        ));
                    }
                } else {
                    let svl = sp.svl_chain();
                    nat.push(format!("-A {ext} -j {svl}"));
                    nat_chains.push(svl.clone());
                    endpoint_jumps(&mut nat, sp, &svl, &local);
                }
            }
        }
        endpoint_jumps(&mut nat, sp, &svc, &eps);
        for ep in &eps {
            let sep = sp.sep_chain(ep);
            nat_chains.push(sep.clone());
            nat.push(format!(
                "-A {sep} -s {}/32 -m comment --comment \"{id}\" -j KUBE-MARK-MASQ",
                ep.ip
            ));
            let sticky = if sp.sticky_seconds.is_some() {
                format!(" -m recent --set --name {sep} --mask 255.255.255.255 --rsource")
            } else {
                String::new()
            };
            nat.push(format!(
                "-A {sep} -p {proto} -m comment --comment \"{id}\"{sticky} -m {proto} -j DNAT --to-destination {}:{}",
                ep.ip, ep.port
            ));
        }
    }
    nat.push(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
            .into(),
    );
    let live: BTreeSet<&String> = nat_chains.iter().collect();
    let mut out =
        String::from("*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n");
    for line in filter {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("COMMIT\n*nat\n");
    let gone: Vec<&String> = stale.iter().filter(|c| !live.contains(c)).collect();
    for c in nat_chains.iter().chain(gone.iter().copied()) {
        out.push_str(&format!(":{c} - [0:0]\n"));
    }
    for line in nat {
        out.push_str(&line);
        out.push('\n');
    }
    for c in gone {
        out.push_str(&format!("-X {c}\n"));
    }
    out.push_str("COMMIT\n");
    out
}

/// Fills a service's policy chain (`KUBE-SVC-*` or `KUBE-SVL-*`) with jumps to its endpoints
/// chains: first, with session affinity, a jump for clients seen recently; then a random pick,
/// each endpoint with probability 1/(endpoints left) so all are equally likely.
fn endpoint_jumps(nat: &mut Vec<String>, sp: &ServicePort, chain: &str, eps: &[Endpoint]) {
    let id = sp.id();
    if let Some(seconds) = sp.sticky_seconds {
        for ep in eps {
            let sep = sp.sep_chain(ep);
            nat.push(format!(
                "-A {chain} -m comment --comment \"{id} -> {}:{}\" -m recent --rcheck --seconds {seconds} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}",
                ep.ip, ep.port
            ));
        }
    }
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let probability = if i + 1 < n {
            format!(
                " -m statistic --mode random --probability {:.10}",
                1.0 / (n - i) as f64
            )
        } else {
            String::new()
        };
        nat.push(format!(
            "-A {chain} -m comment --comment \"{id} -> {}:{}\"{probability} -j {}",
            ep.ip,
            ep.port,
            sp.sep_chain(ep)
        ));
    }
}

/// The jumps from the built-in chains into kube-proxy's, as (table, chain, rule spec).
pub fn jumps() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let portals = [
        "-m",
        "comment",
        "--comment",
        "kubernetes service portals",
        "-j",
        "KUBE-SERVICES",
    ];
    let new_portals = [
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-m",
        "comment",
        "--comment",
        "kubernetes service portals",
        "-j",
        "KUBE-SERVICES",
    ];
    let external = [
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-m",
        "comment",
        "--comment",
        "kubernetes externally-visible service portals",
        "-j",
        "KUBE-EXTERNAL-SERVICES",
    ];
    vec![
        ("nat", "PREROUTING", portals.to_vec()),
        ("nat", "OUTPUT", portals.to_vec()),
        (
            "nat",
            "POSTROUTING",
            vec![
                "-m",
                "comment",
                "--comment",
                "kubernetes postrouting rules",
                "-j",
                "KUBE-POSTROUTING",
            ],
        ),
        ("filter", "FORWARD", new_portals.to_vec()),
        ("filter", "OUTPUT", new_portals.to_vec()),
        ("filter", "INPUT", external.to_vec()),
        ("filter", "FORWARD", external.to_vec()),
    ]
}

/// The per-service chains that exist now, from `iptables-save -t nat` output.
pub fn existing_service_chains(save: &str) -> Vec<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| {
            ["KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-EXT-"]
                .iter()
                .any(|p| c.starts_with(p))
        })
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ns: &str, name: &str, port_name: &str, endpoints: &[(&str, u16)]) -> ServicePort {
        ServicePort {
            namespace: ns.into(),
            name: name.into(),
            port_name: port_name.into(),
            protocol: "tcp".into(),
            cluster_ip: Some("10.96.0.1".parse().unwrap()),
            port: 443,
            node_port: None,
            lb_ips: Vec::new(),
            endpoints: endpoints
                .iter()
                .map(|(ip, p)| Endpoint {
                    ip: ip.parse().unwrap(),
                    port: *p,
                    local: false,
                })
                .collect(),
            sticky_seconds: None,
            external_local: false,
        }
    }

    #[test]
    fn chain_names_hash_like_upstream() {
        // Upstream's own test vectors (pkg/proxy/iptables/proxier_test.go).
        let sp = port("ns1", "svc1", "p80", &[]);
        let mut tcp = sp.clone();
        tcp.protocol = "tcp".into();
        assert_eq!(tcp.svc_chain(), "KUBE-SVC-XPGD46QRK7WJZT7O");
        let ep = Endpoint {
            ip: "10.180.0.1".parse().unwrap(),
            port: 80,
            local: false,
        };
        assert_eq!(tcp.sep_chain(&ep), "KUBE-SEP-SXIVWICOYRO3J4NJ");
        let k = port("default", "kubernetes", "https", &[]);
        assert_eq!(k.svc_chain(), "KUBE-SVC-NPX46M4PTMTKRN6Y");
    }

    #[test]
    fn a_service_with_two_endpoints_splits_traffic_at_random() {
        let sp = port(
            "default",
            "kubernetes",
            "https",
            &[("172.18.0.3", 6443), ("172.18.0.2", 6443)],
        );
        let text = restore_payload(
            &[sp],
            "10.244.0.0/16",
            &["KUBE-SVC-GONE000000000000".into()],
        );
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https cluster IP\" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y",
            "-A KUBE-SVC-NPX46M4PTMTKRN6Y ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp -m comment --comment \"default/kubernetes:https cluster IP\" -m tcp --dport 443 -j KUBE-MARK-MASQ",
            ":KUBE-SVC-GONE000000000000 - [0:0]",
            "-X KUBE-SVC-GONE000000000000",
            "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
        ] {
            assert!(lines.contains(&want), "missing {want}\n{text}");
        }
        let jumps: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("-A KUBE-SVC-NPX46M4PTMTKRN6Y -m comment"))
            .collect();
        assert_eq!(jumps.len(), 2);
        assert!(jumps[0].contains("-> 172.18.0.2:6443\" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-"));
        assert!(
            !jumps[1].contains("statistic"),
            "the last endpoint takes the rest"
        );
        // The nodeports jump stays last in KUBE-SERVICES.
        let last = lines
            .iter()
            .rposition(|l| l.starts_with("-A KUBE-SERVICES"))
            .unwrap();
        assert!(lines[last].contains("KUBE-NODEPORTS"));
    }

    #[test]
    fn load_balancer_ips_and_node_ports_go_through_the_external_chain() {
        let mut sp = port("shop", "web", "", &[("10.244.1.5", 80)]);
        sp.node_port = Some(30080);
        sp.lb_ips = vec!["172.18.255.200".parse().unwrap()];
        let ext = sp.ext_chain();
        let svc = sp.svc_chain();
        let text = restore_payload(&[sp], "10.244.0.0/16", &[]);
        for want in [
            format!(
                "-A KUBE-SERVICES -d 172.18.255.200/32 -p tcp -m comment --comment \"shop/web loadbalancer IP\" -m tcp --dport 443 -j {ext}"
            ),
            format!(
                "-A KUBE-NODEPORTS -p tcp -m comment --comment \"shop/web\" -m tcp --dport 30080 -j {ext}"
            ),
            format!(
                "-A {ext} -m comment --comment \"masquerade traffic for shop/web external destinations\" -j KUBE-MARK-MASQ"
            ),
            format!("-A {ext} -j {svc}"),
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
        }
        assert_eq!(text.matches(&format!(":{ext} ")).count(), 1, "{text}");
    }

    #[test]
    fn a_service_without_endpoints_is_rejected_in_filter() {
        let mut sp = port("shop", "web", "", &[]);
        sp.node_port = Some(30080);
        let text = restore_payload(&[sp], "10.244.0.0/16", &[]);
        assert!(text.contains("-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment \"shop/web has no endpoints\" -m tcp --dport 443 -j REJECT --reject-with icmp-port-unreachable"), "{text}");
        assert!(!text.contains("KUBE-SVC-"), "{text}");
    }

    #[test]
    fn client_ip_affinity_checks_recent_clients_before_picking_at_random() {
        let mut sp = port("shop", "web", "", &[("10.244.1.5", 80), ("10.244.2.7", 80)]);
        sp.sticky_seconds = Some(10800);
        let (svc, first) = (sp.svc_chain(), sp.sep_chain(&sp.endpoints[0]));
        let text = restore_payload(&[sp], "10.244.0.0/16", &[]);
        let svc_rules: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("-A {svc} -m comment")))
            .collect();
        // Upstream's order: one affinity check per endpoint, then the random choice.
        assert_eq!(svc_rules.len(), 4, "{text}");
        assert_eq!(
            svc_rules[0],
            format!(
                "-A {svc} -m comment --comment \"shop/web -> 10.244.1.5:80\" -m recent --rcheck --seconds 10800 --reap --name {first} --mask 255.255.255.255 --rsource -j {first}"
            )
        );
        assert!(
            svc_rules[2].contains("--probability 0.5000000000"),
            "{text}"
        );
        assert!(text.lines().any(|l| l
            == format!(
                "-A {first} -p tcp -m comment --comment \"shop/web\" -m recent --set --name {first} --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.5:80"
            )));
    }

    #[test]
    fn local_external_policy_sends_outside_traffic_only_to_this_nodes_endpoints() {
        let mut sp = port("shop", "web", "", &[("10.244.1.5", 80), ("10.244.2.7", 80)]);
        sp.endpoints[1].local = true;
        sp.node_port = Some(30080);
        sp.external_local = true;
        let (ext, svc, svl) = (sp.ext_chain(), sp.svc_chain(), sp.svl_chain());
        let local_sep = sp.sep_chain(&sp.endpoints[1]);
        let text = restore_payload(&[sp.clone()], "10.244.0.0/16", &[]);
        assert!(svl.starts_with("KUBE-SVL-"));
        for want in [
            format!(
                "-A {ext} -s 10.244.0.0/16 -m comment --comment \"pod traffic for shop/web external destinations\" -j {svc}"
            ),
            format!(
                "-A {ext} -m comment --comment \"masquerade LOCAL traffic for shop/web external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
            ),
            format!(
                "-A {ext} -m comment --comment \"route LOCAL traffic for shop/web external destinations\" -m addrtype --src-type LOCAL -j {svc}"
            ),
            format!("-A {ext} -j {svl}"),
            format!("-A {svl} -m comment --comment \"shop/web -> 10.244.2.7:80\" -j {local_sep}"),
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with(&format!("-A {svl} ")))
                .count(),
            1,
            "only the local endpoint: {text}"
        );
        assert!(!text.contains("masquerade traffic for shop/web"), "{text}");

        // No endpoint on this node: outside traffic is dropped, not sent elsewhere.
        sp.endpoints[1].local = false;
        let text = restore_payload(&[sp], "10.244.0.0/16", &[]);
        assert!(text.contains("-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"shop/web has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport 30080 -j DROP"), "{text}");
        assert!(!text.contains(":KUBE-SVL-"), "{text}");
    }

    #[test]
    fn stale_chains_are_read_from_iptables_save() {
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n:KUBE-SEP-BBBB - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-AAAA\nCOMMIT\n";
        assert_eq!(
            existing_service_chains(save),
            ["KUBE-SVC-AAAA", "KUBE-SEP-BBBB"]
        );
    }
}
