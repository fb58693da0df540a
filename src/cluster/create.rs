//! `create cluster` as an ordered list of steps, torn down on failure unless `--retain`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigCgroupnsModeEnum,
    NetworkCreateRequest, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::cluster::config::{Cluster, Role, validate_cluster_name};
use crate::cluster::docker::{self, is_status};
use crate::cluster::kubeconfig::{self, Entry};
use crate::cluster::pki::{self, Ca};
use crate::consts::{
    ADMIN_KUBECONFIG_PATH, API_SERVER_PORT, CONTROL_PLANE_TAINT, KUBELET_KUBECONFIG_PATH,
    LABEL_CLUSTER, LABEL_ROLE, NETWORK_NAME, NODE_CONFIG_PATH, PKI_DIR,
};
use crate::node::config::{NodeConfig, Taint};
use crate::nodeimage::{self, BuildOptions};
use crate::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidName(String),
    #[error(
        "cluster {0:?} already exists; delete it with `kindling delete cluster --name {0}` or pick another --name"
    )]
    Exists(String),
    #[error(
        "host port {port} on {address} is already in use ({what}); free it or choose another port in the cluster config"
    )]
    PortInUse {
        port: u16,
        address: String,
        what: String,
    },
    #[error(transparent)]
    Docker(#[from] docker::Error),
    #[error(transparent)]
    Image(#[from] nodeimage::Error),
    #[error(transparent)]
    Pki(#[from] pki::Error),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::Error),
    #[error("could not start node {node}: {message}")]
    Start { node: String, message: String },
    #[error(
        "{ready}/{total} nodes Ready after {waited:?} ({detail}); see `kindling export logs --name {cluster}`, or retry with a longer --wait"
    )]
    NotReady {
        cluster: String,
        ready: usize,
        total: usize,
        waited: Duration,
        detail: String,
    },
    #[error(
        "cluster DNS at {ip} did not answer within {waited:?} ({detail}); see `kindling export logs --name {cluster}` (coredns.log), or retry with a longer --wait"
    )]
    DnsNotReady {
        cluster: String,
        ip: String,
        waited: Duration,
        detail: String,
    },
}

impl From<bollard::errors::Error> for Error {
    fn from(e: bollard::errors::Error) -> Self {
        Error::Docker(docker::Error::Api(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub config: Cluster,
    /// Node image to use instead of building the default one.
    pub image: Option<String>,
    /// How long to wait for every node to be Ready (zero: don't wait).
    pub wait: Duration,
    /// Keep the nodes when a step fails, for debugging.
    pub retain: bool,
    /// The kubeconfig file to merge the cluster into.
    pub kubeconfig: PathBuf,
    pub build: BuildOptions,
}

/// One planned node container.
#[derive(Debug, Clone)]
pub struct PlannedNode {
    pub name: String,
    pub role: Role,
    pub index: usize,
}

/// Node names the way kind makes them: `<cluster>-control-plane`, `-control-plane2`, `-worker`...
pub fn plan_nodes(cluster: &str, config: &Cluster) -> Vec<PlannedNode> {
    let mut counts: HashMap<Role, usize> = HashMap::new();
    config
        .nodes
        .iter()
        .enumerate()
        .map(|(index, n)| {
            let c = counts.entry(n.role).or_default();
            *c += 1;
            let suffix = if *c == 1 {
                String::new()
            } else {
                c.to_string()
            };
            PlannedNode {
                name: format!("{cluster}-{}{suffix}", n.role),
                role: n.role,
                index,
            }
        })
        .collect()
}

/// What a successful create leaves behind.
#[derive(Debug, Clone)]
pub struct Created {
    pub nodes: Vec<String>,
    pub server: String,
    pub context: String,
}

pub fn context_name(cluster: &str) -> String {
    format!("kindling-{cluster}")
}

pub async fn create(docker: &Docker, opts: &CreateOptions, progress: Progress) -> Result<Created> {
    validate_cluster_name(&opts.name).map_err(Error::InvalidName)?;
    // Refuse early; the container-name conflict below still settles a race between two creates.
    if !docker::containers_with_labels(docker, &[format!("{LABEL_CLUSTER}={}", opts.name)])
        .await?
        .is_empty()
    {
        return Err(Error::Exists(opts.name.clone()));
    }
    progress.say(&format!("Creating cluster {:?} ...", opts.name));
    let mut made: Vec<String> = Vec::new();
    let result = create_steps(docker, opts, progress, &mut made).await;
    if result.is_err() && !opts.retain && !made.is_empty() {
        let step =
            progress.step("Removing the nodes of the failed cluster (use --retain to keep them)");
        for name in &made {
            let _ = remove_node(docker, name).await;
        }
        // The kubeconfig entry may already point at the removed nodes.
        let _ = kubeconfig::remove_entry(&opts.kubeconfig, &context_name(&opts.name));
        step.done();
    }
    result
}

pub(crate) async fn remove_node(docker: &Docker, name: &str) -> Result<()> {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(name, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create_steps(
    docker: &Docker,
    opts: &CreateOptions,
    progress: Progress,
    made: &mut Vec<String>,
) -> Result<Created> {
    let cfg = &opts.config;
    let cluster = &opts.name;

    // Ensure the node image exists (built from this binary when missing).
    let image = match &opts.image {
        Some(i) => i.clone(),
        None => nodeimage::ensure(docker, &opts.build, progress).await?,
    };

    // Ensure the images pods need (pause, toolbox, whoami); every node preloads them.
    let bundled = nodeimage::bundled::ensure(docker, &opts.build, progress).await?;
    let bundle = nodeimage::bundled::save(docker, &bundled).await?;

    // Ensure the shared network.
    ensure_network(docker).await?;

    // Reserve host ports before any container exists, so a taken port fails cleanly.
    let api_address = cfg
        .networking
        .api_server_address
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    let api_port = pick_port(
        &api_address,
        cfg.networking.api_server_port.unwrap_or(0) as u16,
        "the API server port",
    )?;
    for n in &cfg.nodes {
        for m in &n.extra_port_mappings {
            if m.host_port != 0 && m.protocol.as_deref().unwrap_or("TCP") == "TCP" {
                let addr = m.listen_address.clone().unwrap_or_else(|| "0.0.0.0".into());
                pick_port(&addr, m.host_port, "an extraPortMappings hostPort")?;
            }
        }
    }

    // Generate the PKI: the CA, the admin and one client certificate per kubelet.
    let planned = plan_nodes(cluster, cfg);
    let step = progress.step("Generating certificates");
    let ca = Ca::generate(cluster)?;
    let admin = ca.issue_client("kubernetes-admin", &["system:masters"])?;
    let control_planes: Vec<String> = planned
        .iter()
        .filter(|n| n.role == Role::ControlPlane)
        .map(|n| n.name.clone())
        .collect();
    let internal_server = format!("https://{}:{API_SERVER_PORT}", control_planes[0]);
    let admin_entry = Entry {
        name: context_name(cluster),
        server: internal_server.clone(),
        ca_pem: ca.pair.cert_pem.clone(),
        client_cert_pem: admin.cert_pem.clone(),
        client_key_pem: admin.key_pem.clone(),
    };
    step.done();

    // Create every node container with its files in place.
    let step = progress.step(format!(
        "Preparing nodes {}",
        "📦 ".repeat(planned.len()).trim_end()
    ));
    let has_workers = planned.iter().any(|n| n.role == Role::Worker);
    let privileges = probe_privileges(docker, &image).await?;
    let mut prepared = Vec::new();
    for node in &planned {
        let spec = &cfg.nodes[node.index];
        let node_cfg = NodeConfig {
            cluster: cluster.clone(),
            node_name: node.name.clone(),
            role: node.role,
            control_planes: control_planes.clone(),
            pod_subnet: cfg.networking.pod_subnet.clone().unwrap_or_default(),
            service_subnet: cfg.networking.service_subnet.clone().unwrap_or_default(),
            labels: spec.labels.clone(),
            register_taints: if node.role == Role::ControlPlane && has_workers {
                vec![Taint {
                    key: CONTROL_PLANE_TAINT.into(),
                    value: String::new(),
                    effect: "NoSchedule".into(),
                }]
            } else {
                vec![]
            },
            kube_proxy_mode: cfg.networking.kube_proxy_mode.clone().unwrap_or_default(),
            flannel_backend: cfg.flannel_backend(),
            node_lifecycle: cfg.node_lifecycle(),
        };
        let kubelet = ca.issue_client(&format!("system:node:{}", node.name), &["system:nodes"])?;
        let kubelet_entry = Entry {
            name: "default".into(),
            server: internal_server.clone(),
            ca_pem: ca.pair.cert_pem.clone(),
            client_cert_pem: kubelet.cert_pem,
            client_key_pem: kubelet.key_pem,
        };
        let mut files = vec![
            (
                NODE_CONFIG_PATH.to_string(),
                0o644,
                serde_json::to_vec_pretty(&node_cfg).expect("serializable"),
            ),
            (
                format!("{PKI_DIR}/ca.crt"),
                0o644,
                ca.pair.cert_pem.clone().into_bytes(),
            ),
            (
                KUBELET_KUBECONFIG_PATH.to_string(),
                0o600,
                kubelet_entry.render().into_bytes(),
            ),
        ];
        if node.role == Role::ControlPlane {
            files.push((
                format!("{PKI_DIR}/ca.key"),
                0o600,
                ca.pair.key_pem.clone().into_bytes(),
            ));
            let admin_conf = admin_entry.render().into_bytes();
            files.push((ADMIN_KUBECONFIG_PATH.to_string(), 0o600, admin_conf.clone()));
            // So that a plain `kubectl get nodes` works in `docker exec -it <node> bash`.
            files.push(("/root/.kube/config".to_string(), 0o600, admin_conf));
        }
        let publish_api = node.name == control_planes[0];
        let body = container_body(
            cluster,
            node,
            spec,
            &image,
            publish_api.then(|| (api_address.clone(), api_port)),
            privileges,
        );
        prepared.push((node.name.clone(), body, docker::tar_of(&files)));
    }
    // Nodes are independent until they start: create them all at once.
    let results =
        futures::future::join_all(prepared.into_iter().map(|(name, body, tar)| async move {
            let create = CreateContainerOptionsBuilder::default().name(&name).build();
            match docker.create_container(Some(create), body).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 409) => return (None, Err(Error::Exists(cluster.clone()))),
                Err(e) => return (None, Err(e.into())),
            }
            let uploaded = docker::upload(docker, &name, tar)
                .await
                .map_err(Error::from);
            (Some(name), uploaded)
        }))
        .await;
    let mut first_error = None;
    for (name, result) in results {
        made.extend(name);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    step.done();

    // Start the nodes; each one's init starts its components.
    let step = progress.step("Starting nodes");
    let starts = planned.iter().map(|node| async move {
        docker
            .start_container(&node.name, None)
            .await
            .map_err(|e| Error::Start {
                node: node.name.clone(),
                message: e.to_string(),
            })
    });
    for r in futures::future::join_all(starts).await {
        r?;
    }
    step.done();

    // Merge the kubeconfig so kubectl works right away.
    let entry = Entry {
        server: format!("https://{}:{api_port}", display_host(&api_address)),
        ..admin_entry
    };
    let step = progress.step(format!(
        "Writing kubeconfig context {} to {}",
        entry.name,
        opts.kubeconfig.display()
    ));
    kubeconfig::merge(&opts.kubeconfig, &entry)?;
    step.done();

    // The bundled images go in while the nodes boot; each node's init imports them.
    let bundle_tar = docker::tar_of(&[(
        nodeimage::bundled::NODE_BUNDLE_PATH.to_string(),
        0o644,
        bundle,
    )]);
    let uploads = futures::future::join_all(
        planned
            .iter()
            .map(|n| docker::upload(docker, &n.name, bundle_tar.clone())),
    );
    let waiting_since = Instant::now();
    let step = (!opts.wait.is_zero()).then(|| {
        progress.step(format!(
            "Waiting ≤ {}s for {} node(s) to be Ready",
            opts.wait.as_secs(),
            planned.len()
        ))
    });
    let ready = async {
        if opts.wait.is_zero() {
            Ok(())
        } else {
            wait_ready(cluster, &entry, planned.len(), opts.wait).await
        }
    };
    let (uploaded, ready) = tokio::join!(uploads, ready);
    for u in uploaded {
        u?;
    }
    ready?;
    if let Some(step) = step {
        step.done();
    }
    // The budget counts a cluster as up when its DNS answers, as kind's users time it.
    let first_cp = planned.iter().find(|n| n.role == Role::ControlPlane);
    let service_subnet = cfg.networking.service_subnet.clone().unwrap_or_default();
    if let (false, Some(cp)) = (opts.wait.is_zero(), first_cp) {
        let left = opts.wait.saturating_sub(waiting_since.elapsed());
        let step = progress.step("Waiting for cluster DNS to answer");
        wait_dns(docker, cluster, &cp.name, &service_subnet, left).await?;
        step.done();
    }
    Ok(Created {
        nodes: planned.into_iter().map(|n| n.name).collect(),
        server: entry.server,
        context: entry.name,
    })
}

fn display_host(address: &str) -> String {
    if address == "0.0.0.0" {
        "127.0.0.1".into()
    } else {
        address.to_string()
    }
}

/// How much of the host the node may use. Some engines cannot grant every capability and refuse
/// `--privileged`; the fallback grants what they can, which is enough for a node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Privileges {
    Privileged,
    AllGrantableCaps,
}

fn container_body(
    cluster: &str,
    node: &PlannedNode,
    spec: &crate::cluster::config::Node,
    image: &str,
    api: Option<(String, u16)>,
    privileges: Privileges,
) -> ContainerCreateBody {
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    if let Some((address, port)) = api {
        let key = format!("{API_SERVER_PORT}/tcp");
        exposed.push(key.clone());
        port_bindings.insert(
            key,
            Some(vec![PortBinding {
                host_ip: Some(address),
                host_port: Some(port.to_string()),
            }]),
        );
    }
    for m in &spec.extra_port_mappings {
        let proto = m.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        let key = format!("{}/{proto}", m.container_port);
        exposed.push(key.clone());
        port_bindings
            .entry(key)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: m.listen_address.clone().or_else(|| Some("0.0.0.0".into())),
                host_port: Some(if m.host_port == 0 {
                    String::new()
                } else {
                    m.host_port.to_string()
                }),
            });
    }
    let mut binds: Vec<String> = spec
        .extra_mounts
        .iter()
        .map(|m| {
            let mut opts = vec![if m.read_only { "ro" } else { "rw" }];
            if m.selinux_relabel {
                opts.push("Z");
            }
            match m.propagation.as_deref() {
                Some("HostToContainer") => opts.push("rslave"),
                Some("Bidirectional") => opts.push("rshared"),
                _ => {}
            }
            format!("{}:{}:{}", m.host_path, m.container_path, opts.join(","))
        })
        .collect();
    if std::path::Path::new("/lib/modules").exists() {
        binds.push("/lib/modules:/lib/modules:ro".into());
    }
    let mut host = HostConfig {
        security_opt: Some(vec![
            "seccomp=unconfined".into(),
            "apparmor=unconfined".into(),
        ]),
        tmpfs: Some(
            [
                ("/tmp".to_string(), String::new()),
                ("/run".to_string(), String::new()),
            ]
            .into(),
        ),
        binds: Some(binds),
        network_mode: Some(NETWORK_NAME.into()),
        port_bindings: Some(port_bindings),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        ..Default::default()
    };
    match privileges {
        Privileges::Privileged => host.privileged = Some(true),
        Privileges::AllGrantableCaps => {
            host.cap_add = Some(vec!["ALL".into()]);
            host.cap_drop = Some(vec!["SYS_RESOURCE".into()]);
            host.binds
                .get_or_insert_with(Vec::new)
                .push("/sys/fs/cgroup:/sys/fs/cgroup:rw".into());
            host.devices = Some(
                ["/dev/net/tun", "/dev/fuse"]
                    .iter()
                    .filter(|d| std::path::Path::new(d).exists())
                    .map(|d| DeviceMapping {
                        path_on_host: Some(d.to_string()),
                        path_in_container: Some(d.to_string()),
                        cgroup_permissions: Some("rwm".into()),
                    })
                    .collect(),
            );
        }
    }
    ContainerCreateBody {
        image: Some(image.into()),
        hostname: Some(node.name.clone()),
        labels: Some(
            [
                (LABEL_CLUSTER.to_string(), cluster.to_string()),
                (LABEL_ROLE.to_string(), node.role.to_string()),
            ]
            .into(),
        ),
        env: Some(vec!["container=docker".into()]),
        exposed_ports: Some(exposed),
        volumes: Some(vec!["/var".into()]),
        stop_signal: Some("SIGTERM".into()),
        host_config: Some(host),
        ..Default::default()
    }
}

/// Whether this engine grants `--privileged`. Some cannot grant every capability and refuse
/// it ("unable to apply caps"); nodes then get the fallback. A throwaway container answers
/// once per create, so no node has to be made twice.
async fn probe_privileges(docker: &Docker, image: &str) -> Result<Privileges> {
    let name = format!("kindling-probe-{}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(image.into()),
        entrypoint: Some(vec!["true".into()]),
        host_config: Some(HostConfig {
            privileged: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let create = CreateContainerOptionsBuilder::default().name(&name).build();
    docker.create_container(Some(create), body).await?;
    let started = docker.start_container(&name, None).await;
    remove_node(docker, &name).await?;
    match started {
        Ok(()) => Ok(Privileges::Privileged),
        Err(e) if e.to_string().contains("caps") => Ok(Privileges::AllGrantableCaps),
        Err(e) => Err(e.into()),
    }
}

async fn ensure_network(docker: &Docker) -> Result<()> {
    if kindling_networks(docker).await?.is_empty() {
        let req = NetworkCreateRequest {
            name: NETWORK_NAME.into(),
            driver: Some("bridge".into()),
            labels: Some([("dev.kindling.network".to_string(), "true".to_string())].into()),
            ..Default::default()
        };
        docker.create_network(req).await?;
    }
    // Docker allows several networks with one name, so two racing creates can both make one.
    // Every racer keeps the oldest and removes the rest, so they all settle on the same one.
    let mut nets = kindling_networks(docker).await?;
    nets.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    for extra in nets.iter().skip(1) {
        if let Some(id) = &extra.id {
            let _ = docker.remove_network(id).await;
        }
    }
    Ok(())
}

/// Networks named exactly [`NETWORK_NAME`] (Docker's name filter matches substrings).
async fn kindling_networks(docker: &Docker) -> Result<Vec<bollard::models::Network>> {
    let filters: HashMap<String, Vec<String>> =
        [("name".to_string(), vec![NETWORK_NAME.to_string()])].into();
    let opts = bollard::query_parameters::ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    Ok(docker
        .list_networks(Some(opts))
        .await?
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(NETWORK_NAME))
        .collect())
}

/// `port` if it can be bound on `address` now, or a free one when `port` is 0.
fn pick_port(address: &str, port: u16, what: &str) -> Result<u16> {
    let bind_addr = if address == "0.0.0.0" {
        "0.0.0.0"
    } else {
        address
    };
    match TcpListener::bind((bind_addr, port)) {
        Ok(l) => Ok(l.local_addr().map(|a| a.port()).unwrap_or(port)),
        Err(_) => Err(Error::PortInUse {
            port,
            address: address.into(),
            what: what.into(),
        }),
    }
}

/// Ask the cluster DNS, through its Service address from inside `node`, for the `kubernetes`
/// Service until it answers with that Service's address (kube-proxy, the Endpoints and the
/// server itself all in place).
pub async fn wait_dns(
    docker: &Docker,
    cluster: &str,
    node: &str,
    service_subnet: &str,
    timeout: Duration,
) -> Result<()> {
    let (Some(dns), Some(want)) = (
        crate::node::dns::service_ip(service_subnet),
        crate::node::net::first_service_ip(service_subnet),
    ) else {
        return Ok(());
    };
    // At least a few seconds, even when the nodes took most of --wait.
    let secs = timeout.as_secs().max(5);
    // dig waits at least a second for a lost query (one sent before kube-proxy's rule exists
    // goes nowhere), so a new one starts every 100 ms and the first right answer ends the wait.
    let script = format!(
        "end=$(( $(date +%s) + {secs} )); ok=/run/kindling-dns-answered; rm -f $ok; \
         while [ $(date +%s) -lt $end ]; do \
           (dig +short +time=1 +tries=1 @{dns} kubernetes.default.svc.cluster.local \
             | grep -qx {want} && touch $ok) >/dev/null 2>&1 & \
           sleep 0.1; [ -e $ok ] && exit 0; \
         done; exit 1"
    );
    let (code, out) = docker::exec(docker, node, &["sh", "-c", &script]).await?;
    if code == 0 {
        return Ok(());
    }
    Err(Error::DnsNotReady {
        cluster: cluster.into(),
        ip: dns.to_string(),
        waited: Duration::from_secs(secs),
        detail: match out.trim() {
            "" => "no answer".into(),
            o => o.lines().last().unwrap_or_default().to_string(),
        },
    })
}

/// Poll the API server until `want` Nodes report Ready.
pub async fn wait_ready(
    cluster: &str,
    entry: &Entry,
    want: usize,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let mut detail = String::from("the API server has not answered yet");
    let mut ready = 0;
    while started.elapsed() < timeout {
        if let Ok(client) = kubeconfig::client(entry).await {
            let nodes: Api<Node> = Api::all(client);
            match nodes.list(&ListParams::default()).await {
                Ok(list) => {
                    ready = list.items.iter().filter(|n| is_ready(n)).count();
                    detail = format!("{} registered", list.items.len());
                    if ready >= want {
                        return Ok(());
                    }
                }
                Err(e) => detail = format!("API server: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::NotReady {
        cluster: cluster.into(),
        ready,
        total: want,
        waited: timeout,
        detail,
    })
}

pub fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_named_like_kind_names_them() {
        let cfg = Cluster::parse(
            "x",
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n- role: control-plane\n",
        )
        .unwrap();
        let names: Vec<_> = plan_nodes("dev", &cfg)
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(
            names,
            [
                "dev-control-plane",
                "dev-worker",
                "dev-worker2",
                "dev-control-plane2"
            ]
        );
    }

    #[test]
    fn a_taken_port_is_refused_with_its_number() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = pick_port("127.0.0.1", port, "the API server port").unwrap_err();
        assert!(e.to_string().contains(&format!("host port {port}")), "{e}");
        assert_ne!(pick_port("127.0.0.1", 0, "x").unwrap(), 0);
    }

    #[test]
    fn nodes_get_labels_a_volume_for_var_and_restart_policy() {
        let cfg = Cluster::default_config();
        let node = &plan_nodes("dev", &cfg)[0];
        let body = container_body(
            "dev",
            node,
            &cfg.nodes[0],
            "img",
            Some(("127.0.0.1".into(), 40000)),
            Privileges::Privileged,
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_CLUSTER], "dev");
        assert_eq!(labels[LABEL_ROLE], "control-plane");
        assert_eq!(body.volumes.unwrap(), ["/var"]);
        let host = body.host_config.unwrap();
        assert_eq!(host.privileged, Some(true));
        let api = &host.port_bindings.unwrap()["6443/tcp"].clone().unwrap()[0];
        assert_eq!(api.host_port.as_deref(), Some("40000"));
        assert_eq!(api.host_ip.as_deref(), Some("127.0.0.1"));
    }
}
