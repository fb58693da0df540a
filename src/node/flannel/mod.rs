//! flanneld with the kube subnet manager: this node's pod subnet from its Node's podCIDR, the
//! vxlan / host-gw / udp backends, masquerade rules, subnet.env and the CNI network list.

pub mod cni;
pub mod hostgw;
pub mod iptables;
pub mod subnet;
pub mod udp;
pub mod vxlan;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::Value;

use crate::cluster::config::FlannelBackend;
use crate::consts::KUBELET_KUBECONFIG_PATH;
use crate::node::config::NodeConfig;
use subnet::{Ipv4Net, Lease};

/// What upstream's DaemonSet mounts and the CNI plugin reads.
pub const SUBNET_ENV_PATH: &str = "/run/flannel/subnet.env";
pub const CNI_CONF_PATH: &str = "/etc/cni/net.d/10-flannel.conflist";
/// Where the CNI plugin keeps each container's delegate config for DEL.
pub const CNI_DATA_DIR: &str = "/var/lib/cni/flannel";
/// The node's interface on the Docker network, which carries the overlay.
pub const EXT_IFACE: &str = "eth0";
/// Upstream's namespace and ConfigMap for the network config.
pub const NAMESPACE: &str = "kube-flannel";
pub const CONFIG_MAP: &str = "kube-flannel-cfg";
/// How often routes and iptables rules are re-asserted, in case something removed them
/// (upstream re-checks its iptables rules on a similar period).
const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not a CIDR like 10.244.0.0/16")]
    BadCidr(String),
    #[error("{SUBNET_ENV_PATH} has no {0}; is flanneld running?")]
    SubnetEnvMissing(&'static str),
    #[error("`{cmd}` failed: {stderr}")]
    CommandFailed { cmd: String, stderr: String },
    #[error("could not run `{cmd}`")]
    CommandStart { cmd: String, source: std::io::Error },
    #[error("could not use {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("interface {0} has no IPv4 address")]
    NoAddress(String),
    #[error("could not load the kubeconfig {KUBELET_KUBECONFIG_PATH}")]
    Kubeconfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("node {0}: the API request failed")]
    Api(String, #[source] kube::Error),
    #[error("watching nodes failed")]
    Watch(#[from] watcher::Error),
    #[error("node {node} got a new podCIDR {new} (was {old}); restarting flanneld")]
    SubnetChanged {
        node: String,
        old: Ipv4Net,
        new: Ipv4Net,
    },
    #[error(transparent)]
    Config(#[from] crate::node::config::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A command line, for the `ip`, `bridge` and `iptables` tools.
pub type Cmd = Vec<String>;

pub fn cmd(args: &[&str]) -> Cmd {
    args.iter().map(|s| s.to_string()).collect()
}

async fn output(args: &[&str], stdin: Option<&str>) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let line = args.join(" ");
    let mut child = tokio::process::Command::new(args[0])
        .args(&args[1..])
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| Error::CommandStart {
            cmd: line.clone(),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| Error::CommandStart {
            cmd: line.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::CommandFailed {
            cmd: line,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub async fn run_cmd(args: &[&str]) -> Result<()> {
    output(args, None).await.map(|_| ())
}

pub async fn run_cmd_output(args: &[&str]) -> Result<String> {
    output(args, None).await
}

pub async fn run_cmd_stdin(args: &[&str], stdin: &str) -> Result<()> {
    output(args, Some(stdin)).await.map(|_| ())
}

pub async fn run_line(c: &Cmd) -> Result<()> {
    let args: Vec<&str> = c.iter().map(String::as_str).collect();
    run_cmd(&args).await
}

/// Make `addr` the device's only IPv4 address, leaving a correct one untouched so traffic is
/// not interrupted when flanneld restarts.
pub async fn ensure_only_addr(dev: &str, addr: Ipv4Net) -> Result<()> {
    let out = run_cmd_output(&["ip", "-j", "-4", "addr", "show", "dev", dev]).await?;
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut found = false;
    for a in v[0]["addr_info"].as_array().into_iter().flatten() {
        let have = format!(
            "{}/{}",
            a["local"].as_str().unwrap_or(""),
            a["prefixlen"].as_u64().unwrap_or(0)
        );
        if have == addr.to_string() {
            found = true;
        } else {
            run_cmd(&["ip", "addr", "del", &have, "dev", dev]).await?;
        }
    }
    if !found {
        run_cmd(&["ip", "addr", "add", &addr.to_string(), "dev", dev]).await?;
    }
    Ok(())
}

/// This node's place in the pod network.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalNode {
    pub name: String,
    pub network: Ipv4Net,
    pub subnet: Ipv4Net,
    pub public_ip: Ipv4Addr,
    pub ext_iface: String,
    pub ext_mtu: u32,
}

/// The backend type string upstream publishes and shows in net-conf.json.
pub fn backend_type(b: &FlannelBackend) -> &'static str {
    match b {
        FlannelBackend::Vxlan => vxlan::BACKEND_TYPE,
        FlannelBackend::HostGw => hostgw::BACKEND_TYPE,
        FlannelBackend::Udp => udp::BACKEND_TYPE,
    }
}

/// `net-conf.json` of the kube-flannel-cfg ConfigMap, laid out as upstream's manifest has it.
pub fn net_conf_json(network: &str, backend: &FlannelBackend) -> String {
    format!(
        "{{\n  \"Network\": \"{network}\",\n  \"Backend\": {{\n    \"Type\": \"{}\"\n  }}\n}}\n",
        backend_type(backend)
    )
}

/// The remote leases a backend should route: every other node that published a lease of
/// our backend type.
pub fn remote_leases(nodes: &[Node], me: &str, backend: &str) -> Vec<Lease> {
    let mut v: Vec<Lease> = nodes
        .iter()
        .filter_map(subnet::lease_from_node)
        .filter(|l| l.node != me && l.backend_type == backend)
        .collect();
    v.sort_by(|a, b| a.node.cmp(&b.node));
    v
}

/// What to undo and what to (re)apply to go from `applied` to `desired`. With `force`, every
/// desired lease is re-applied (the periodic resync), which is safe because the commands
/// replace rather than add.
pub fn plan(
    applied: &BTreeMap<String, Lease>,
    desired: &[Lease],
    force: bool,
) -> (Vec<Lease>, Vec<Lease>) {
    let remove = applied
        .values()
        .filter(|a| !desired.iter().any(|d| d == *a))
        .cloned()
        .collect();
    let add = desired
        .iter()
        .filter(|d| force || applied.get(&d.node) != Some(d))
        .cloned()
        .collect();
    (remove, add)
}

/// The running backend and what it has installed.
enum Backend {
    Vxlan,
    HostGw,
    Udp(udp::Routes),
}

struct Routing {
    local: LocalNode,
    backend: Backend,
    applied: BTreeMap<String, Lease>,
}

impl Routing {
    async fn sync(&mut self, desired: &[Lease], force: bool) {
        if let Backend::Udp(routes) = &self.backend {
            *routes.write().unwrap_or_else(|p| p.into_inner()) = udp::routes_for(desired);
            self.applied = desired
                .iter()
                .map(|l| (l.node.clone(), l.clone()))
                .collect();
            return;
        }
        let (remove, add) = plan(&self.applied, desired, force);
        for l in remove {
            let cmds = match self.backend {
                Backend::Vxlan => vxlan::del_cmds(&l),
                _ => hostgw::del_cmds(&self.local, &l),
            };
            // Entries may already be gone (removed with the device, say): ignore failures.
            for c in cmds {
                let _ = run_line(&c).await;
            }
            eprintln!("flanneld: removed the route to {} ({})", l.subnet, l.node);
            self.applied.remove(&l.node);
        }
        for l in add {
            let cmds = match self.backend {
                Backend::Vxlan => match vxlan::add_cmds(&l) {
                    Some(c) => c,
                    None => continue,
                },
                _ => hostgw::add_cmds(&self.local, &l),
            };
            let mut ok = true;
            for c in &cmds {
                if let Err(e) = run_line(c).await {
                    eprintln!("flanneld: {e}");
                    ok = false;
                }
            }
            if ok {
                if self.applied.get(&l.node) != Some(&l) {
                    eprintln!(
                        "flanneld: routing {} to {} via {}",
                        l.subnet, l.node, l.public_ip
                    );
                }
                self.applied.insert(l.node.clone(), l);
            }
        }
    }
}

async fn client() -> Result<kube::Client> {
    crate::node::client_from(KUBELET_KUBECONFIG_PATH)
        .await
        .map_err(|e| Error::Kubeconfig(e.into()))
}

fn ext_interface() -> Result<(Ipv4Addr, u32)> {
    // net::ipv4_addrs puts eth0 first; the Docker network is the only external network.
    let ip = crate::node::net::ipv4_addrs()
        .into_iter()
        .find_map(|a| match a {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| Error::NoAddress(EXT_IFACE.into()))?;
    let path = format!("/sys/class/net/{EXT_IFACE}/mtu");
    let mtu = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500);
    Ok((ip, mtu))
}

/// Write a file atomically, so the CNI plugin and containerd never read half of it.
fn write_atomic(path: &str, text: &str) -> Result<()> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let p = Path::new(path);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, p).map_err(io)
}

/// Wait for the node IPAM controller to give this Node a podCIDR.
async fn wait_for_subnet(nodes: &Api<Node>, name: &str) -> Result<Ipv4Net> {
    let cond = |n: Option<&Node>| {
        n.and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.as_ref())
            .is_some()
    };
    loop {
        match kube::runtime::wait::await_condition(nodes.clone(), name, cond).await {
            Ok(Some(n)) => {
                let cidr = n.spec.and_then(|s| s.pod_cidr).unwrap_or_default();
                return Ok(cidr.parse::<Ipv4Net>()?.network());
            }
            Ok(None) => {}
            Err(e) => eprintln!("flanneld: waiting for node {name}: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Publish this node's lease. Upstream patches `nodes/<n>/status`; an API server that keeps
/// metadata out of status updates drops the annotations there, so then patch the Node itself.
async fn annotate(nodes: &Api<Node>, name: &str, ann: &BTreeMap<String, String>) -> Result<()> {
    let patch = Patch::Strategic(subnet::annotation_patch(ann));
    let pp = PatchParams::default();
    let n = nodes
        .patch_status(name, &pp, &patch)
        .await
        .map_err(|e| Error::Api(name.into(), e))?;
    if !subnet::has_annotations(&n, ann) {
        nodes
            .patch(name, &pp, &patch)
            .await
            .map_err(|e| Error::Api(name.into(), e))?;
    }
    Ok(())
}

pub async fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::load()?;
    let client = client().await?;
    let nodes: Api<Node> = Api::all(client);
    let network: Ipv4Net = cfg.pod_subnet.parse()?;
    let (public_ip, ext_mtu) = ext_interface()?;
    // Routing between cni0 and the tunnel needs forwarding; a fresh network namespace
    // starts with it off.
    let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");

    let subnet = wait_for_subnet(&nodes, &cfg.node_name).await?;
    eprintln!(
        "flanneld: node {} has subnet {subnet} of {network}; backend {}",
        cfg.node_name,
        backend_type(&cfg.flannel_backend)
    );
    let local = LocalNode {
        name: cfg.node_name.clone(),
        network: network.network(),
        subnet,
        public_ip,
        ext_iface: EXT_IFACE.into(),
        ext_mtu,
    };
    let (backend, data, mtu) = match cfg.flannel_backend {
        FlannelBackend::Vxlan => {
            let (data, mtu) = vxlan::setup(&local).await?;
            (Backend::Vxlan, data, mtu)
        }
        FlannelBackend::HostGw => (Backend::HostGw, Value::Null, ext_mtu),
        FlannelBackend::Udp => {
            let (routes, mtu) = udp::setup(&local).await?;
            (Backend::Udp(routes), Value::Null, mtu)
        }
    };
    let kind = backend_type(&cfg.flannel_backend);
    let ann = subnet::node_annotations(public_ip, kind, &data);
    annotate(&nodes, &local.name, &ann).await?;
    write_atomic(
        SUBNET_ENV_PATH,
        &subnet::subnet_env(local.network, subnet, mtu, true),
    )?;
    // After subnet.env, so the runtime only sees a network once the plugin can use it.
    write_atomic(CNI_CONF_PATH, cni::CONFLIST)?;
    let mut rules = iptables::masq_rules(local.network, subnet);
    rules.extend(iptables::forward_rules(local.network));
    if let Err(e) = iptables::ensure(&rules).await {
        eprintln!("flanneld: {e}");
    }

    let mut routing = Routing {
        local,
        backend,
        applied: BTreeMap::new(),
    };
    let (store, writer) = reflector::store();
    let events =
        reflector(writer, watcher(nodes.clone(), watcher::Config::default())).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        let force = tokio::select! {
            ev = events.try_next() => {
                match ev {
                    // The store fills only at InitDone: sync then, not on each listed object.
                    Ok(Some(watcher::Event::Init | watcher::Event::InitApply(_))) => continue,
                    Ok(Some(_)) => false,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        eprintln!("flanneld: {e}");
                        continue;
                    }
                }
            }
            _ = resync.tick() => {
                if let Err(e) = iptables::ensure(&rules).await {
                    eprintln!("flanneld: {e}");
                }
                true
            }
        };
        if store.is_empty() {
            continue;
        }
        let all: Vec<Node> = store.state().iter().map(|n| (**n).clone()).collect();
        if let Some(me) = all
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(&routing.local.name))
        {
            let cidr = me.spec.as_ref().and_then(|s| s.pod_cidr.as_deref());
            if let Some(new) = cidr.and_then(|c| c.parse::<Ipv4Net>().ok())
                && new.network() != subnet
            {
                return Err(Error::SubnetChanged {
                    node: routing.local.name.clone(),
                    old: subnet,
                    new,
                }
                .into());
            }
            // The Node was re-created (deleted and registered again): publish the lease again.
            if !subnet::has_annotations(me, &ann)
                && let Err(e) = annotate(&nodes, &routing.local.name, &ann).await
            {
                eprintln!("flanneld: {e:#}");
            }
        }
        let desired = remote_leases(&all, &routing.local.name, kind);
        routing.sync(&desired, force).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: &str, ip: &str, kind: &str) -> Node {
        let data = if kind == "vxlan" {
            json!({"VNI": 1, "VtepMAC": format!("0a:00:00:00:00:{}", &cidr[7..8])})
        } else {
            Value::Null
        };
        serde_json::from_value(json!({
            "metadata": {"name": name,
                "annotations": subnet::node_annotations(ip.parse().unwrap(), kind, &data)},
            "spec": {"podCIDR": cidr}
        }))
        .unwrap()
    }

    #[test]
    fn remote_leases_skip_this_node_other_backends_and_unannotated_nodes() {
        let mut bare = node("w3", "10.244.3.0/24", "172.18.0.5", "vxlan");
        bare.metadata.annotations = None;
        let nodes = vec![
            node("w2", "10.244.2.0/24", "172.18.0.4", "vxlan"),
            node("w1", "10.244.1.0/24", "172.18.0.3", "vxlan"),
            node("cp", "10.244.0.0/24", "172.18.0.2", "vxlan"),
            node("odd", "10.244.4.0/24", "172.18.0.6", "udp"),
            bare,
        ];
        let got: Vec<String> = remote_leases(&nodes, "w1", "vxlan")
            .iter()
            .map(|l| format!("{} {} {}", l.node, l.subnet, l.public_ip))
            .collect();
        assert_eq!(
            got,
            ["cp 10.244.0.0/24 172.18.0.2", "w2 10.244.2.0/24 172.18.0.4"]
        );
    }

    #[test]
    fn route_commands_for_a_set_of_leases_follow_nodes_coming_and_going() {
        let cp = node("cp", "10.244.0.0/24", "172.18.0.2", "vxlan");
        let w2 = node("w2", "10.244.2.0/24", "172.18.0.4", "vxlan");
        let first = remote_leases(&[cp.clone(), w2.clone()], "w1", "vxlan");
        let (remove, add) = plan(&BTreeMap::new(), &first, false);
        assert!(remove.is_empty());
        let cmds: Vec<String> = add
            .iter()
            .flat_map(|l| vxlan::add_cmds(l).unwrap())
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            [
                "ip neigh replace 10.244.0.0 lladdr 0a:00:00:00:00:0 dev flannel.1 nud permanent",
                "bridge fdb replace 0a:00:00:00:00:0 dev flannel.1 dst 172.18.0.2 self permanent",
                "ip route replace 10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink",
                "ip neigh replace 10.244.2.0 lladdr 0a:00:00:00:00:2 dev flannel.1 nud permanent",
                "bridge fdb replace 0a:00:00:00:00:2 dev flannel.1 dst 172.18.0.4 self permanent",
                "ip route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
            ]
        );
        let applied: BTreeMap<String, Lease> =
            first.iter().map(|l| (l.node.clone(), l.clone())).collect();
        // Nothing changed: nothing to do, unless it is the periodic resync.
        assert_eq!(plan(&applied, &first, false), (vec![], vec![]));
        assert_eq!(plan(&applied, &first, true).1.len(), 2);
        // w2 left and cp's address changed.
        let cp_moved = node("cp", "10.244.0.0/24", "172.18.0.9", "vxlan");
        let next = remote_leases(&[cp_moved], "w1", "vxlan");
        let (remove, add) = plan(&applied, &next, false);
        let removed: Vec<&str> = remove.iter().map(|l| l.node.as_str()).collect();
        assert_eq!(removed, ["cp", "w2"]);
        assert_eq!(add.len(), 1);
        assert_eq!(add[0].public_ip, Ipv4Addr::new(172, 18, 0, 9));
    }

    #[test]
    fn net_conf_names_the_backend_like_upstream() {
        assert_eq!(
            net_conf_json("10.244.0.0/16", &FlannelBackend::Vxlan),
            "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\n    \"Type\": \"vxlan\"\n  }\n}\n"
        );
        let v: Value =
            serde_json::from_str(&net_conf_json("10.244.0.0/16", &FlannelBackend::HostGw)).unwrap();
        assert_eq!(
            v,
            json!({"Network": "10.244.0.0/16", "Backend": {"Type": "host-gw"}})
        );
        assert!(net_conf_json("10.244.0.0/16", &FlannelBackend::Udp).contains("\"udp\""));
    }
}
