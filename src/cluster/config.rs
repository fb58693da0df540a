//! Cluster configuration: kind's `kind.x-k8s.io/v1alpha4` files and Kindling's own superset.
//!
//! Decoding is strict (unknown fields and wrong types are errors with file:line:column), then
//! defaults are applied, then every validation problem is reported together.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::consts::{DEFAULT_POD_SUBNET, DEFAULT_SERVICE_SUBNET};

pub const KIND_API_VERSION: &str = "kind.x-k8s.io/v1alpha4";
pub const KINDLING_API_VERSION: &str = "kindling.dev/v1alpha1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every unknown field and wrongly typed value, one `file:line:column: message` a line.
    #[error("{}", .errors.iter().map(|e| format!("{file}:{}:{}: {}", e.line, e.column, e.message)).collect::<Vec<_>>().join("\n"))]
    Decode {
        file: String,
        errors: Vec<crate::yaml::Located>,
    },
    #[error("{file}: invalid cluster config:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { file: String, problems: Vec<String> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A node's role, as kind names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[default]
    ControlPlane,
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum FlannelBackend {
    #[default]
    Vxlan,
    HostGw,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum KubeProxyMode {
    #[default]
    Iptables,
    Ipvs,
    None,
}

/// The whole file. Fields kind accepts but Kindling does not act on are kept so that kind
/// configs load unchanged; `ignored_fields` names them so the CLI can say so.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub networking: Networking,
    #[serde(default)]
    pub feature_gates: BTreeMap<String, bool>,
    #[serde(default)]
    pub runtime_config: BTreeMap<String, String>,
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Vec<serde_json::Value>,
    #[serde(default)]
    pub containerd_config_patches: Vec<String>,
    #[serde(default, rename = "containerdConfigPatchesJSON6902")]
    pub containerd_config_patches_json6902: Vec<String>,
    /// Kindling only: the Flannel backend (`vxlan`, `hostGw`, `udp`).
    #[serde(default)]
    pub flannel: Option<Flannel>,
    /// Kindling only: how soon a silent node is NotReady and its pods are evicted.
    #[serde(default)]
    pub node_lifecycle: Option<NodeLifecycle>,
}

/// The node lifecycle timings, shorter than upstream's (40 s and 300 s) so that a classroom sees
/// a stopped node's pods move within a minute.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NodeLifecycle {
    /// Silence after which a node is NotReady/Unknown and tainted unreachable (the
    /// controller-manager's `--node-monitor-grace-period`).
    pub node_monitor_grace_period_seconds: u32,
    /// How long pods stay on a not-ready or unreachable node before they are evicted (the API
    /// server's `--default-{not-ready,unreachable}-toleration-seconds`).
    pub toleration_seconds: u32,
}

impl Default for NodeLifecycle {
    fn default() -> Self {
        NodeLifecycle {
            node_monitor_grace_period_seconds: 20,
            toleration_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flannel {
    #[serde(default)]
    pub backend: FlannelBackend,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub extra_port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub extra_mounts: Vec<Mount>,
    #[serde(default)]
    pub kubeadm_config_patches: Vec<String>,
    #[serde(default, rename = "kubeadmConfigPatchesJSON6902")]
    pub kubeadm_config_patches_json6902: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: u16,
    #[serde(default)]
    pub host_port: u16,
    #[serde(default)]
    pub listen_address: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub selinux_relabel: bool,
    #[serde(default)]
    pub propagation: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Networking {
    #[serde(default)]
    pub ip_family: Option<String>,
    #[serde(default)]
    pub api_server_address: Option<String>,
    #[serde(default)]
    pub api_server_port: Option<i32>,
    #[serde(default)]
    pub pod_subnet: Option<String>,
    #[serde(default)]
    pub service_subnet: Option<String>,
    #[serde(default)]
    pub disable_default_c_n_i: bool,
    #[serde(default)]
    pub kube_proxy_mode: Option<KubeProxyMode>,
    #[serde(default)]
    pub dns_search: Option<Vec<String>>,
}

impl Cluster {
    /// The cluster kind makes when no config is given: one control-plane node.
    pub fn default_config() -> Self {
        let mut c = Cluster {
            kind: "Cluster".into(),
            api_version: KIND_API_VERSION.into(),
            ..Default::default()
        };
        c.apply_defaults();
        c
    }

    /// Decode `text` (named `file` in errors) strictly, default it, and validate it.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let mut cluster = match crate::yaml::decode_all::<Cluster>(text) {
            (Some(c), errors) if errors.is_empty() => c,
            (_, errors) => {
                return Err(Error::Decode {
                    file: file.to_string(),
                    errors,
                });
            }
        };
        cluster.apply_defaults();
        let problems = cluster.problems();
        if problems.is_empty() {
            Ok(cluster)
        } else {
            Err(Error::Invalid {
                file: file.to_string(),
                problems,
            })
        }
    }

    fn apply_defaults(&mut self) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let n = &mut self.networking;
        n.pod_subnet
            .get_or_insert_with(|| DEFAULT_POD_SUBNET.into());
        n.service_subnet
            .get_or_insert_with(|| DEFAULT_SERVICE_SUBNET.into());
        n.api_server_address
            .get_or_insert_with(|| "127.0.0.1".into());
        n.kube_proxy_mode.get_or_insert_with(KubeProxyMode::default);
    }

    /// Every problem with the (defaulted) config, worded with the field path and the fix.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.kind != "Cluster" {
            p.push(format!("kind: must be \"Cluster\", not {:?}", self.kind));
        }
        if self.api_version != KIND_API_VERSION && self.api_version != KINDLING_API_VERSION {
            p.push(format!(
                "apiVersion: must be {KIND_API_VERSION:?} or {KINDLING_API_VERSION:?}, not {:?}",
                self.api_version
            ));
        }
        if self.flannel.is_some() && self.api_version != KINDLING_API_VERSION {
            p.push(format!(
                "flannel: is a Kindling field; set apiVersion: {KINDLING_API_VERSION}"
            ));
        }
        if let Some(l) = &self.node_lifecycle {
            if self.api_version != KINDLING_API_VERSION {
                p.push(format!(
                    "nodeLifecycle: is a Kindling field; set apiVersion: {KINDLING_API_VERSION}"
                ));
            }
            let heartbeat = crate::consts::NODE_HEARTBEAT_SECONDS;
            if l.node_monitor_grace_period_seconds < heartbeat {
                p.push(format!(
                    "nodeLifecycle.nodeMonitorGracePeriodSeconds: {} is shorter than the kubelet's {heartbeat} s heartbeat, so healthy nodes would go NotReady; use {heartbeat} or more",
                    l.node_monitor_grace_period_seconds
                ));
            }
        }
        if let Some(name) = &self.name
            && let Err(e) = validate_cluster_name(name)
        {
            p.push(format!("name: {e}"));
        }
        if !self.nodes.iter().any(|n| n.role == Role::ControlPlane) {
            p.push("nodes: at least one node must have role: control-plane".into());
        }
        let mut host_ports = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for (j, m) in node.extra_port_mappings.iter().enumerate() {
                let at = format!("nodes[{i}].extraPortMappings[{j}]");
                if m.container_port == 0 {
                    p.push(format!("{at}.containerPort: must be between 1 and 65535"));
                }
                if let Some(proto) = &m.protocol
                    && !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP")
                {
                    p.push(format!(
                        "{at}.protocol: must be TCP, UDP or SCTP, not {proto:?}"
                    ));
                }
                if m.host_port != 0
                    && let Some(prev) = host_ports.insert(
                        (m.host_port, m.protocol.clone().unwrap_or_default()),
                        at.clone(),
                    )
                {
                    p.push(format!(
                        "{at}.hostPort: {} is already mapped by {prev}",
                        m.host_port
                    ));
                }
            }
            for (j, m) in node.extra_mounts.iter().enumerate() {
                let at = format!("nodes[{i}].extraMounts[{j}]");
                if !m.container_path.starts_with('/') {
                    p.push(format!("{at}.containerPath: must be an absolute path"));
                }
                if m.host_path.is_empty() {
                    p.push(format!("{at}.hostPath: must not be empty"));
                }
            }
            for key in node.labels.keys() {
                if !is_label_key(key) {
                    p.push(format!(
                        "nodes[{i}].labels: {key:?} is not a valid label key (prefix/name, name of [A-Za-z0-9._-], at most 63 characters)"
                    ));
                }
            }
        }
        let n = &self.networking;
        let pod = n.pod_subnet.as_deref().map(parse_cidr);
        let svc = n.service_subnet.as_deref().map(parse_cidr);
        match &pod {
            Some(Err(e)) => p.push(format!("networking.podSubnet: {e}")),
            Some(Ok((_, len))) if *len > 22 => {
                p.push("networking.podSubnet: must be /22 or larger (each node gets a /24)".into())
            }
            _ => {}
        }
        if let Some(Err(e)) = &svc {
            p.push(format!("networking.serviceSubnet: {e}"));
        }
        if let (Some(Ok(a)), Some(Ok(b))) = (&pod, &svc)
            && cidrs_overlap(*a, *b)
        {
            p.push("networking: podSubnet and serviceSubnet overlap; pick disjoint ranges".into());
        }
        if let Some(port) = n.api_server_port
            && !(0..=65535).contains(&port)
        {
            p.push(format!(
                "networking.apiServerPort: {port} is not a port (0 picks a free one)"
            ));
        }
        if let Some(addr) = &n.api_server_address
            && addr.parse::<std::net::IpAddr>().is_err()
        {
            p.push(format!(
                "networking.apiServerAddress: {addr:?} is not an IP address"
            ));
        }
        if let Some(f) = &n.ip_family
            && f != "ipv4"
        {
            p.push(format!(
                "networking.ipFamily: only ipv4 is supported, not {f:?}"
            ));
        }
        p
    }

    /// Fields kind knows that Kindling accepts but does not act on.
    pub fn ignored_fields(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.feature_gates.is_empty() {
            v.push("featureGates");
        }
        if !self.runtime_config.is_empty() {
            v.push("runtimeConfig");
        }
        if !self.kubeadm_config_patches.is_empty()
            || !self.kubeadm_config_patches_json6902.is_empty()
            || self.nodes.iter().any(|n| {
                !n.kubeadm_config_patches.is_empty()
                    || !n.kubeadm_config_patches_json6902.is_empty()
            })
        {
            v.push("kubeadmConfigPatches");
        }
        if !self.containerd_config_patches.is_empty()
            || !self.containerd_config_patches_json6902.is_empty()
        {
            v.push("containerdConfigPatches");
        }
        if self.nodes.iter().any(|n| n.image.is_some()) {
            v.push("nodes[].image");
        }
        v
    }

    pub fn flannel_backend(&self) -> FlannelBackend {
        self.flannel.clone().unwrap_or_default().backend
    }

    pub fn node_lifecycle(&self) -> NodeLifecycle {
        self.node_lifecycle.unwrap_or_default()
    }
}

/// Cluster names become parts of container and host names, so they follow DNS label rules.
pub fn validate_cluster_name(name: &str) -> Result<(), String> {
    if name.len() <= 50 && crate::node::apiserver::validation::is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid cluster name: use 1-50 lower-case letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

fn is_label_key(key: &str) -> bool {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return false;
            }
            name
        }
        None => key,
    };
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Parse an IPv4 CIDR such as `10.244.0.0/16`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR like 10.244.0.0/16"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR like 10.244.0.0/16"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| format!("{s:?} has a prefix length outside 0-32"))?;
    Ok((addr, len))
}

fn cidrs_overlap(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(a.0) & mask) == (u32::from(b.0) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Result<Cluster> {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        Cluster::parse(name, &text)
    }

    #[test]
    fn every_valid_fixture_loads() {
        let dir = format!("{}/testdata", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.starts_with("valid-") {
                load(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
                seen += 1;
            }
        }
        assert!(seen >= 3);
    }

    #[test]
    fn a_kind_config_with_three_nodes_keeps_roles_labels_and_ports() {
        let c = load("valid-kind-three-nodes.yaml").unwrap();
        let roles: Vec<_> = c.nodes.iter().map(|n| n.role).collect();
        assert_eq!(roles, [Role::ControlPlane, Role::Worker, Role::Worker]);
        assert_eq!(c.nodes[1].labels["tier"], "frontend");
        assert_eq!(c.nodes[0].extra_port_mappings[0].host_port, 8080);
        assert_eq!(c.networking.pod_subnet.as_deref(), Some("10.244.0.0/16"));
    }

    #[test]
    fn an_empty_config_defaults_to_one_control_plane() {
        let c = Cluster::parse("x", "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n").unwrap();
        assert_eq!(c.nodes.len(), 1);
        assert_eq!(c.nodes[0].role, Role::ControlPlane);
        assert_eq!(c.networking.service_subnet.as_deref(), Some("10.96.0.0/16"));
    }

    #[test]
    fn kindling_config_selects_the_flannel_backend() {
        let c = load("valid-kindling-host-gw.yaml").unwrap();
        assert_eq!(c.flannel_backend(), FlannelBackend::HostGw);
    }

    #[test]
    fn kindling_config_sets_the_node_lifecycle_timings_and_defaults_the_rest() {
        let c = load("valid-kindling-node-lifecycle.yaml").unwrap();
        assert_eq!(
            c.node_lifecycle(),
            NodeLifecycle {
                node_monitor_grace_period_seconds: 10,
                toleration_seconds: 5
            }
        );
        let c = load("valid-kindling-host-gw.yaml").unwrap();
        assert_eq!(c.node_lifecycle(), NodeLifecycle::default());
        let c = Cluster::parse(
            "half.yaml",
            "kind: Cluster\napiVersion: kindling.dev/v1alpha1\nnodeLifecycle: {tolerationSeconds: 0}\nnodes: [{role: control-plane}]\n",
        )
        .unwrap();
        assert_eq!(c.node_lifecycle().node_monitor_grace_period_seconds, 20);
        assert_eq!(c.node_lifecycle().toleration_seconds, 0);
    }

    #[test]
    fn node_lifecycle_needs_the_kindling_api_version_and_a_grace_of_a_heartbeat() {
        let e = load("invalid-node-lifecycle.yaml").unwrap_err().to_string();
        assert!(
            e.contains("nodeLifecycle: is a Kindling field; set apiVersion: kindling.dev/v1alpha1"),
            "{e}"
        );
        assert!(
            e.contains("nodeLifecycle.nodeMonitorGracePeriodSeconds: 5 is shorter than the kubelet's 10 s heartbeat"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_field_is_reported_with_file_line_and_column() {
        let e = load("invalid-unknown-field.yaml").unwrap_err().to_string();
        assert!(e.starts_with("invalid-unknown-field.yaml:4:"), "{e}");
        assert!(e.contains("rol"), "{e}");
    }

    #[test]
    fn every_unknown_field_and_wrong_type_is_reported_at_once() {
        let e = load("invalid-decode-errors.yaml").unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].starts_with("invalid-decode-errors.yaml:7:15: invalid u16"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("invalid-decode-errors.yaml:8:3: unknown field `rol`"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("invalid-decode-errors.yaml:10:3: unknown field `podSubnett`"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_type_is_reported_with_its_position() {
        let e = load("invalid-wrong-type.yaml").unwrap_err().to_string();
        assert!(e.starts_with("invalid-wrong-type.yaml:6:"), "{e}");
    }

    #[test]
    fn malformed_yaml_is_a_decode_error() {
        let e = load("invalid-malformed.yaml").unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e}");
    }

    #[test]
    fn every_validation_problem_is_reported_at_once() {
        let e = load("invalid-many-problems.yaml").unwrap_err();
        let Error::Invalid { problems, .. } = &e else {
            panic!("{e}")
        };
        let all = problems.join("\n");
        for needle in [
            "name:",
            "nodes: at least one node must have role: control-plane",
            "networking.podSubnet",
            "hostPort: 80 is already mapped",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn cluster_names_follow_dns_label_rules() {
        for good in ["kindling", "a", "dev-2"] {
            assert!(validate_cluster_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Dev", "-x", "x-", "a_b", "a.b", &"x".repeat(51)] {
            assert!(validate_cluster_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlapping_subnets_are_refused() {
        let e = Cluster::parse(
            "x",
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.96.0.0/16\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlap"), "{e}");
    }
}
