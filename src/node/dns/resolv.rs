//! resolv.conf in both directions: reading the node's (the DNS server's upstreams, the
//! kubelet's host search path) and building a pod's from its dnsPolicy and dnsConfig the way
//! upstream's kubelet does (`pkg/kubelet/network/dns/dns.go`).

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::Pod;

/// What upstream's kubelet puts in every cluster-first pod's options.
const DEFAULT_OPTIONS: &[&str] = &["ndots:5"];
/// glibc reads at most three name servers (upstream's `MaxDNSNameservers`).
const MAX_NAMESERVERS: usize = 3;
/// Upstream's `MaxDNSSearchPaths` and `MaxDNSSearchListChars`.
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// The parts of a resolv.conf a pod gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text (later `search` lines replace earlier ones, as in glibc).
    pub fn parse(text: &str) -> Self {
        let mut r = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(String::from)),
                Some("search") | Some("domain") => r.searches = words.map(String::from).collect(),
                Some("options") => r.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        r
    }

    /// The file's text, as the runtime writes it into the pod.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// Which resolv.conf a pod starts from (upstream's `podDNSType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Cluster,
    Host,
    None,
}

fn kind(pod: &Pod, cluster_dns: Option<Ipv4Addr>) -> Kind {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let kind = match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Kind::None,
        Some("Default") => Kind::Host,
        Some("ClusterFirstWithHostNet") => Kind::Cluster,
        // ClusterFirst, the default: host-network pods get the node's resolver instead.
        _ if host_network => Kind::Host,
        _ => Kind::Cluster,
    };
    // Without a cluster DNS address there is nothing cluster-first could point at.
    if kind == Kind::Cluster && cluster_dns.is_none() {
        Kind::Host
    } else {
        kind
    }
}

/// The pod's resolv.conf: the cluster DNS with `<ns>.svc.<domain> svc.<domain> <domain>` and
/// `ndots:5` for cluster-first pods, the node's file for `Default`, nothing for `None`; then
/// `dnsConfig` appended (options of the same name replaced), within glibc's limits.
///
/// One departure from upstream: a loopback name server of the node (Docker's 127.0.0.11) is
/// unreachable from a pod's own network namespace, so a pod that is not on the host network
/// gets the cluster DNS in its place, which forwards everything outside the cluster domain to
/// that same resolver.
pub fn pod_resolv_conf(
    pod: &Pod,
    node: &ResolvConf,
    cluster_dns: Option<Ipv4Addr>,
    domain: &str,
) -> ResolvConf {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut r = match kind(pod, cluster_dns) {
        Kind::Cluster => ResolvConf {
            nameservers: cluster_dns.into_iter().map(|ip| ip.to_string()).collect(),
            searches: dedup(
                [
                    format!("{ns}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.to_string(),
                ]
                .into_iter()
                .chain(node.searches.iter().cloned()),
            ),
            options: DEFAULT_OPTIONS.iter().map(|s| s.to_string()).collect(),
        },
        Kind::Host => {
            let mut r = node.clone();
            if !host_network {
                let reachable: Vec<String> = r
                    .nameservers
                    .iter()
                    .filter(|n| !n.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
                    .cloned()
                    .collect();
                r.nameservers = if reachable.len() == r.nameservers.len() {
                    reachable
                } else {
                    dedup(
                        cluster_dns
                            .map(|ip| ip.to_string())
                            .into_iter()
                            .chain(reachable),
                    )
                };
            }
            r
        }
        Kind::None => ResolvConf::default(),
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        r.nameservers = dedup(
            r.nameservers
                .into_iter()
                .chain(cfg.nameservers.iter().flatten().cloned()),
        );
        r.searches = dedup(
            r.searches
                .into_iter()
                .chain(cfg.searches.iter().flatten().cloned()),
        );
        for opt in cfg.options.iter().flatten() {
            let Some(name) = opt.name.as_deref() else {
                continue;
            };
            let text = match opt.value.as_deref() {
                Some(v) if !v.is_empty() => format!("{name}:{v}"),
                _ => name.to_string(),
            };
            match r
                .options
                .iter_mut()
                .find(|o| o.split(':').next() == Some(name))
            {
                Some(existing) => *existing = text,
                None => r.options.push(text),
            }
        }
    }
    r.nameservers.truncate(MAX_NAMESERVERS);
    let mut chars = 0;
    r.searches = r
        .searches
        .into_iter()
        .take(MAX_SEARCHES)
        .take_while(|s| {
            chars += s.len() + 1;
            chars <= MAX_SEARCH_CHARS
        })
        .collect();
    r
}

fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NODE: &str = "# Generated by Docker\nnameserver 127.0.0.11\nsearch corp.example\noptions edns0 trust-ad ndots:0\n";

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "lab"}, "spec": spec}))
            .unwrap()
    }

    fn build(spec: serde_json::Value) -> ResolvConf {
        pod_resolv_conf(
            &pod(spec),
            &ResolvConf::parse(NODE),
            Some(Ipv4Addr::new(10, 96, 0, 10)),
            "cluster.local",
        )
    }

    #[test]
    fn the_nodes_file_is_parsed_without_comments() {
        let r = ResolvConf::parse(NODE);
        assert_eq!(r.nameservers, ["127.0.0.11"]);
        assert_eq!(r.searches, ["corp.example"]);
        assert_eq!(r.options, ["edns0", "trust-ad", "ndots:0"]);
    }

    #[test]
    fn cluster_first_pods_get_the_cluster_dns_search_path_and_ndots_5() {
        let r = build(json!({"containers": []}));
        assert_eq!(
            r.render(),
            "search lab.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert_eq!(r, build(json!({"dnsPolicy": "ClusterFirst"})));
    }

    #[test]
    fn host_network_pods_get_the_nodes_file_unless_cluster_first_with_host_net() {
        let host = build(json!({"hostNetwork": true}));
        assert_eq!(host, ResolvConf::parse(NODE));
        let with = build(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert_eq!(with.nameservers, ["10.96.0.10"]);
        assert_eq!(with.options, ["ndots:5"]);
        // Without host networking it is plain cluster-first.
        assert_eq!(
            build(json!({"dnsPolicy": "ClusterFirstWithHostNet"})),
            build(json!({}))
        );
    }

    #[test]
    fn default_policy_uses_the_nodes_file_with_an_unreachable_loopback_replaced() {
        let r = build(json!({"dnsPolicy": "Default"}));
        assert_eq!(r.nameservers, ["10.96.0.10"]);
        assert_eq!(r.searches, ["corp.example"]);
        assert_eq!(r.options, ["edns0", "trust-ad", "ndots:0"]);
        let real = pod_resolv_conf(
            &pod(json!({"dnsPolicy": "Default"})),
            &ResolvConf::parse("nameserver 192.168.1.1\n"),
            Some(Ipv4Addr::new(10, 96, 0, 10)),
            "cluster.local",
        );
        assert_eq!(real.nameservers, ["192.168.1.1"]);
    }

    #[test]
    fn none_policy_takes_only_dns_config() {
        let r = build(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.2.3.4"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            r.render(),
            "search a.example\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"
        );
        assert_eq!(build(json!({"dnsPolicy": "None"})), ResolvConf::default());
    }

    #[test]
    fn dns_config_is_appended_and_its_options_replace_same_named_ones() {
        let r = build(json!({"dnsConfig": {
            "nameservers": ["10.96.0.10", "8.8.8.8"], "searches": ["my.dns.search.suffix"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}}));
        assert_eq!(r.nameservers, ["10.96.0.10", "8.8.8.8"]);
        assert_eq!(
            r.searches,
            [
                "lab.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "my.dns.search.suffix"
            ]
        );
        assert_eq!(r.options, ["ndots:1", "single-request-reopen"]);
    }

    #[test]
    fn limits_keep_three_nameservers_and_32_searches() {
        let many: Vec<String> = (0..40).map(|i| format!("s{i}.example")).collect();
        let r = build(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"], "searches": many}}));
        assert_eq!(r.nameservers.len(), 3);
        assert_eq!(r.searches.len(), 32);
    }

    #[test]
    fn without_a_cluster_dns_cluster_first_falls_back_to_the_node() {
        let r = pod_resolv_conf(
            &pod(json!({})),
            &ResolvConf::parse("nameserver 192.168.1.1\n"),
            None,
            "cluster.local",
        );
        assert_eq!(r.nameservers, ["192.168.1.1"]);
    }
}
