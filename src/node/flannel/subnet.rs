//! Flannel's kube subnet manager: leases read from Node objects (podCIDR plus the
//! `flannel.alpha.coreos.com/*` annotations), the annotations this node publishes, and
//! `/run/flannel/subnet.env`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::{Error, Result};

/// Annotation prefix upstream's kube subnet manager writes on every Node.
pub const ANNOTATION_PREFIX: &str = "flannel.alpha.coreos.com";
pub const ANNOTATION_SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";
pub const ANNOTATION_BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
pub const ANNOTATION_BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
pub const ANNOTATION_PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";

/// An IPv4 network such as `10.244.1.0/24`; the address part may have host bits set
/// (`10.244.1.1/24` is the gateway's view of the same network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Ipv4Net { addr, prefix }
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The same prefix with the host bits cleared.
    pub fn network(&self) -> Ipv4Net {
        Ipv4Net::new(
            Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            self.prefix,
        )
    }

    /// The network's `n`th address (0 is the network address itself).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from((u32::from(self.addr) & self.mask()).wrapping_add(n))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// First and last address, for overlap tests.
    pub fn range(&self) -> (u32, u32) {
        let start = u32::from(self.addr) & self.mask();
        (start, start | !self.mask())
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let (a0, a1) = self.range();
        let (b0, b1) = other.range();
        a0 <= b1 && b0 <= a1
    }
}

impl FromStr for Ipv4Net {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadCidr(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
        Ok(Ipv4Net { addr, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A node's share of the pod network, as another node's flanneld sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub node: String,
    pub subnet: Ipv4Net,
    pub public_ip: Ipv4Addr,
    pub backend_type: String,
    pub backend_data: Value,
}

/// The lease a Node carries, once its flanneld has annotated it; `None` before that.
pub fn lease_from_node(node: &Node) -> Option<Lease> {
    let name = node.metadata.name.clone()?;
    let cidr = node.spec.as_ref()?.pod_cidr.as_deref()?;
    let ann = node.metadata.annotations.as_ref()?;
    let public_ip = ann.get(ANNOTATION_PUBLIC_IP)?.parse().ok()?;
    let backend_type = ann.get(ANNOTATION_BACKEND_TYPE)?.clone();
    let backend_data = ann
        .get(ANNOTATION_BACKEND_DATA)
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    Some(Lease {
        node: name,
        subnet: cidr.parse::<Ipv4Net>().ok()?.network(),
        public_ip,
        backend_type,
        backend_data,
    })
}

/// The annotations this node publishes, exactly as upstream writes them (backend data is
/// the JSON text, `null` for backends without any).
pub fn node_annotations(
    public_ip: Ipv4Addr,
    backend_type: &str,
    backend_data: &Value,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ANNOTATION_SUBNET_MANAGER.to_string(), "true".to_string()),
        (
            ANNOTATION_BACKEND_DATA.to_string(),
            backend_data.to_string(),
        ),
        (
            ANNOTATION_BACKEND_TYPE.to_string(),
            backend_type.to_string(),
        ),
        (ANNOTATION_PUBLIC_IP.to_string(), public_ip.to_string()),
    ])
}

/// The strategic-merge patch flanneld sends to `nodes/<n>/status`.
pub fn annotation_patch(annotations: &BTreeMap<String, String>) -> Value {
    json!({"metadata": {"annotations": annotations}})
}

/// True when the Node already carries every annotation in `want`.
pub fn has_annotations(node: &Node, want: &BTreeMap<String, String>) -> bool {
    let have = node.metadata.annotations.clone().unwrap_or_default();
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The contents of `/run/flannel/subnet.env`: the gateway address (`.1`) with the subnet's
/// prefix, as upstream writes it for the CNI plugin.
pub fn subnet_env(network: Ipv4Net, subnet: Ipv4Net, mtu: u32, ip_masq: bool) -> String {
    format!(
        "FLANNEL_NETWORK={}\nFLANNEL_SUBNET={}/{}\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ip_masq}\n",
        network.network(),
        subnet.nth(1),
        subnet.prefix
    )
}

/// `/run/flannel/subnet.env`, parsed back (the CNI plugin's view).
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetEnv {
    pub network: Ipv4Net,
    pub subnet: Ipv4Net,
    pub mtu: u32,
    pub ip_masq: bool,
}

impl SubnetEnv {
    pub fn parse(text: &str) -> Result<Self> {
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.trim().split_once('=') {
                vars.insert(k.trim(), v.trim());
            }
        }
        let get = |k: &'static str| vars.get(k).copied().ok_or(Error::SubnetEnvMissing(k));
        Ok(SubnetEnv {
            network: get("FLANNEL_NETWORK")?.parse()?,
            subnet: get("FLANNEL_SUBNET")?.parse()?,
            mtu: get("FLANNEL_MTU")?
                .parse()
                .map_err(|_| Error::SubnetEnvMissing("FLANNEL_MTU"))?,
            ip_masq: get("FLANNEL_IPMASQ")? == "true",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_env_names_the_gateway_address_like_upstream() {
        assert_eq!(
            subnet_env(net("10.244.0.0/16"), net("10.244.1.0/24"), 1450, true),
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
        );
    }

    #[test]
    fn subnet_env_reads_back_what_flanneld_writes() {
        let text = subnet_env(net("10.244.0.0/16"), net("10.244.3.0/24"), 1472, false);
        let env = SubnetEnv::parse(&text).unwrap();
        assert_eq!(env.network, net("10.244.0.0/16"));
        assert_eq!(env.subnet, net("10.244.3.1/24"));
        assert_eq!(env.subnet.network(), net("10.244.3.0/24"));
        assert_eq!(env.mtu, 1472);
        assert!(!env.ip_masq);
    }

    #[test]
    fn subnet_env_without_a_subnet_is_an_error_naming_it() {
        let e = SubnetEnv::parse("FLANNEL_NETWORK=10.244.0.0/16\n").unwrap_err();
        assert!(e.to_string().contains("FLANNEL_SUBNET"), "{e}");
    }

    #[test]
    fn networks_know_their_addresses_and_overlaps() {
        let n = net("10.244.5.7/24");
        assert_eq!(n.network(), net("10.244.5.0/24"));
        assert_eq!(n.nth(0), Ipv4Addr::new(10, 244, 5, 0));
        assert!(n.contains(Ipv4Addr::new(10, 244, 5, 200)));
        assert!(!n.contains(Ipv4Addr::new(10, 244, 6, 1)));
        assert!(net("10.244.0.0/16").overlaps(&n));
        assert!(!net("10.244.4.0/24").overlaps(&n));
        assert!("10.244.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.244.0.0/33".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn leases_come_from_annotated_nodes_only() {
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "w1"},
            "spec": {"podCIDR": "10.244.2.0/24"}
        }))
        .unwrap();
        assert_eq!(lease_from_node(&node), None);
        let data = json!({"VNI": 1, "VtepMAC": "aa:bb:cc:dd:ee:ff"});
        let ann = node_annotations(Ipv4Addr::new(172, 18, 0, 4), "vxlan", &data);
        assert_eq!(
            ann[ANNOTATION_BACKEND_DATA],
            r#"{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}"#
        );
        assert!(!has_annotations(&node, &ann));
        node.metadata.annotations = Some(ann.clone());
        assert!(has_annotations(&node, &ann));
        let lease = lease_from_node(&node).unwrap();
        assert_eq!(lease.subnet, net("10.244.2.0/24"));
        assert_eq!(lease.public_ip, Ipv4Addr::new(172, 18, 0, 4));
        assert_eq!(lease.backend_type, "vxlan");
        assert_eq!(lease.backend_data["VtepMAC"], "aa:bb:cc:dd:ee:ff");
    }

    #[test]
    fn backends_without_data_publish_null_like_upstream() {
        let ann = node_annotations(Ipv4Addr::new(172, 18, 0, 2), "host-gw", &Value::Null);
        assert_eq!(ann[ANNOTATION_BACKEND_DATA], "null");
        assert_eq!(ann[ANNOTATION_SUBNET_MANAGER], "true");
        let patch = annotation_patch(&ann);
        assert_eq!(
            patch["metadata"]["annotations"][ANNOTATION_PUBLIC_IP],
            "172.18.0.2"
        );
    }
}
