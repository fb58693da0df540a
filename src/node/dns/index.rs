//! The in-memory record index of the cluster domain, rebuilt from the watched Services,
//! EndpointSlices and Pods, and the lookup that answers a query from it (the names and records
//! of Kubernetes' DNS specification, as CoreDNS's kubernetes plugin serves them).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A record in the index's own terms: owner names are lowercase and end with a dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rr {
    A(String, Ipv4Addr),
    Aaaa(String, Ipv6Addr),
    Cname(String, String),
    Srv(String, Srv),
    Ptr(String, String),
    /// The zone's SOA (owner = the zone), answered for the apex and put in negative answers.
    Soa(String),
    /// The zone's name server (owner = the zone).
    Ns(String, String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The query types the index knows; everything else gets NODATA for an existing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qtype {
    A,
    Aaaa,
    Cname,
    Srv,
    Ptr,
    Soa,
    Ns,
    Any,
    Other,
}

/// What the index says about a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found {
        answers: Vec<Rr>,
        additionals: Vec<Rr>,
    },
    /// The name exists but has no record of that type (NOERROR, empty answer).
    NoData,
    /// A name in the cluster domain that does not exist.
    NxDomain,
    /// Not ours: ask the node's resolver.
    Forward,
    /// An ExternalName Service: the CNAME, then the target resolved elsewhere (upstream).
    External { cname: Rr, target: String },
}

/// The records of one name.
#[derive(Debug, Default, Clone, PartialEq)]
struct Node {
    a: BTreeSet<Ipv4Addr>,
    aaaa: BTreeSet<Ipv6Addr>,
    cname: Option<String>,
    srv: BTreeSet<Srv>,
}

/// Every name of the cluster domain with its records, plus reverse names for Service and
/// endpoint addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    /// The cluster domain with a trailing dot, e.g. `cluster.local.`.
    zone: String,
    names: HashMap<String, Node>,
    /// Names that exist only because a longer name ends with them (empty non-terminals).
    parents: HashSet<String>,
    ptr: HashMap<IpAddr, String>,
}

/// A DNS name with exactly one trailing dot, lowercased.
pub fn fqdn(name: &str) -> String {
    let mut n = name.trim_end_matches('.').to_ascii_lowercase();
    n.push('.');
    n
}

/// An IP as the label CoreDNS uses for addresses without a hostname: `10-244-1-5`.
pub fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse-lookup name of `ip` (`5.1.244.10.in-addr.arpa.`) back to an address.
pub fn parse_reverse(name: &str) -> Option<IpAddr> {
    let rest = name.strip_suffix(".in-addr.arpa.")?;
    let octets: Vec<u8> = rest
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    let [d, c, b, a] = octets.as_slice() else {
        return None;
    };
    Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)))
}

impl Index {
    /// An index with no objects: only the zone's own names.
    pub fn empty(domain: &str) -> Self {
        Self::build(domain, &[], &[], &[])
    }

    /// The index of `domain` for these objects.
    pub fn build(
        domain: &str,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        pods: &[Arc<Pod>],
    ) -> Self {
        let zone = fqdn(domain);
        let mut ix = Index {
            zone: zone.clone(),
            names: HashMap::new(),
            parents: HashSet::new(),
            ptr: HashMap::new(),
        };
        // The branches every cluster has, even before its first Service.
        for branch in ["svc", "pod"] {
            ix.parents.insert(format!("{branch}.{zone}"));
        }
        let mut slices_of: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            let (Some(ns), Some(svc)) = (
                s.metadata.namespace.as_deref(),
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL)),
            ) else {
                continue;
            };
            slices_of.entry((ns, svc.as_str())).or_default().push(s);
        }
        for svc in services {
            let (Some(ns), Some(name), Some(spec)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
                svc.spec.as_ref(),
            ) else {
                continue;
            };
            let svc_name = format!("{name}.{ns}.svc.{zone}");
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                    ix.node(&svc_name).cname = Some(fqdn(target));
                }
                continue;
            }
            let headless = spec.cluster_ip.as_deref() == Some("None");
            let ports = spec.ports.as_deref().unwrap_or_default();
            if !headless {
                let ips: Vec<IpAddr> = spec
                    .cluster_ips
                    .iter()
                    .flatten()
                    .chain(spec.cluster_ip.as_ref())
                    .filter_map(|ip| ip.parse().ok())
                    .collect();
                if ips.is_empty() {
                    continue;
                }
                for ip in &ips {
                    ix.add_ip(&svc_name, *ip);
                    ix.ptr.insert(*ip, svc_name.clone());
                }
                for p in ports {
                    let (Some(port_name), Ok(port)) = (p.name.as_deref(), u16::try_from(p.port))
                    else {
                        continue;
                    };
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    let srv = Srv {
                        priority: 0,
                        weight: 100,
                        port,
                        target: svc_name.clone(),
                    };
                    ix.node(&format!("_{port_name}._{proto}.{svc_name}"))
                        .srv
                        .insert(srv.clone());
                    ix.node(&svc_name).srv.insert(srv);
                }
                ix.node(&svc_name);
                continue;
            }
            // Headless: the ready endpoints, each under its own name too.
            ix.node(&svc_name);
            let mut srvs: HashMap<String, Vec<(u16, String)>> = HashMap::new();
            for slice in slices_of.get(&(ns, name)).into_iter().flatten() {
                for ep in &slice.endpoints {
                    if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                        continue;
                    }
                    for addr in &ep.addresses {
                        let Ok(ip) = addr.parse::<IpAddr>() else {
                            continue;
                        };
                        let label = ep
                            .hostname
                            .as_deref()
                            .filter(|h| !h.is_empty())
                            .map(str::to_ascii_lowercase)
                            .unwrap_or_else(|| dashed(&ip));
                        let ep_name = format!("{label}.{svc_name}");
                        ix.add_ip(&svc_name, ip);
                        ix.add_ip(&ep_name, ip);
                        ix.ptr.entry(ip).or_insert_with(|| ep_name.clone());
                        for p in slice.ports.iter().flatten() {
                            let (Some(port_name), Some(port)) = (
                                p.name.as_deref().filter(|n| !n.is_empty()),
                                p.port.and_then(|n| u16::try_from(n).ok()),
                            ) else {
                                continue;
                            };
                            let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                            srvs.entry(format!("_{port_name}._{proto}.{svc_name}"))
                                .or_default()
                                .push((port, ep_name.clone()));
                        }
                    }
                }
            }
            for (srv_name, targets) in srvs {
                // CoreDNS spreads the weight evenly over a name's targets.
                let weight = (100 / targets.len()).max(1) as u16;
                for (port, target) in targets {
                    let srv = Srv {
                        priority: 0,
                        weight,
                        port,
                        target,
                    };
                    ix.node(&srv_name).srv.insert(srv.clone());
                    ix.node(&svc_name).srv.insert(srv);
                }
            }
        }
        // `<dashed-ip>.<ns>.pod.<zone>` for pods that exist (CoreDNS's `pods verified`).
        for pod in pods {
            let Some(ns) = pod.metadata.namespace.as_deref() else {
                continue;
            };
            for ip in pod
                .status
                .as_ref()
                .into_iter()
                .flat_map(|s| s.pod_ips.iter().flatten().map(|p| p.ip.as_str()))
                .chain(pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()))
            {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    ix.add_ip(&format!("{}.{ns}.pod.{zone}", dashed(&ip)), ip);
                }
            }
        }
        let names: Vec<String> = ix.names.keys().cloned().collect();
        for n in names {
            let mut rest = n.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() <= zone.len() {
                    break;
                }
                ix.parents.insert(parent.to_string());
                rest = parent;
            }
        }
        ix
    }

    fn node(&mut self, name: &str) -> &mut Node {
        self.names.entry(name.to_string()).or_default()
    }

    fn add_ip(&mut self, name: &str, ip: IpAddr) {
        let n = self.node(name);
        match ip {
            IpAddr::V4(v4) => n.a.insert(v4),
            IpAddr::V6(v6) => n.aaaa.insert(v6),
        };
    }

    /// The cluster domain with its trailing dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Whether `name` (lowercase, with a trailing dot) is in the cluster domain.
    pub fn is_ours(&self, name: &str) -> bool {
        name == self.zone || name.ends_with(&format!(".{}", self.zone))
    }

    /// Answers `qtype` for `name` (lowercase, with a trailing dot).
    pub fn lookup(&self, name: &str, qtype: Qtype) -> Answer {
        if name.ends_with(".in-addr.arpa.") {
            return match (qtype, parse_reverse(name).and_then(|ip| self.ptr.get(&ip))) {
                (Qtype::Ptr | Qtype::Any, Some(target)) => Answer::Found {
                    answers: vec![Rr::Ptr(name.to_string(), target.clone())],
                    additionals: vec![],
                },
                (_, Some(_)) => Answer::NoData,
                (_, None) => Answer::Forward,
            };
        }
        if !self.is_ours(name) {
            return Answer::Forward;
        }
        if name == self.zone {
            return match qtype {
                Qtype::Soa => found(vec![Rr::Soa(self.zone.clone())]),
                Qtype::Ns => found(vec![Rr::Ns(
                    self.zone.clone(),
                    format!("ns.dns.{}", self.zone),
                )]),
                _ => Answer::NoData,
            };
        }
        let Some(node) = self.names.get(name) else {
            return if self.parents.contains(name) {
                Answer::NoData
            } else {
                Answer::NxDomain
            };
        };
        if let Some(target) = &node.cname {
            let cname = Rr::Cname(name.to_string(), target.clone());
            if qtype == Qtype::Cname {
                return found(vec![cname]);
            }
            // A target inside the cluster is answered here; CoreDNS does the same lookup.
            if self.is_ours(target) {
                let mut answers = vec![cname];
                if let Answer::Found { answers: more, .. } = self.lookup(target, qtype) {
                    answers.extend(more);
                }
                return found(answers);
            }
            return Answer::External {
                cname,
                target: target.clone(),
            };
        }
        let a = || node.a.iter().map(|ip| Rr::A(name.to_string(), *ip));
        let aaaa = || node.aaaa.iter().map(|ip| Rr::Aaaa(name.to_string(), *ip));
        let srv = || {
            node.srv
                .iter()
                .map(|s| Rr::Srv(name.to_string(), s.clone()))
        };
        let answers: Vec<Rr> = match qtype {
            Qtype::A => a().collect(),
            Qtype::Aaaa => aaaa().collect(),
            Qtype::Srv => srv().collect(),
            Qtype::Any => a().chain(aaaa()).chain(srv()).collect(),
            _ => vec![],
        };
        if answers.is_empty() {
            return Answer::NoData;
        }
        // SRV answers carry their targets' addresses, as CoreDNS's do.
        let mut additionals = Vec::new();
        if qtype == Qtype::Srv {
            let targets: BTreeSet<&str> = node.srv.iter().map(|s| s.target.as_str()).collect();
            for t in targets {
                if let Some(n) = self.names.get(t) {
                    additionals.extend(n.a.iter().map(|ip| Rr::A(t.to_string(), *ip)));
                    additionals.extend(n.aaaa.iter().map(|ip| Rr::Aaaa(t.to_string(), *ip)));
                }
            }
        }
        Answer::Found {
            answers,
            additionals,
        }
    }

    /// How many names the index holds (for the log).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn found(answers: Vec<Rr>) -> Answer {
    Answer::Found {
        answers,
        additionals: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn index() -> Index {
        let services = vec![
            svc(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.5.5", "clusterIPs": ["10.96.5.5"],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})),
            svc(
                json!({"metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.1",
                         "ports": [{"name": "https", "port": 443}]}}),
            ),
            svc(json!({"metadata": {"name": "plain", "namespace": "lab"},
                "spec": {"clusterIP": "10.96.7.7", "ports": [{"port": 8080}]}})),
            svc(
                json!({"metadata": {"name": "nginx", "namespace": "default"},
                "spec": {"clusterIP": "None",
                         "ports": [{"name": "web", "port": 80}]}}),
            ),
            svc(json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "Example.COM"}})),
            svc(
                json!({"metadata": {"name": "alias", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}}),
            ),
        ];
        let slices = vec![slice(json!({
            "metadata": {"name": "nginx-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "nginx"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.5"], "hostname": "web-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.2.6"], "hostname": "web-1", "conditions": {"ready": true}},
                {"addresses": ["10.244.2.7"], "conditions": {}},
                {"addresses": ["10.244.2.9"], "hostname": "web-2", "conditions": {"ready": false}}
            ],
            "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}]
        }))];
        let pods = vec![Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "default"},
                "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}]}
            }))
            .unwrap(),
        )];
        Index::build("cluster.local", &services, &slices, &pods)
    }

    fn a(ix: &Index, name: &str) -> Vec<Ipv4Addr> {
        match ix.lookup(name, Qtype::A) {
            Answer::Found { answers, .. } => answers
                .into_iter()
                .filter_map(|r| match r {
                    Rr::A(_, ip) => Some(ip),
                    _ => None,
                })
                .collect(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn a_cluster_ip_service_answers_with_its_cluster_ip() {
        let ix = index();
        assert_eq!(
            a(&ix, "web.default.svc.cluster.local."),
            [Ipv4Addr::new(10, 96, 5, 5)]
        );
        assert_eq!(
            a(&ix, "kubernetes.default.svc.cluster.local."),
            [Ipv4Addr::new(10, 96, 0, 1)]
        );
    }

    #[test]
    fn a_headless_service_answers_with_its_ready_endpoints_and_each_by_hostname() {
        let ix = index();
        assert_eq!(
            a(&ix, "nginx.default.svc.cluster.local."),
            ["10.244.1.5", "10.244.2.6", "10.244.2.7"].map(|s| s.parse::<Ipv4Addr>().unwrap())
        );
        assert_eq!(
            a(&ix, "web-0.nginx.default.svc.cluster.local."),
            [Ipv4Addr::new(10, 244, 1, 5)]
        );
        // Without a hostname, the dashed address names the endpoint.
        assert_eq!(
            a(&ix, "10-244-2-7.nginx.default.svc.cluster.local."),
            [Ipv4Addr::new(10, 244, 2, 7)]
        );
        // Not ready: not published.
        assert_eq!(
            ix.lookup("web-2.nginx.default.svc.cluster.local.", Qtype::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn srv_records_exist_for_named_ports_only() {
        let ix = index();
        let Answer::Found {
            answers,
            additionals,
        } = ix.lookup("_http._tcp.web.default.svc.cluster.local.", Qtype::Srv)
        else {
            panic!()
        };
        assert_eq!(
            answers,
            [Rr::Srv(
                "_http._tcp.web.default.svc.cluster.local.".into(),
                Srv {
                    priority: 0,
                    weight: 100,
                    port: 80,
                    target: "web.default.svc.cluster.local.".into()
                }
            )]
        );
        assert_eq!(
            additionals,
            [Rr::A(
                "web.default.svc.cluster.local.".into(),
                Ipv4Addr::new(10, 96, 5, 5)
            )]
        );
        // A single unnamed port has no SRV name.
        assert_eq!(
            ix.lookup("_tcp.plain.lab.svc.cluster.local.", Qtype::Srv),
            Answer::NxDomain
        );
        assert_eq!(
            ix.lookup("plain.lab.svc.cluster.local.", Qtype::Srv),
            Answer::NoData
        );
        // The `_tcp` level exists as a parent of the SRV name.
        assert_eq!(
            ix.lookup("_tcp.web.default.svc.cluster.local.", Qtype::Srv),
            Answer::NoData
        );
    }

    #[test]
    fn headless_srv_points_at_each_endpoint_with_the_endpoint_port() {
        let ix = index();
        let Answer::Found {
            answers,
            additionals,
        } = ix.lookup("_web._tcp.nginx.default.svc.cluster.local.", Qtype::Srv)
        else {
            panic!()
        };
        let targets: Vec<(u16, u16, String)> = answers
            .into_iter()
            .map(|r| match r {
                Rr::Srv(_, s) => (s.port, s.weight, s.target),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            targets,
            [
                (
                    8080,
                    33,
                    "10-244-2-7.nginx.default.svc.cluster.local.".into()
                ),
                (8080, 33, "web-0.nginx.default.svc.cluster.local.".into()),
                (8080, 33, "web-1.nginx.default.svc.cluster.local.".into()),
            ]
        );
        assert_eq!(additionals.len(), 3);
    }

    #[test]
    fn external_name_services_are_cnames_chased_inside_the_cluster() {
        let ix = index();
        assert_eq!(
            ix.lookup("ext.default.svc.cluster.local.", Qtype::A),
            Answer::External {
                cname: Rr::Cname(
                    "ext.default.svc.cluster.local.".into(),
                    "example.com.".into()
                ),
                target: "example.com.".into()
            }
        );
        assert_eq!(
            ix.lookup("alias.default.svc.cluster.local.", Qtype::A),
            Answer::Found {
                answers: vec![
                    Rr::Cname(
                        "alias.default.svc.cluster.local.".into(),
                        "web.default.svc.cluster.local.".into()
                    ),
                    Rr::A(
                        "web.default.svc.cluster.local.".into(),
                        Ipv4Addr::new(10, 96, 5, 5)
                    )
                ],
                additionals: vec![]
            }
        );
    }

    #[test]
    fn aaaa_for_an_existing_name_is_nodata_and_unknown_names_are_nxdomain() {
        let ix = index();
        assert_eq!(
            ix.lookup("web.default.svc.cluster.local.", Qtype::Aaaa),
            Answer::NoData
        );
        assert_eq!(
            ix.lookup("nope.default.svc.cluster.local.", Qtype::A),
            Answer::NxDomain
        );
        // What a search path tries first for `web.default` from namespace `default`.
        assert_eq!(
            ix.lookup("web.default.default.svc.cluster.local.", Qtype::A),
            Answer::NxDomain
        );
        for parent in [
            "default.svc.cluster.local.",
            "svc.cluster.local.",
            "pod.cluster.local.",
            "cluster.local.",
        ] {
            assert_eq!(ix.lookup(parent, Qtype::A), Answer::NoData, "{parent}");
        }
        assert_eq!(
            ix.lookup("nowhere.svc.cluster.local.", Qtype::A),
            Answer::NxDomain
        );
        assert_eq!(
            ix.lookup("cluster.local.", Qtype::Soa),
            Answer::Found {
                answers: vec![Rr::Soa("cluster.local.".into())],
                additionals: vec![]
            }
        );
    }

    #[test]
    fn other_names_are_forwarded_and_pods_answer_by_dashed_address() {
        let ix = index();
        assert_eq!(ix.lookup("dev-control-plane.", Qtype::A), Answer::Forward);
        assert_eq!(ix.lookup("example.com.", Qtype::A), Answer::Forward);
        assert_eq!(ix.lookup("notcluster.local.", Qtype::A), Answer::Forward);
        assert_eq!(
            a(&ix, "10-244-1-5.default.pod.cluster.local."),
            [Ipv4Addr::new(10, 244, 1, 5)]
        );
        assert_eq!(
            ix.lookup("10-244-9-9.default.pod.cluster.local.", Qtype::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn reverse_lookups_name_services_and_endpoints_and_forward_the_rest() {
        let ix = index();
        assert_eq!(
            ix.lookup("5.5.96.10.in-addr.arpa.", Qtype::Ptr),
            Answer::Found {
                answers: vec![Rr::Ptr(
                    "5.5.96.10.in-addr.arpa.".into(),
                    "web.default.svc.cluster.local.".into()
                )],
                additionals: vec![]
            }
        );
        assert_eq!(
            ix.lookup("2.0.18.172.in-addr.arpa.", Qtype::Ptr),
            Answer::Forward
        );
        assert_eq!(
            parse_reverse("5.1.244.10.in-addr.arpa."),
            Some("10.244.1.5".parse().unwrap())
        );
        assert_eq!(parse_reverse("1.2.in-addr.arpa."), None);
    }

    #[test]
    fn names_are_normalised_to_lowercase_with_one_trailing_dot() {
        assert_eq!(fqdn("Web.Default"), "web.default.");
        assert_eq!(fqdn("a.b.."), "a.b.");
        assert_eq!(dashed(&"10.244.0.3".parse().unwrap()), "10-244-0-3");
        assert!(Index::empty("cluster.local").is_empty());
    }
}
