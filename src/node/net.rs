//! The node's own addresses and address arithmetic on the cluster's ranges.

use std::net::{IpAddr, Ipv4Addr};

use crate::cluster::config::parse_cidr;

/// Non-loopback IPv4 addresses of this host, eth0 first (the node's InternalIP).
pub fn ipv4_addrs() -> Vec<IpAddr> {
    let mut out: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list that we walk read-only and free exactly once.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return Vec::new();
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                    .to_string_lossy()
                    .into_owned();
                if !ip.is_loopback() {
                    out.push((name, ip));
                }
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out.sort_by_key(|(name, _)| name != "eth0");
    out.into_iter().map(|(_, ip)| IpAddr::V4(ip)).collect()
}

/// The first usable address of a range: the `kubernetes` Service's ClusterIP.
pub fn first_service_ip(cidr: &str) -> Option<Ipv4Addr> {
    let (addr, len) = parse_cidr(cidr).ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some(Ipv4Addr::from((u32::from(addr) & mask) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_service_gets_the_first_address() {
        assert_eq!(
            first_service_ip("10.96.0.0/16"),
            Some(Ipv4Addr::new(10, 96, 0, 1))
        );
        assert_eq!(
            first_service_ip("10.100.5.7/16"),
            Some(Ipv4Addr::new(10, 100, 0, 1))
        );
        assert_eq!(first_service_ip("nope"), None);
    }
}
