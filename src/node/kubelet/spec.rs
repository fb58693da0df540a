//! From a Pod to CRI requests: the sandbox config, each container's config (command, env,
//! mounts, cgroup limits) and the host paths of the pod's volumes.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::cri::api::{
    ContainerConfig, ContainerMetadata, DnsConfig, ImageSpec, Int64Value, KeyValue,
    LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
};
use super::cri::client::{
    CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL,
};

/// Where the kubelet keeps per-pod state (volumes), as upstream does.
pub const PODS_DIR: &str = "/var/lib/kubelet/pods";
/// Where container logs go: `<ns>_<name>_<uid>/<container>/<restart>.log`.
pub const POD_LOGS_DIR: &str = "/var/log/pods";
/// The cluster's DNS domain (kubeadm's default).
pub const CLUSTER_DOMAIN: &str = crate::node::dns::CLUSTER_DOMAIN;
/// CFS period the CPU quota is expressed in (upstream's 100 ms).
const CPU_PERIOD: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("volume {volume} of container {container} is not defined in the pod")]
    UnknownVolume { container: String, volume: String },
    #[error("volume {0} has a type the kubelet does not support yet")]
    UnsupportedVolume(String),
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("unsupported container resource: {0}")]
    UnsupportedResource(String),
    #[error("could not prepare volume {volume} at {path}")]
    Prepare {
        volume: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the pod's identity parts are, with defaults filled in.
pub struct PodRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
}

pub fn pod_ref(pod: &Pod) -> PodRef<'_> {
    PodRef {
        name: pod.metadata.name.as_deref().unwrap_or_default(),
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        uid: pod.metadata.uid.as_deref().unwrap_or_default(),
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

fn namespaces(pod: &Pod) -> NamespaceOption {
    let spec = pod.spec.as_ref();
    let mode = |on: Option<bool>, otherwise: NamespaceMode| {
        (if on.unwrap_or(false) {
            NamespaceMode::Node
        } else {
            otherwise
        }) as i32
    };
    let shared_pid = spec
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false);
    NamespaceOption {
        network: mode(spec.and_then(|s| s.host_network), NamespaceMode::Pod),
        pid: mode(
            spec.and_then(|s| s.host_pid),
            if shared_pid {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            },
        ),
        ipc: mode(spec.and_then(|s| s.host_ipc), NamespaceMode::Pod),
    }
}

/// Parses `/etc/resolv.conf` text into the sandbox's DNS config.
pub fn dns_from_resolv_conf(text: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(String::from)),
            Some("search") => dns.searches = words.map(String::from).collect(),
            Some("options") => dns.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    dns
}

/// The pod's resolver configuration from its dnsPolicy and dnsConfig (see
/// [`crate::node::dns::resolv::pod_resolv_conf`]), starting from the node's.
pub fn pod_dns(pod: &Pod, node: &DnsConfig, cluster_dns: Option<std::net::Ipv4Addr>) -> DnsConfig {
    use crate::node::dns::{CLUSTER_DOMAIN as DOMAIN, resolv};
    let node = resolv::ResolvConf {
        nameservers: node.servers.clone(),
        searches: node.searches.clone(),
        options: node.options.clone(),
    };
    let r = resolv::pod_resolv_conf(pod, &node, cluster_dns, DOMAIN);
    DnsConfig {
        servers: r.nameservers,
        searches: r.searches,
        options: r.options,
    }
}

/// The pod's QoS class decides its cgroup parent, as with upstream's cgroupfs driver.
pub fn qos_class(pod: &Pod) -> &'static str {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        any |= requests.is_some_and(|m| !m.is_empty()) || limits.is_some_and(|m| !m.is_empty());
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res)).map(|q| q.0.as_str());
            // A request defaults to the limit when only the limit is given.
            let request = requests
                .and_then(|l| l.get(res))
                .map(|q| q.0.as_str())
                .or(limit);
            if limit.is_none() || limit != request {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn cgroup_parent(pod: &Pod, uid: &str) -> String {
    match qos_class(pod) {
        "Guaranteed" => format!("/kubepods/pod{uid}"),
        "Burstable" => format!("/kubepods/burstable/pod{uid}"),
        _ => format!("/kubepods/besteffort/pod{uid}"),
    }
}

/// The pod's hostname: spec.hostname or its name, cut to 63 characters as upstream does.
pub fn pod_hostname(pod: &Pod) -> String {
    let h = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .unwrap_or(pod_ref(pod).name);
    h.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// The kubelet-managed hosts file of a pod, None for host-network pods (they see the node's).
pub fn hosts_path(pod: &Pod) -> Option<String> {
    (!host_network(pod)).then(|| format!("{PODS_DIR}/{}/etc-hosts", pod_ref(pod).uid))
}

/// The folder of the default service-account volume the kubelet adds.
pub fn default_token_dir(pod: &Pod) -> String {
    format!(
        "{PODS_DIR}/{}/volumes/kubernetes.io~projected/{}",
        pod_ref(pod).uid,
        super::volumes::DEFAULT_TOKEN_VOLUME
    )
}

pub fn log_directory(p: &PodRef) -> String {
    format!("{POD_LOGS_DIR}/{}_{}_{}", p.namespace, p.name, p.uid)
}

/// The RunPodSandbox config for `pod`. `attempt` counts sandboxes made for the pod before.
pub fn sandbox_config(pod: &Pod, attempt: u32, dns: &DnsConfig) -> PodSandboxConfig {
    let p = pod_ref(pod);
    let spec = pod.spec.as_ref();
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME_LABEL.into(), p.name.into());
    labels.insert(POD_NAMESPACE_LABEL.into(), p.namespace.into());
    labels.insert(POD_UID_LABEL.into(), p.uid.into());
    // Host-network pods share the node's UTS namespace, so upstream sends no hostname (runc
    // refuses to set one without a private UTS namespace).
    let hostname = if host_network(pod) {
        String::new()
    } else {
        pod_hostname(pod)
    };
    let port_mappings = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let privileged = all_containers(pod).any(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    });
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: p.name.into(),
            uid: p.uid.into(),
            namespace: p.namespace.into(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(&p),
        dns_config: Some(dns.clone()),
        port_mappings,
        labels,
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod, p.uid),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(pod)),
                privileged,
            }),
            sysctls: HashMap::new(),
        }),
    }
}

/// Init containers then app containers.
pub fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .chain(spec.map(|s| s.containers.as_slice()).unwrap_or_default())
}

/// A Kubernetes quantity in base units: `500m` → 0.5, `128Mi` → 134217728, `1e3` → 1000.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// The container's cgroup limits, computed as upstream's kuberuntime does.
pub fn linux_resources(c: &Container) -> LinuxContainerResources {
    let r = c.resources.as_ref();
    let get =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| m.and_then(|m| m.get(k)).and_then(|q| parse_quantity(&q.0));
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let cpu_limit = get(limits, "cpu");
    let cpu_request = get(requests, "cpu").or(cpu_limit);
    let milli = |v: f64| (v * 1000.0).ceil() as i64;
    // Shares: 1024 per CPU requested, at least 2 (the kernel's minimum), as upstream.
    let cpu_shares = cpu_request
        .map(|v| (milli(v) * 1024 / 1000).max(2))
        .unwrap_or(2);
    let (cpu_period, cpu_quota) = match cpu_limit {
        Some(v) => (CPU_PERIOD, (milli(v) * CPU_PERIOD / 1000).max(1000)),
        None => (0, 0),
    };
    LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: get(limits, "memory").map(|v| v as i64).unwrap_or(0),
        oom_score_adj: 0,
    }
}

/// Replaces `$(VAR)` with the variable's value where it is defined; `$$(VAR)` stays literal.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
            && let Some(v) = vars.get(&body[..end])
        {
            out.push_str(v);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Facts about the pod's runtime the downward API can expose.
pub struct Downward<'a> {
    pub node: &'a str,
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
    /// The node's allocatable CPUs, memory and storage (bytes): what unset limits mean.
    pub allocatable_cpu: f64,
    pub allocatable_memory: f64,
    pub allocatable_storage: f64,
}

/// The value of a `fieldRef` path, or None for one the kubelet doesn't know.
pub fn field_ref(pod: &Pod, path: &str, d: &Downward) -> Option<String> {
    let p = pod_ref(pod);
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => p.name.into(),
        "metadata.namespace" => p.namespace.into(),
        "metadata.uid" => p.uid.into(),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| d.node.into()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => d.pod_ip.into(),
        "status.hostIP" | "status.hostIPs" => d.host_ip.into(),
        _ => {
            // metadata.labels['k'] and metadata.annotations['k']
            let (map, key) = path
                .strip_prefix("metadata.labels['")
                .map(|k| (&pod.metadata.labels, k))
                .or_else(|| {
                    path.strip_prefix("metadata.annotations['")
                        .map(|k| (&pod.metadata.annotations, k))
                })?;
            let key = key.strip_suffix("']")?;
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default()
        }
    })
}

/// The ConfigMaps and Secrets of the pod's namespace that a container refers to, fetched by the
/// caller; None for one that does not exist.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    pub secrets: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl Sources {
    /// The ConfigMaps and Secrets `c`'s env and envFrom name.
    pub fn wanted(c: &Container) -> (Vec<String>, Vec<String>) {
        let (mut cms, mut secrets) = (vec![], vec![]);
        for e in c.env_from.iter().flatten() {
            cms.extend(e.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(e.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                cms.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
        cms.sort();
        cms.dedup();
        secrets.sort();
        secrets.dedup();
        (cms, secrets)
    }

    fn config_map(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.config_maps.get(name).and_then(Option::as_ref)
    }

    fn secret(&self, name: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name).and_then(Option::as_ref)
    }
}

/// A resourceFieldRef's value, as upstream's `ExtractContainerResourceValue`: rounded up in
/// units of `divisor`; unset limits are the node's allocatable, unset requests the limit or 0.
pub fn resource_field(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    d: &Downward,
) -> Result<String> {
    let r = c.resources.as_ref();
    let get = |m: Option<&BTreeMap<String, Quantity>>, k: &str| {
        m.and_then(|m| m.get(k)).and_then(|q| parse_quantity(&q.0))
    };
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| Error::UnsupportedResource(resource.into()))?;
    let limit = get(limits, name);
    let value = match (kind, name) {
        ("limits", "cpu") => limit.unwrap_or(d.allocatable_cpu),
        ("limits", "memory") => limit.unwrap_or(d.allocatable_memory),
        ("limits", "ephemeral-storage") => limit.unwrap_or(d.allocatable_storage),
        ("requests", "cpu" | "memory" | "ephemeral-storage") => {
            get(requests, name).or(limit).unwrap_or(0.0)
        }
        _ => return Err(Error::UnsupportedResource(resource.into())),
    };
    let divisor = divisor
        .and_then(parse_quantity)
        .filter(|v| *v > 0.0)
        .unwrap_or(1.0);
    // Round in milli-units for CPU so 0.25 CPU / 1m is exactly 250, as upstream's MilliValue.
    let n = if name == "cpu" {
        ((value * 1000.0).round() / (divisor * 1000.0).round()).ceil()
    } else {
        (value / divisor).ceil()
    };
    Ok(format!("{}", n as i64))
}

/// The container's environment, as upstream's `makeEnvironmentVariables`: envFrom sources
/// first (with their prefix), then env entries (literal values with `$(VAR)` references to
/// earlier variables expanded, downward-API fields, resource fields, ConfigMap and Secret
/// keys). A missing, non-optional ConfigMap, Secret or key fails with upstream's message.
pub fn env(pod: &Pod, c: &Container, d: &Downward, src: &Sources) -> Result<Vec<KeyValue>> {
    let ns = pod_ref(pod).namespace;
    let mut out: Vec<KeyValue> = vec![];
    let set = |out: &mut Vec<KeyValue>, key: String, value: String| match out
        .iter_mut()
        .find(|kv| kv.key == key)
    {
        Some(kv) => kv.value = value,
        None => out.push(KeyValue { key, value }),
    };
    for e in c.env_from.iter().flatten() {
        let prefix = e.prefix.clone().unwrap_or_default();
        if let Some(r) = &e.config_map_ref {
            match src.config_map(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut out, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(Error::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &e.secret_ref {
            match src.secret(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut out,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(v).into_owned(),
                        );
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(Error::SecretNotFound(r.name.clone())),
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => {
                let vars: HashMap<String, String> = out
                    .iter()
                    .map(|kv| (kv.key.clone(), kv.value.clone()))
                    .collect();
                expand(v, &vars)
            }
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_ref(pod, &f.field_path, d).unwrap_or_default()
                } else if let Some(r) = &from.resource_field_ref {
                    // For env the container defaults to the one being configured.
                    let target = r
                        .container_name
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .and_then(|n| all_containers(pod).find(|x| x.name == n))
                        .unwrap_or(c);
                    resource_field(
                        target,
                        &r.resource,
                        r.divisor.as_ref().map(|q| q.0.as_str()),
                        d,
                    )?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match src.config_map(&r.name) {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(Error::ConfigMapKeyNotFound {
                                    key: r.key.clone(),
                                    namespace: ns.into(),
                                    name: r.name.clone(),
                                });
                            }
                        },
                        None if optional => continue,
                        None => return Err(Error::ConfigMapNotFound(r.name.clone())),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match src.secret(&r.name) {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(Error::SecretKeyNotFound {
                                    key: r.key.clone(),
                                    namespace: ns.into(),
                                    name: r.name.clone(),
                                });
                            }
                        },
                        None if optional => continue,
                        None => return Err(Error::SecretNotFound(r.name.clone())),
                    }
                } else {
                    String::new()
                }
            }
            (None, None) => String::new(),
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

/// The host folder of a pod volume (created by `prepare_volumes`), or None when the volume
/// is not one the kubelet supports.
pub fn volume_host_path(pod: &Pod, volume: &str) -> Option<String> {
    let p = pod_ref(pod);
    let v = pod
        .spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == volume)?;
    if let Some(h) = &v.host_path {
        Some(h.path.clone())
    } else if v.empty_dir.is_some() {
        Some(format!(
            "{PODS_DIR}/{}/volumes/kubernetes.io~empty-dir/{volume}",
            p.uid
        ))
    } else if v.config_map.is_some() {
        Some(format!(
            "{PODS_DIR}/{}/volumes/kubernetes.io~configmap/{volume}",
            p.uid
        ))
    } else if v.secret.is_some() {
        Some(format!(
            "{PODS_DIR}/{}/volumes/kubernetes.io~secret/{volume}",
            p.uid
        ))
    } else if v.downward_api.is_some() {
        Some(format!(
            "{PODS_DIR}/{}/volumes/kubernetes.io~downward-api/{volume}",
            p.uid
        ))
    } else if v.projected.is_some() {
        Some(format!(
            "{PODS_DIR}/{}/volumes/kubernetes.io~projected/{volume}",
            p.uid
        ))
    } else {
        None
    }
}

/// Creates the folders of the pod's emptyDir volumes, and hostPath folders whose type asks for it.
pub fn prepare_volumes(pod: &Pod) -> Result<()> {
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let create = v.empty_dir.is_some()
            || v.host_path
                .as_ref()
                .is_some_and(|h| matches!(h.type_.as_deref(), Some("DirectoryOrCreate")));
        if !create {
            continue;
        }
        let Some(path) = volume_host_path(pod, &v.name) else {
            continue;
        };
        std::fs::create_dir_all(&path).map_err(|source| Error::Prepare {
            volume: v.name.clone(),
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The CreateContainer config for container `c` of `pod`, restart number `attempt`.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    image_ref: &str,
    d: &Downward,
    src: &Sources,
) -> Result<ContainerConfig> {
    let p = pod_ref(pod);
    let envs = env(pod, c, d, src)?;
    let vars: HashMap<String, String> = envs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let mut mounts = vec![];
    for m in c.volume_mounts.iter().flatten() {
        let unknown = || Error::UnknownVolume {
            container: c.name.clone(),
            volume: m.name.clone(),
        };
        let defined = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .is_some_and(|vs| vs.iter().any(|v| v.name == m.name));
        if !defined {
            return Err(unknown());
        }
        let mut host = volume_host_path(pod, &m.name)
            .ok_or_else(|| Error::UnsupportedVolume(m.name.clone()))?;
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host = format!("{host}/{sub}");
            let _ = std::fs::create_dir_all(&host);
        }
        mounts.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: host,
            readonly: m.read_only.unwrap_or(false),
        });
    }
    let mounted = |mounts: &[Mount], path: &str| mounts.iter().any(|m| m.container_path == path);
    if super::volumes::wants_default_token(pod)
        && !mounted(&mounts, super::volumes::SERVICE_ACCOUNT_MOUNT)
    {
        mounts.push(Mount {
            container_path: super::volumes::SERVICE_ACCOUNT_MOUNT.into(),
            host_path: default_token_dir(pod),
            readonly: true,
        });
    }
    if let Some(hosts) = hosts_path(pod)
        && !mounted(&mounts, "/etc/hosts")
    {
        mounts.push(Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts,
            readonly: false,
        });
    }
    let sc = c.security_context.as_ref();
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    let labels: HashMap<String, String> = [
        (POD_NAME_LABEL, p.name),
        (POD_NAMESPACE_LABEL, p.namespace),
        (POD_UID_LABEL, p.uid),
        (CONTAINER_NAME_LABEL, c.name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: HashMap<String, String> = [
        (
            "io.kubernetes.container.restartCount".to_string(),
            attempt.to_string(),
        ),
        (
            "io.kubernetes.container.terminationMessagePath".to_string(),
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
    ]
    .into();
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(ImageSpec {
            image: image_ref.into(),
            user_specified_image: c.image.clone().unwrap_or_default(),
        }),
        command: c
            .command
            .iter()
            .flatten()
            .map(|s| expand(s, &vars))
            .collect(),
        args: c.args.iter().flatten().map(|s| expand(s, &vars)).collect(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        labels,
        annotations,
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(linux_resources(c)),
            security_context: Some(LinuxContainerSecurityContext {
                privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
                namespace_options: Some(namespaces(pod)),
                run_as_user: run_as_user.map(|value| Int64Value { value }),
                run_as_group: run_as_group.map(|value| Int64Value { value }),
                readonly_rootfs: sc
                    .and_then(|s| s.read_only_root_filesystem)
                    .unwrap_or(false),
            }),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap()
    }

    const D: Downward = Downward {
        node: "dev-worker",
        host_ip: "172.18.0.3",
        pod_ip: "10.244.1.5",
        allocatable_cpu: 2.0,
        allocatable_memory: 4.0 * 1024.0 * 1024.0 * 1024.0,
        allocatable_storage: 1e11,
    };

    #[test]
    fn the_sandbox_carries_identity_logs_ports_and_host_network() {
        let p = pod(
            json!({"hostNetwork": true, "containers": [{"name": "c", "image": "x",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9000}]}]}),
        );
        let dns = dns_from_resolv_conf("nameserver 127.0.0.11\nsearch a b\noptions ndots:0\n");
        let s = sandbox_config(&p, 1, &dns);
        assert_eq!(s.hostname, "", "host-network pods keep the node's hostname");
        let m = s.metadata.unwrap();
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.uid.as_str(),
                m.attempt
            ),
            ("web", "shop", "u-1", 1)
        );
        assert_eq!(s.log_directory, "/var/log/pods/shop_web_u-1");
        assert_eq!(s.labels[POD_UID_LABEL], "u-1");
        assert_eq!(s.labels["app"], "web");
        assert_eq!(s.port_mappings.len(), 1);
        assert_eq!(s.port_mappings[0].host_port, 8080);
        let ns = s
            .linux
            .unwrap()
            .security_context
            .unwrap()
            .namespace_options
            .unwrap();
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(ns.pid, NamespaceMode::Container as i32);
        assert_eq!(s.dns_config.unwrap().searches, ["a", "b"]);
    }

    #[test]
    fn env_resolves_literals_field_refs_and_references() {
        let p = pod(
            json!({"nodeName": "dev-worker", "containers": [{"name": "c", "image": "x",
            "command": ["echo", "$(GREETING)", "$$(GREETING)"],
            "env": [
                {"name": "WHO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "GREETING", "value": "hi $(WHO) on $(NODE)"}]}]}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = container_config(&p, c, 2, "sha256:abc", &D, &Sources::default()).unwrap();
        let env: Vec<_> = cfg
            .envs
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        assert_eq!(
            env,
            [
                "WHO=web",
                "IP=10.244.1.5",
                "NODE=dev-worker",
                "NS=shop",
                "GREETING=hi web on dev-worker"
            ]
        );
        assert_eq!(cfg.command, ["echo", "hi web on dev-worker", "$(GREETING)"]);
        assert_eq!(cfg.log_path, "c/2.log");
        assert_eq!(cfg.metadata.unwrap().attempt, 2);
    }

    #[test]
    fn resources_become_cgroup_limits_and_qos() {
        let p = pod(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}}]}));
        let r = linux_resources(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 50_000));
        assert_eq!(r.memory_limit_in_bytes, 64 * 1024 * 1024);
        assert_eq!(qos_class(&p), "Burstable");
        let none = pod(json!({"containers": [{"name": "c", "image": "x"}]}));
        assert_eq!(qos_class(&none), "BestEffort");
        assert_eq!(
            linux_resources(&none.spec.as_ref().unwrap().containers[0]).cpu_shares,
            2
        );
        let g = pod(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}));
        assert_eq!(qos_class(&g), "Guaranteed");
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("lots"), None);
    }

    #[test]
    fn volumes_mount_from_the_pods_folder_or_the_host() {
        let p = pod(json!({"volumes": [{"name": "scratch", "emptyDir": {}},
                                       {"name": "logs", "hostPath": {"path": "/var/log"}}],
            "containers": [{"name": "c", "image": "x", "volumeMounts": [
                {"name": "scratch", "mountPath": "/tmp/s"},
                {"name": "logs", "mountPath": "/host-logs", "readOnly": true}]}]}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = container_config(&p, c, 0, "img", &D, &Sources::default()).unwrap();
        assert_eq!(
            cfg.mounts[0].host_path,
            "/var/lib/kubelet/pods/u-1/volumes/kubernetes.io~empty-dir/scratch"
        );
        assert_eq!(cfg.mounts[1].host_path, "/var/log");
        assert!(cfg.mounts[1].readonly);
        let bad = pod(json!({"containers": [{"name": "c", "image": "x",
            "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}));
        let c = &bad.spec.as_ref().unwrap().containers[0];
        assert!(matches!(
            container_config(&bad, c, 0, "img", &D, &Sources::default()),
            Err(Error::UnknownVolume { .. })
        ));
    }

    #[test]
    fn env_from_config_maps_secrets_and_resources_like_upstream() {
        let p = pod(json!({"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}},
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                        {"secretRef": {"name": "creds"}}],
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                {"name": "BOTH", "value": "$(MODE)/$(CFG_mode)"}]}]}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let mut src = Sources::default();
        src.config_maps.insert(
            "settings".into(),
            Some([("mode".to_string(), "fast".to_string())].into()),
        );
        src.secrets.insert(
            "creds".into(),
            Some([("password".to_string(), b"s3cret".to_vec())].into()),
        );
        let vars: Vec<_> = env(&p, c, &D, &src)
            .unwrap()
            .into_iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        assert_eq!(
            vars,
            [
                "CFG_mode=fast",
                "password=s3cret",
                "MODE=fast",
                "PASS=s3cret",
                "CPU_M=250",
                "CPU_LIMIT=2",
                "MEM_MI=64",
                "BOTH=fast/fast"
            ]
        );
        let missing = |v: serde_json::Value| {
            let p = pod(json!({"containers": [{"name": "c", "image": "x", "env": [v]}]}));
            let c = p.spec.as_ref().unwrap().containers[0].clone();
            env(&p, &c, &D, &src).unwrap_err().to_string()
        };
        assert_eq!(
            missing(
                json!({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}})
            ),
            "configmap \"x\" not found"
        );
        assert_eq!(
            missing(
                json!({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}})
            ),
            "couldn't find key k in ConfigMap shop/settings"
        );
        assert_eq!(
            missing(
                json!({"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}})
            ),
            "couldn't find key k in Secret shop/creds"
        );
        assert_eq!(
            missing(
                json!({"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}})
            ),
            "secret \"gone\" not found"
        );
    }
}
