//! Flannel's vxlan backend (upstream `pkg/backend/vxlan`): the `flannel.1` device and, per
//! remote node, one route, one permanent neighbour and one FDB entry.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::subnet::{Ipv4Net, Lease};
use super::{Cmd, LocalNode, Result, cmd, run_cmd, run_cmd_output};

pub const VNI: u32 = 1;
/// `flannel.<VNI>`, as upstream names it.
pub const DEVICE: &str = "flannel.1";
/// The Linux kernel's VXLAN port, which upstream uses instead of IANA's 4789.
pub const PORT: u16 = 8472;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
pub const OVERHEAD: u32 = 50;
pub const BACKEND_TYPE: &str = "vxlan";

/// The lease data other nodes need to reach this one.
pub fn backend_data(vtep_mac: &str) -> Value {
    json!({"VNI": VNI, "VtepMAC": vtep_mac})
}

pub fn create_device_cmd(local: &LocalNode) -> Cmd {
    cmd(&[
        "ip",
        "link",
        "add",
        DEVICE,
        "type",
        "vxlan",
        "id",
        &VNI.to_string(),
        "local",
        &local.public_ip.to_string(),
        "dev",
        &local.ext_iface,
        "dstport",
        &PORT.to_string(),
        "nolearning",
    ])
}

/// Whether an existing device (`ip -d -j link show`) can be kept: keeping it keeps its MAC,
/// which the other nodes' neighbour and FDB entries point at.
pub fn device_matches(ip_json: &str, local: &LocalNode) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(ip_json) else {
        return false;
    };
    let info = &v[0]["linkinfo"];
    let data = &info["info_data"];
    info["info_kind"] == "vxlan"
        && data["id"] == VNI
        && data["port"] == PORT
        && data["local"] == local.public_ip.to_string()
        && data["learning"] == false
}

/// The device's address: the subnet's network address as a /32, as upstream assigns it.
pub fn device_addr(local: &LocalNode) -> Ipv4Net {
    Ipv4Net::new(local.subnet.nth(0), 32)
}

/// Commands that make a remote node's subnet reachable through the tunnel; `None` when the
/// lease lacks a VTEP MAC (its flanneld has not published one yet).
pub fn add_cmds(lease: &Lease) -> Option<Vec<Cmd>> {
    let mac = lease.backend_data.get("VtepMAC")?.as_str()?;
    let gw = lease.subnet.nth(0).to_string();
    Some(vec![
        cmd(&[
            "ip",
            "neigh",
            "replace",
            &gw,
            "lladdr",
            mac,
            "dev",
            DEVICE,
            "nud",
            "permanent",
        ]),
        cmd(&[
            "bridge",
            "fdb",
            "replace",
            mac,
            "dev",
            DEVICE,
            "dst",
            &lease.public_ip.to_string(),
            "self",
            "permanent",
        ]),
        cmd(&[
            "ip",
            "route",
            "replace",
            &lease.subnet.to_string(),
            "via",
            &gw,
            "dev",
            DEVICE,
            "onlink",
        ]),
    ])
}

/// Commands that undo [`add_cmds`], route first so nothing is sent to a half-removed peer.
pub fn del_cmds(lease: &Lease) -> Vec<Cmd> {
    let gw = lease.subnet.nth(0).to_string();
    let mut v = vec![
        cmd(&[
            "ip",
            "route",
            "del",
            &lease.subnet.to_string(),
            "via",
            &gw,
            "dev",
            DEVICE,
            "onlink",
        ]),
        cmd(&["ip", "neigh", "del", &gw, "dev", DEVICE]),
    ];
    if let Some(mac) = lease.backend_data.get("VtepMAC").and_then(Value::as_str) {
        v.push(cmd(&[
            "bridge",
            "fdb",
            "del",
            mac,
            "dev",
            DEVICE,
            "dst",
            &lease.public_ip.to_string(),
            "self",
        ]));
    }
    v
}

/// Create or adopt `flannel.1`; returns the backend data to publish and the pod MTU.
pub async fn setup(local: &LocalNode) -> Result<(Value, u32)> {
    let existing = run_cmd_output(&["ip", "-d", "-j", "link", "show", DEVICE]).await;
    match existing {
        Ok(out) if device_matches(&out, local) => {}
        Ok(_) => {
            // Wrong settings (the node's IP changed across a restart, say): start over.
            run_cmd(&["ip", "link", "del", DEVICE]).await?;
            super::run_line(&create_device_cmd(local)).await?;
        }
        Err(_) => super::run_line(&create_device_cmd(local)).await?,
    }
    let mtu = local.ext_mtu - OVERHEAD;
    let addr = device_addr(local);
    super::ensure_only_addr(DEVICE, addr).await?;
    run_cmd(&["ip", "link", "set", DEVICE, "mtu", &mtu.to_string(), "up"]).await?;
    let mac = std::fs::read_to_string(format!("/sys/class/net/{DEVICE}/address"))
        .map_err(|e| super::Error::Io {
            path: format!("/sys/class/net/{DEVICE}/address"),
            source: e,
        })?
        .trim()
        .to_string();
    Ok((backend_data(&mac), mtu))
}

/// The network address of a remote lease's subnet, which is its VTEP's address.
pub fn vtep_addr(lease: &Lease) -> Ipv4Addr {
    lease.subnet.nth(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(node: &str, subnet: &str, ip: [u8; 4], mac: &str) -> Lease {
        Lease {
            node: node.into(),
            subnet: subnet.parse().unwrap(),
            public_ip: Ipv4Addr::from(ip),
            backend_type: BACKEND_TYPE.into(),
            backend_data: backend_data(mac),
        }
    }

    fn local() -> LocalNode {
        LocalNode {
            name: "w1".into(),
            network: "10.244.0.0/16".parse().unwrap(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            public_ip: Ipv4Addr::new(172, 18, 0, 3),
            ext_iface: "eth0".into(),
            ext_mtu: 1500,
        }
    }

    fn lines(cmds: &[Cmd]) -> Vec<String> {
        cmds.iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn a_remote_lease_gets_a_neighbour_an_fdb_entry_and_an_onlink_route() {
        let l = lease("w2", "10.244.2.0/24", [172, 18, 0, 4], "0a:58:0a:f4:02:00");
        assert_eq!(
            lines(&add_cmds(&l).unwrap()),
            [
                "ip neigh replace 10.244.2.0 lladdr 0a:58:0a:f4:02:00 dev flannel.1 nud permanent",
                "bridge fdb replace 0a:58:0a:f4:02:00 dev flannel.1 dst 172.18.0.4 self permanent",
                "ip route replace 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
            ]
        );
        assert_eq!(
            lines(&del_cmds(&l)),
            [
                "ip route del 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
                "ip neigh del 10.244.2.0 dev flannel.1",
                "bridge fdb del 0a:58:0a:f4:02:00 dev flannel.1 dst 172.18.0.4 self",
            ]
        );
        assert_eq!(vtep_addr(&l), Ipv4Addr::new(10, 244, 2, 0));
    }

    #[test]
    fn a_lease_without_a_vtep_mac_is_not_routed() {
        let mut l = lease("w2", "10.244.2.0/24", [172, 18, 0, 4], "x");
        l.backend_data = Value::Null;
        assert!(add_cmds(&l).is_none());
    }

    #[test]
    fn the_device_is_vni_1_on_udp_8472_without_learning() {
        assert_eq!(
            create_device_cmd(&local()).join(" "),
            "ip link add flannel.1 type vxlan id 1 local 172.18.0.3 dev eth0 dstport 8472 nolearning"
        );
        assert_eq!(device_addr(&local()).to_string(), "10.244.1.0/32");
        assert_eq!(
            backend_data("aa:bb:cc:dd:ee:ff").to_string(),
            r#"{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}"#
        );
    }

    #[test]
    fn an_existing_device_is_kept_only_when_it_matches() {
        let good = r#"[{"ifname":"flannel.1","linkinfo":{"info_kind":"vxlan","info_data":{"id":1,"local":"172.18.0.3","link":"eth0","port":8472,"learning":false}}}]"#;
        assert!(device_matches(good, &local()));
        let moved = good.replace("172.18.0.3", "172.18.0.9");
        assert!(!device_matches(&moved, &local()));
        let learning = good.replace("\"learning\":false", "\"learning\":true");
        assert!(!device_matches(&learning, &local()));
        assert!(!device_matches("garbage", &local()));
    }
}
