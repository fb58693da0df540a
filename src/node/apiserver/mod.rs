//! kube-apiserver: the Kubernetes API over TLS with client certificates, stored in etcd.

pub mod apply;
pub mod auth;
pub mod collector;
pub mod defaults;
pub mod deletion;
pub mod discovery;
pub mod etcd;
pub mod fanout;
pub mod handlers;
pub mod immutable;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod proxy;
pub mod resources;
pub mod review;
pub mod routes;
pub mod selectors;
pub mod services;
pub mod spec_validation;
pub mod status;
pub mod storage;
pub mod stream;
pub mod subresources;
pub mod table;
pub mod tls;
pub mod validation;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::cluster::config::NodeLifecycle;
use handlers::State;
use storage::Store;

/// Command-line flags, named like upstream kube-apiserver's.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "kube-apiserver", about = "Kindling's Kubernetes API server")]
pub struct Args {
    /// etcd client URL (the JSON gateway of etcd v3 is used).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = crate::consts::API_SERVER_PORT)]
    pub secure_port: u16,
    /// Serving certificate (PEM).
    #[arg(long, default_value = "/etc/kubernetes/pki/apiserver.crt")]
    pub tls_cert_file: std::path::PathBuf,
    /// Serving key (PEM).
    #[arg(long, default_value = "/etc/kubernetes/pki/apiserver.key")]
    pub tls_private_key_file: std::path::PathBuf,
    /// CA whose client certificates are accepted (PEM).
    #[arg(long, default_value = "/etc/kubernetes/pki/ca.crt")]
    pub client_ca_file: std::path::PathBuf,
    /// Range ClusterIPs are allocated from.
    #[arg(long, default_value = crate::consts::DEFAULT_SERVICE_SUBNET)]
    pub service_cluster_ip_range: String,
    /// Range NodePorts are allocated from.
    #[arg(long, default_value = services::DEFAULT_NODE_PORT_RANGE)]
    pub service_node_port_range: String,
    /// Address advertised to clients (endpoints of the `kubernetes` Service).
    #[arg(long)]
    pub advertise_address: Option<std::net::IpAddr>,
    /// tolerationSeconds of the not-ready NoExecute toleration every new pod gets.
    #[arg(long, default_value_t = NodeLifecycle::default().toleration_seconds)]
    pub default_not_ready_toleration_seconds: u32,
    /// tolerationSeconds of the unreachable NoExecute toleration every new pod gets.
    #[arg(long, default_value_t = NodeLifecycle::default().toleration_seconds)]
    pub default_unreachable_toleration_seconds: u32,
}

/// Namespaces every cluster starts with, as kubeadm's do.
pub const SYSTEM_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    crate::consts::NODE_LEASE_NAMESPACE,
];

/// Serve until the process is stopped.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (tls_config, client_auth) = tls::server_config(
        &args.tls_cert_file,
        &args.tls_private_key_file,
        &args.client_ca_file,
    )
    .context("could not set up TLS for the API server")?;
    let ranges = services::Ranges::parse(
        &args.service_cluster_ip_range,
        &args.service_node_port_range,
    )?;
    let service_ip = ranges.first_ip();
    let advertise = args.advertise_address.unwrap_or(match args.bind_address {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    });
    let state = Arc::new(State {
        store: Store::new(etcd::Etcd::new(&args.etcd_servers)),
        server_address: SocketAddr::new(advertise, args.secure_port).to_string(),
        bootstrapped: Default::default(),
        services: ranges,
        admission: defaults::Admission {
            not_ready_toleration_seconds: args.default_not_ready_toleration_seconds,
            unreachable_toleration_seconds: args.default_unreachable_toleration_seconds,
        },
    });
    let addr = SocketAddr::new(args.bind_address, args.secure_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}; is another API server running?"))?;
    eprintln!(
        "kube-apiserver listening on https://{addr}, etcd at {}",
        args.etcd_servers
    );
    // Bootstrap runs beside serving: the API server may start before etcd, and /readyz says
    // when both are there.
    tokio::spawn(bootstrap(
        state.clone(),
        service_ip,
        crate::node::dns::service_ip(&args.service_cluster_ip_range),
        args.advertise_address,
        args.secure_port,
    ));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, client_auth, state) = (acceptor.clone(), client_auth.clone(), state.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .filter(|chain| client_auth.verify(chain))
                .and_then(|chain| crate::cluster::pki::subject_of(&chain[0]).ok())
                .map(|(name, groups)| auth::User { name, groups });
            let service = hyper::service::service_fn(move |req| {
                let (state, user) = (state.clone(), user.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(handlers::handle(state, req, user).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Create what every cluster has: the system namespaces and the `kubernetes` Service,
/// retrying until etcd answers. Existing objects are left alone.
async fn bootstrap(
    state: Arc<State>,
    service_ip: Ipv4Addr,
    dns_ip: Option<Ipv4Addr>,
    advertise: Option<IpAddr>,
    port: u16,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match ensure_defaults(&state.store, service_ip, dns_ip, advertise, port).await {
            Ok(()) => {
                state.bootstrapped.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                eprintln!("waiting for etcd: {e}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn ensure(
    store: &Store,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    name: &str,
    obj: serde_json::Value,
) -> Result<(), storage::Error> {
    let rt = resources::find(group, "v1", plural).expect("bootstrap types are registered");
    let mut obj = obj;
    obj["kind"] = json!(rt.kind);
    obj["apiVersion"] = json!(rt.group_version());
    obj["metadata"]["name"] = json!(name);
    if let Some(ns) = ns {
        obj["metadata"]["namespace"] = json!(ns);
    }
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(handlers::now_rfc3339());
    match store.create(rt, ns, name, obj).await {
        Ok(_) | Err(storage::Error::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn ensure_defaults(
    store: &Store,
    service_ip: Ipv4Addr,
    dns_ip: Option<Ipv4Addr>,
    advertise: Option<IpAddr>,
    port: u16,
) -> Result<(), storage::Error> {
    for ns in SYSTEM_NAMESPACES {
        ensure(store, "", "namespaces", None, ns, json!({"metadata": {}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})).await?;
    }
    let svc = services::kubernetes_service(service_ip, port);
    ensure(store, "", "services", Some("default"), "kubernetes", svc).await?;
    // kubeadm's DNS addon: the Service in front of the cluster DNS, at the tenth address.
    if let Some(ip) = dns_ip {
        let svc = crate::node::dns::kube_dns_service(ip);
        let (ns, name) = (crate::node::dns::NAMESPACE, crate::node::dns::SERVICE_NAME);
        ensure(store, "", "services", Some(ns), name, svc).await?;
    }
    if let Some(ip) = advertise {
        let eps = services::kubernetes_endpoints(ip, port);
        reconcile(store, "", "endpoints", "kubernetes", eps, "subsets").await?;
        let slice = services::kubernetes_endpoint_slice(ip, port);
        reconcile(
            store,
            "discovery.k8s.io",
            "endpointslices",
            "kubernetes",
            slice,
            "endpoints",
        )
        .await?;
    }
    Ok(())
}

/// Like [`ensure`] for an object in `default` whose `field` must point at this API server: an
/// existing one is corrected (the control plane's address may change across restarts).
async fn reconcile(
    store: &Store,
    group: &str,
    plural: &str,
    name: &str,
    obj: serde_json::Value,
    field: &str,
) -> Result<(), storage::Error> {
    ensure(store, group, plural, Some("default"), name, obj.clone()).await?;
    let rt = resources::find(group, "v1", plural).expect("bootstrap types are registered");
    let current = store.get(rt, Some("default"), name).await?;
    if current[field] == obj[field] {
        return Ok(());
    }
    store
        .update(rt, Some("default"), name, |mut cur| {
            cur[field] = obj[field].clone();
            Ok(cur)
        })
        .await?;
    Ok(())
}
