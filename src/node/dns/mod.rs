//! Cluster DNS (`coredns` in a node's `ps`): serves the cluster domain from watches of Services,
//! EndpointSlices and Pods, forwards everything else to the node's resolver, and listens on the
//! node's IP, port 53, behind the `kube-dns` Service at the tenth service address.

pub mod index;
pub mod resolv;
pub mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};

use crate::cluster::config::parse_cidr;
use crate::node::config::NodeConfig;
use index::Index;
use server::{Handler, SharedIndex, Stats};

/// The cluster's DNS domain (kubeadm's default).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The Service in front of the DNS servers, named as on kubeadm clusters.
pub const SERVICE_NAME: &str = "kube-dns";
pub const NAMESPACE: &str = "kube-system";
/// The label selecting the DNS pods, as kubeadm's CoreDNS Deployment sets it.
pub const APP_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
pub const DNS_PORT: u16 = 53;
pub const METRICS_PORT: u16 = 9153;
/// Where the node's own resolver is configured (Docker's embedded DNS at 127.0.0.11).
pub const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long a burst of watch events may pile up before the index is rebuilt once.
const REBUILD_DELAY: Duration = Duration::from_millis(20);

/// The DNS Service's ClusterIP: the tenth address of the service range (10.96.0.10 for
/// 10.96.0.0/12 or /16), as kubeadm picks it.
pub fn service_ip(service_subnet: &str) -> Option<Ipv4Addr> {
    let (addr, len) = parse_cidr(service_subnet).ok()?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let network = u32::from(addr) & mask;
    // A range too small to hold a tenth address has no DNS Service.
    (len <= 28).then(|| Ipv4Addr::from(network + 10))
}

/// The `kube-dns` Service as kubeadm's CoreDNS addon creates it.
pub fn kube_dns_service(ip: Ipv4Addr) -> Value {
    let (k, v) = APP_LABEL;
    json!({
        "metadata": {
            "labels": {k: v, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": METRICS_PORT.to_string(), "prometheus.io/scrape": "true"},
        },
        "spec": {
            "type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
            "selector": {k: v},
            "ports": [
                {"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP", "targetPort": DNS_PORT},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT},
            ],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    })
}

/// The node's name servers as upstreams, leaving out this server's own addresses (a loop).
pub fn upstreams(resolv: &resolv::ResolvConf, own: &[IpAddr]) -> Vec<SocketAddr> {
    resolv
        .nameservers
        .iter()
        .filter_map(|n| n.parse::<IpAddr>().ok())
        .filter(|ip| !own.contains(ip))
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect()
}

/// Run the DNS server until the process is stopped.
pub async fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::load()?;
    let node_ip = crate::node::net::ipv4_addrs()
        .into_iter()
        .next()
        .context("the node has no IPv4 address to serve DNS on")?;
    let node_resolv = resolv::ResolvConf::parse(
        &std::fs::read_to_string(NODE_RESOLV_CONF)
            .with_context(|| format!("could not read {NODE_RESOLV_CONF}"))?,
    );
    let mut own = vec![node_ip];
    own.extend(service_ip(&cfg.service_subnet).map(IpAddr::V4));
    let upstreams = upstreams(&node_resolv, &own);
    let client = crate::node::kubelet::client().await?;
    // Started beside the API server: wait for it here, as a failed first list would put the
    // watches into back-off and keep DNS down for seconds longer.
    while client.apiserver_version().await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, eps_writer) = reflector::store::<EndpointSlice>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let events = futures::stream::select_all([
        watcher(Api::<Service>::all(client.clone()), Default::default())
            .default_backoff()
            .reflect(svc_writer)
            .map(|_| ())
            .boxed(),
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
            Default::default(),
        )
        .default_backoff()
        .reflect(eps_writer)
        .map(|_| ())
        .boxed(),
        watcher(Api::<Pod>::all(client.clone()), Default::default())
            .default_backoff()
            .reflect(pod_writer)
            .map(|_| ())
            .boxed(),
    ]);
    // The watches fill the stores only while polled: a task drives them and rings on change.
    let changed = Arc::new(tokio::sync::Notify::new());
    let ring = changed.clone();
    tokio::spawn(async move {
        let mut events = events;
        while events.next().await.is_some() {
            ring.notify_one();
        }
    });
    let _ = tokio::join!(
        services.wait_until_ready(),
        slices.wait_until_ready(),
        pods.wait_until_ready()
    );
    let build = || {
        Index::build(
            CLUSTER_DOMAIN,
            &services.state(),
            &slices.state(),
            &pods.state(),
        )
    };
    let shared: SharedIndex = Arc::new(RwLock::new(Arc::new(build())));
    let stats = Arc::new(Stats::default());

    // Serve only once the index is whole: an empty one would deny names that exist.
    let listen = SocketAddr::new(node_ip, DNS_PORT);
    let udp = tokio::net::UdpSocket::bind(listen).await.with_context(|| {
        format!("could not listen on udp {listen}; is another DNS server running?")
    })?;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("could not listen on tcp {listen}; is another DNS server running?")
        })?;
    let mut dns = hickory_server::Server::new(Handler {
        index: shared.clone(),
        upstreams: upstreams.clone(),
        stats: stats.clone(),
    });
    dns.register_socket(udp);
    dns.register_listener(tcp, Duration::from_secs(10), 64);
    tokio::spawn(serve_metrics(
        SocketAddr::new(node_ip, METRICS_PORT),
        stats,
        shared.clone(),
    ));
    eprintln!(
        "coredns: serving {CLUSTER_DOMAIN} on {listen} (udp, tcp), forwarding to {}",
        upstreams
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let rebuild = async {
        loop {
            changed.notified().await;
            tokio::time::sleep(REBUILD_DELAY).await;
            let fresh = Arc::new(build());
            match shared.write() {
                Ok(mut g) => *g = fresh,
                Err(p) => *p.into_inner() = fresh,
            }
        }
    };
    tokio::select! {
        r = dns.block_until_done() => r.context("the DNS server stopped"),
        _ = rebuild => Ok(()),
    }
}

/// `/metrics` in Prometheus text (CoreDNS's port 9153), `/health` answering OK.
async fn serve_metrics(addr: SocketAddr, stats: Arc<Stats>, index: SharedIndex) {
    use hyper_util::rt::TokioIo;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("coredns: could not serve metrics on {addr}: {e}");
            return;
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (stats, index) = (stats.clone(), index.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let body = match req.uri().path() {
                    "/metrics" => {
                        let ix = index.read().map(|i| i.clone()).ok();
                        ix.map(|ix| server::metrics_text(&stats, &ix))
                            .unwrap_or_default()
                    }
                    _ => "OK".to_string(),
                };
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_service_takes_the_tenth_address_of_the_range() {
        assert_eq!(
            service_ip("10.96.0.0/12"),
            Some(Ipv4Addr::new(10, 96, 0, 10))
        );
        assert_eq!(
            service_ip("10.96.0.0/16"),
            Some(Ipv4Addr::new(10, 96, 0, 10))
        );
        assert_eq!(
            service_ip("172.20.5.0/24"),
            Some(Ipv4Addr::new(172, 20, 5, 10))
        );
        assert_eq!(service_ip("10.0.0.0/30"), None);
        assert_eq!(service_ip("bogus"), None);
    }

    #[test]
    fn the_kube_dns_service_looks_like_kubeadms() {
        let s = kube_dns_service(Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(s["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(s["spec"]["selector"]["k8s-app"], "kube-dns");
        let ports: Vec<String> = s["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}/{}/{}", p["name"], p["port"], p["protocol"]).replace('"', ""))
            .collect();
        assert_eq!(ports, ["dns/53/UDP", "dns-tcp/53/TCP", "metrics/9153/TCP"]);
    }

    #[test]
    fn upstreams_come_from_the_nodes_resolv_conf_without_ourselves() {
        let r = resolv::ResolvConf::parse("nameserver 127.0.0.11\nnameserver 172.18.0.2\n");
        assert_eq!(
            upstreams(&r, &["172.18.0.2".parse().unwrap()]),
            ["127.0.0.11:53".parse::<SocketAddr>().unwrap()]
        );
    }

    /// The whole server on loopback: a cluster name from the index, an unknown one, and a
    /// forwarded one answered by a second server standing in for the node's resolver.
    #[tokio::test]
    async fn the_server_answers_cluster_names_and_forwards_the_rest() {
        use hickory_server::proto::op::{Message, Query};
        use hickory_server::proto::rr::{Name, RData, RecordType};

        let svc: Arc<Service> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.5.5"}}))
            .unwrap(),
        );
        let start = |index: Index, upstreams: Vec<SocketAddr>| async move {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            let mut s = hickory_server::Server::new(Handler {
                index: Arc::new(RwLock::new(Arc::new(index))),
                upstreams,
                stats: Arc::default(),
            });
            s.register_socket(udp);
            tokio::spawn(async move { s.block_until_done().await });
            addr
        };
        // The "upstream" serves another domain from an index of its own.
        let up_svc: Arc<Service> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "x"},
                "spec": {"clusterIP": "10.1.2.3"}}))
            .unwrap(),
        );
        let upstream = start(Index::build("example.test", &[up_svc], &[], &[]), vec![]).await;
        let addr = start(
            Index::build(CLUSTER_DOMAIN, &[svc], &[], &[]),
            vec![upstream],
        )
        .await;
        let ask = |name: &str, t: RecordType| {
            let mut q = Message::query();
            q.metadata.id = 7;
            q.metadata.recursion_desired = true;
            q.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
            q.to_vec().unwrap()
        };
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut exchange = async |bytes: Vec<u8>| {
            sock.send_to(&bytes, addr).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            Message::from_vec(&buf[..n]).unwrap()
        };
        let m = exchange(ask("web.default.svc.cluster.local.", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            m.answers[0].data,
            RData::A(Ipv4Addr::new(10, 96, 5, 5).into())
        );

        let m = exchange(ask("nope.default.svc.cluster.local.", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities.len(), 1, "the SOA for negative caching");

        let m = exchange(ask("web.default.svc.cluster.local.", RecordType::AAAA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());

        let m = exchange(ask("db.x.svc.example.test.", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            m.answers[0].data,
            RData::A(Ipv4Addr::new(10, 1, 2, 3).into())
        );
        assert_eq!(m.metadata.id, 7);
    }

    use hickory_server::proto::op::ResponseCode;
}
