//! Flannel's host-gw backend (upstream `pkg/backend/hostgw`): a plain route per remote node via
//! its address on the shared network, no encapsulation.

use super::subnet::Lease;
use super::{Cmd, LocalNode, cmd};

pub const BACKEND_TYPE: &str = "host-gw";

pub fn add_cmds(local: &LocalNode, lease: &Lease) -> Vec<Cmd> {
    vec![cmd(&[
        "ip",
        "route",
        "replace",
        &lease.subnet.to_string(),
        "via",
        &lease.public_ip.to_string(),
        "dev",
        &local.ext_iface,
    ])]
}

pub fn del_cmds(local: &LocalNode, lease: &Lease) -> Vec<Cmd> {
    vec![cmd(&[
        "ip",
        "route",
        "del",
        &lease.subnet.to_string(),
        "via",
        &lease.public_ip.to_string(),
        "dev",
        &local.ext_iface,
    ])]
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_remote_subnet_is_routed_via_the_nodes_own_address() {
        let local = LocalNode {
            name: "w1".into(),
            network: "10.244.0.0/16".parse().unwrap(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            public_ip: Ipv4Addr::new(172, 18, 0, 3),
            ext_iface: "eth0".into(),
            ext_mtu: 1500,
        };
        let lease = Lease {
            node: "w2".into(),
            subnet: "10.244.2.0/24".parse().unwrap(),
            public_ip: Ipv4Addr::new(172, 18, 0, 4),
            backend_type: BACKEND_TYPE.into(),
            backend_data: serde_json::Value::Null,
        };
        assert_eq!(
            add_cmds(&local, &lease)[0].join(" "),
            "ip route replace 10.244.2.0/24 via 172.18.0.4 dev eth0"
        );
        assert_eq!(
            del_cmds(&local, &lease)[0].join(" "),
            "ip route del 10.244.2.0/24 via 172.18.0.4 dev eth0"
        );
    }
}
