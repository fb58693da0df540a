//! Flannel's udp backend (upstream `pkg/backend/udp`): a TUN device `flannel0` holding the
//! whole pod network, and userspace encapsulation: IP packets read from the TUN go in UDP
//! datagrams to port 8285 of the node owning the destination subnet, and back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::subnet::{Ipv4Net, Lease};
use super::{Error, LocalNode, Result, run_cmd};

pub const DEVICE: &str = "flannel0";
pub const PORT: u16 = 8285;
/// Outer IPv4 (20) + UDP (8) headers.
pub const OVERHEAD: u32 = 28;
pub const BACKEND_TYPE: &str = "udp";
const TUN_PATH: &str = "/dev/net/tun";

/// Remote subnets and where their packets go, shared with the forwarding threads.
pub type Routes = Arc<RwLock<Vec<(Ipv4Net, SocketAddrV4)>>>;

/// The forwarding table for a set of remote leases.
pub fn routes_for(leases: &[Lease]) -> Vec<(Ipv4Net, SocketAddrV4)> {
    leases
        .iter()
        .map(|l| (l.subnet, SocketAddrV4::new(l.public_ip, PORT)))
        .collect()
}

/// The node an IPv4 packet is for, by its destination address.
pub fn next_hop(routes: &[(Ipv4Net, SocketAddrV4)], packet: &[u8]) -> Option<SocketAddrV4> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    routes
        .iter()
        .find(|(net, _)| net.contains(dst))
        .map(|(_, to)| *to)
}

/// The TUN's address: this node's subnet address with the whole network's prefix, so the
/// kernel routes every other node's pods into the TUN (upstream assigns it the same way).
pub fn device_addr(local: &LocalNode) -> Ipv4Net {
    Ipv4Net::new(local.subnet.nth(0), local.network.prefix)
}

/// Nodes started with capabilities instead of `--privileged` may lack the TUN device node.
fn ensure_tun_node() -> Result<()> {
    if Path::new(TUN_PATH).exists() {
        return Ok(());
    }
    let io = |source| Error::Io {
        path: TUN_PATH.into(),
        source,
    };
    std::fs::create_dir_all("/dev/net").map_err(io)?;
    let path = std::ffi::CString::new(TUN_PATH).expect("no NUL in a constant");
    // SAFETY: mknod with a valid C string; c 10 200 is the kernel's fixed TUN/TAP device.
    let rc = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 200)) };
    if rc != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn open_tun(name: &str) -> Result<File> {
    let io = |source| Error::Io {
        path: TUN_PATH.into(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_PATH)
        .map_err(io)?;
    // SAFETY: an all-zero ifreq is valid; we set the name (NUL-terminated, shorter than
    // IFNAMSIZ) and the flags, then pass a pointer to it for the duration of the call.
    let rc = unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
            ifr.ifr_name[i] = b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &ifr)
    };
    if rc != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Create `flannel0`, route the pod network into it, and start the two forwarding threads.
/// Returns the forwarding table to update as nodes come and go, and the pod MTU.
pub async fn setup(local: &LocalNode) -> Result<(Routes, u32)> {
    ensure_tun_node()?;
    let tun = Arc::new(open_tun(DEVICE)?);
    let mtu = local.ext_mtu - OVERHEAD;
    super::ensure_only_addr(DEVICE, device_addr(local)).await?;
    run_cmd(&["ip", "link", "set", DEVICE, "mtu", &mtu.to_string(), "up"]).await?;
    // Explicit, because a route for the network may already exist and then the address's
    // own route would not be added.
    run_cmd(&[
        "ip",
        "route",
        "replace",
        &local.network.network().to_string(),
        "dev",
        DEVICE,
    ])
    .await?;
    let sock = UdpSocket::bind((local.public_ip, PORT)).map_err(|source| Error::Io {
        path: format!("udp {}:{PORT}", local.public_ip),
        source,
    })?;
    let sock = Arc::new(sock);
    let routes: Routes = Arc::new(RwLock::new(Vec::new()));

    // Blocking threads: one read per packet each way, no async machinery needed.
    let (t, s, r) = (tun.clone(), sock.clone(), routes.clone());
    std::thread::spawn(move || tun_to_udp(&t, &s, &r));
    std::thread::spawn(move || udp_to_tun(&tun, &sock));
    Ok((routes, mtu))
}

fn tun_to_udp(tun: &File, sock: &UdpSocket, routes: &Routes) {
    let mut buf = vec![0u8; 65536];
    let mut tun = tun;
    loop {
        let n = match tun.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("flanneld: reading {DEVICE}: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let to = {
            let table = routes.read().unwrap_or_else(|p| p.into_inner());
            next_hop(&table, &buf[..n])
        };
        // Packets for no known node are dropped, as upstream's proxy does.
        if let Some(to) = to {
            let _ = sock.send_to(&buf[..n], to);
        }
    }
}

fn udp_to_tun(tun: &File, sock: &UdpSocket) {
    let mut buf = vec![0u8; 65536];
    let mut tun = tun;
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let _ = tun.write(&buf[..n]);
            }
            Err(e) => {
                eprintln!("flanneld: receiving on udp {PORT}: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(subnet: &str, ip: [u8; 4]) -> Lease {
        Lease {
            node: "n".into(),
            subnet: subnet.parse().unwrap(),
            public_ip: Ipv4Addr::from(ip),
            backend_type: BACKEND_TYPE.into(),
            backend_data: serde_json::Value::Null,
        }
    }

    fn packet_to(dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[16..20].copy_from_slice(&dst);
        p
    }

    #[test]
    fn packets_go_to_the_node_owning_their_destination_subnet() {
        let routes = routes_for(&[
            lease("10.244.2.0/24", [172, 18, 0, 4]),
            lease("10.244.3.0/24", [172, 18, 0, 5]),
        ]);
        assert_eq!(
            next_hop(&routes, &packet_to([10, 244, 3, 9])),
            Some("172.18.0.5:8285".parse().unwrap())
        );
        assert_eq!(next_hop(&routes, &packet_to([10, 244, 9, 9])), None);
        let mut v6 = packet_to([10, 244, 3, 9]);
        v6[0] = 0x60;
        assert_eq!(next_hop(&routes, &v6), None);
        assert_eq!(next_hop(&routes, &[0x45]), None);
    }

    #[test]
    fn the_tun_holds_the_whole_network_from_its_own_subnet_address() {
        let local = LocalNode {
            name: "w1".into(),
            network: "10.244.0.0/16".parse().unwrap(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            public_ip: Ipv4Addr::new(172, 18, 0, 3),
            ext_iface: "eth0".into(),
            ext_mtu: 1500,
        };
        assert_eq!(device_addr(&local).to_string(), "10.244.1.0/16");
    }
}
