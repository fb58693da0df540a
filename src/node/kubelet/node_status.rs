//! What the kubelet reports about its node: addresses, capacity, nodeInfo and conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::cluster::config::Role;
use crate::consts::{CONTAINERD_SOCKET, KUBE_VERSION};
use crate::node::config::NodeConfig;

/// Facts about the machine, read once at start.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub hostname: String,
    pub internal_ip: String,
    pub cpus: usize,
    pub memory_ki: u64,
    pub storage_ki: u64,
    pub kernel: String,
    pub os_image: String,
    pub runtime_version: String,
    pub boot_id: String,
    pub machine_id: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl NodeFacts {
    pub fn gather() -> Self {
        let meminfo = read("/proc/meminfo");
        let memory_ki = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let runtime_version = std::process::Command::new("containerd")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                // "containerd github.com/containerd/containerd 1.6.20~ds1 <revision>"
                let text = String::from_utf8_lossy(&o.stdout).to_string();
                text.split_whitespace()
                    .nth(2)
                    .map(|v| format!("containerd://{v}"))
            })
            .unwrap_or_else(|| "containerd://unknown".into());
        let machine_id = match read("/etc/machine-id") {
            id if id.is_empty() => read("/proc/sys/kernel/random/boot_id").replace('-', ""),
            id => id,
        };
        NodeFacts {
            hostname: read("/proc/sys/kernel/hostname"),
            internal_ip: crate::node::net::ipv4_addrs()
                .first()
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_ki,
            storage_ki: storage_ki("/var"),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            runtime_version,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id,
        }
    }
}

fn storage_ki(path: &str) -> u64 {
    let Ok(c) = std::ffi::CString::new(path) else {
        return 0;
    };
    // SAFETY: statvfs writes into the zeroed struct we own.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_blocks as u64 * s.f_frsize as u64 / 1024
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The Node the kubelet registers: name, labels as upstream sets them, and register taints.
pub fn desired_node(cfg: &NodeConfig) -> Node {
    let mut labels: BTreeMap<String, String> = cfg.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), cfg.node_name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), arch().into());
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    labels.insert("beta.kubernetes.io/arch".into(), arch().into());
    if cfg.role == Role::ControlPlane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
        labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".into(),
            String::new(),
        );
    }
    let taints: Vec<Taint> = cfg
        .register_taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: (!t.value.is_empty()).then(|| t.value.clone()),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(labels),
            annotations: Some(
                [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..Default::default()
        }),
        status: None,
    }
}

/// A merge patch for `nodes/<name>/status`: conditions, addresses, capacity and nodeInfo.
/// `ready_since` is when Ready last changed, so heartbeats keep lastTransitionTime stable.
pub fn status_patch(facts: &NodeFacts, ready: bool, ready_since: jiff::Timestamp) -> Value {
    let now = crate::node::now_seconds().to_string();
    let since = crate::node::whole_seconds(ready_since).to_string();
    let cond = |ty: &str, status: &str, reason: &str, message: &str, at: &str| {
        json!({"type": ty, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": at})
    };
    let (ready_status, ready_reason, ready_msg) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "False",
            "KubeletNotReady",
            "container runtime is down: containerd is not answering on its socket",
        )
    };
    let resources = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_ki),
        "ephemeral-storage": format!("{}Ki", facts.storage_ki),
        "pods": "110",
    });
    json!({"status": {
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", &since),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", &since),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", &since),
            cond("Ready", ready_status, ready_reason, ready_msg, &since),
        ],
        "addresses": [
            {"type": "InternalIP", "address": facts.internal_ip},
            {"type": "Hostname", "address": facts.hostname},
        ],
        "capacity": resources,
        "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": crate::consts::KUBELET_PORT}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel,
            "osImage": facts.os_image,
            "containerRuntimeVersion": facts.runtime_version,
            "kubeletVersion": KUBE_VERSION,
            "kubeProxyVersion": KUBE_VERSION,
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    }})
}

/// The runtime is up when containerd accepts a connection on its socket.
pub async fn runtime_is_up() -> bool {
    tokio::net::UnixStream::connect(CONTAINERD_SOCKET)
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::Taint as CfgTaint;

    fn cfg(role: Role) -> NodeConfig {
        NodeConfig {
            labels: [("tier".to_string(), "web".to_string())].into(),
            register_taints: vec![CfgTaint {
                key: "node-role.kubernetes.io/control-plane".into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            }],
            ..NodeConfig::example(role)
        }
    }

    #[test]
    fn a_control_plane_node_carries_the_role_label_and_taint() {
        let n = desired_node(&cfg(Role::ControlPlane));
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["node-role.kubernetes.io/control-plane"], "");
        assert_eq!(labels["kubernetes.io/hostname"], "dev-control-plane");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["tier"], "web");
        let taint = &n.spec.unwrap().taints.unwrap()[0];
        assert_eq!(taint.effect, "NoSchedule");
        assert_eq!(taint.value, None);
    }

    #[test]
    fn a_worker_has_no_role_label() {
        let n = desired_node(&cfg(Role::Worker));
        assert!(
            !n.metadata
                .labels
                .unwrap()
                .contains_key("node-role.kubernetes.io/control-plane")
        );
    }

    #[test]
    fn the_status_reports_ready_and_keeps_the_transition_time() {
        let facts = NodeFacts {
            internal_ip: "172.18.0.2".into(),
            runtime_version: "containerd://1.6.20".into(),
            ..Default::default()
        };
        let since: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let p = status_patch(&facts, true, since);
        let ready = &p["status"]["conditions"][3];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(p["status"]["addresses"][0]["address"], "172.18.0.2");
        assert_eq!(
            p["status"]["nodeInfo"]["containerRuntimeVersion"],
            "containerd://1.6.20"
        );
        let not_ready = status_patch(&facts, false, since);
        assert_eq!(not_ready["status"]["conditions"][3]["status"], "False");
    }
}
