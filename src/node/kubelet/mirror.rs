//! Mirror pods for the node's own components (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, flannel), posted the way upstream's kubelet mirrors static pods, so
//! `kubectl get pods -n kube-system` looks like a kubeadm cluster; recreated when deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::node::config::NodeConfig;
use crate::node::supervisor;

/// Upstream's annotation marking a pod as the API's mirror of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// How often the mirror pods' status is refreshed (the kubelet's status heartbeat).
const RESYNC: Duration = Duration::from_secs(10);
/// What the components run from: the node image itself, not an image of their own.
const IMAGE: &str = "kindling/node";

/// One mirrored component: its pod's namespace and name, labels and command.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirrored {
    /// The process name (`argv[0]`), also the container name.
    pub component: String,
    pub namespace: &'static str,
    pub pod_name: String,
    pub labels: Vec<(&'static str, String)>,
    pub command: Vec<String>,
}

/// The node's components as mirror pods, named as kubeadm's static pods (`<name>-<node>`).
pub fn mirrored(cfg: &NodeConfig) -> Vec<Mirrored> {
    let node = &cfg.node_name;
    supervisor::components(cfg, None)
        .into_iter()
        .filter_map(|c| {
            let command = std::iter::once(c.name.to_string())
                .chain(c.args.iter().cloned())
                .collect();
            let (namespace, pod_name, labels) = match c.name {
                "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" => (
                    "kube-system",
                    format!("{}-{node}", c.name),
                    vec![
                        ("component", c.name.to_string()),
                        ("tier", "control-plane".to_string()),
                    ],
                ),
                // Shown as kubeadm's CoreDNS pods are: the kube-dns Service selects them.
                "coredns" => (
                    "kube-system",
                    format!("coredns-{node}"),
                    vec![(
                        crate::node::dns::APP_LABEL.0,
                        crate::node::dns::APP_LABEL.1.to_string(),
                    )],
                ),
                "kube-proxy" => (
                    "kube-system",
                    format!("kube-proxy-{node}"),
                    vec![("k8s-app", "kube-proxy".to_string())],
                ),
                "flanneld" => (
                    crate::node::flannel::NAMESPACE,
                    format!("kube-flannel-{node}"),
                    vec![("app", "flannel".to_string()), ("tier", "node".to_string())],
                ),
                _ => return None,
            };
            Some(Mirrored {
                component: c.name.to_string(),
                namespace,
                pod_name,
                labels,
                command,
            })
        })
        .collect()
}

/// The mirror pod for `m`, owned by the Node as upstream's are.
pub fn pod(m: &Mirrored, node: &str, node_uid: &str) -> Value {
    let spec = json!({
        "nodeName": node,
        "hostNetwork": true,
        "priorityClassName": "system-node-critical",
        "priority": 2000001000,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
        "containers": [{
            "name": m.component,
            "image": IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "command": m.command,
        }],
    });
    let hash = hex::encode(&Sha256::digest(spec.to_string().as_bytes())[..16]);
    let labels: serde_json::Map<String, Value> = m
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": m.pod_name,
            "namespace": m.namespace,
            "labels": labels,
            "annotations": {
                MIRROR_ANNOTATION: hash,
                "kubernetes.io/config.hash": hash,
                "kubernetes.io/config.source": "file",
                "kubernetes.io/config.seen": jiff::Timestamp::now().to_string(),
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node,
                                 "uid": node_uid, "controller": true}],
        },
        "spec": spec,
    })
}

/// A running process: pid and start time (RFC 3339).
#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub pid: u32,
    pub started_at: String,
}

/// Finds the process the supervisor started as `name` (its argv[0]).
pub fn find_process(name: &str) -> Option<Process> {
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no memory preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if argv0 != name.as_bytes() {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // Field 22 (starttime), counted after the parenthesised command name.
        let after = stat.rsplit_once(')')?.1;
        let start_ticks: i64 = after.split_whitespace().nth(19)?.parse().ok()?;
        let secs = boot + start_ticks / ticks;
        let started_at = jiff::Timestamp::from_second(secs).ok()?.to_string();
        return Some(Process { pid, started_at });
    }
    None
}

/// The mirror pod's status from its process, as a merge patch.
pub fn status(m: &Mirrored, node_ip: &str, process: Option<&Process>, since: &str) -> Value {
    let running = process.is_some();
    let ok = |b: bool| if b { "True" } else { "False" };
    let cond = |ty: &str, status: &str| json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    let state = match process {
        Some(p) => json!({"running": {"startedAt": p.started_at}}),
        None => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    json!({"status": {
        "phase": if running { "Running" } else { "Pending" },
        "conditions": [
            cond("PodReadyToStartContainers", "True"),
            cond("Initialized", "True"),
            cond("Ready", ok(running)),
            cond("ContainersReady", ok(running)),
            cond("PodScheduled", "True"),
        ],
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "podIP": node_ip,
        "podIPs": [{"ip": node_ip}],
        "startTime": since,
        "qosClass": "BestEffort",
        "containerStatuses": [{
            "name": m.component,
            "state": state,
            "lastState": {},
            "ready": running,
            "started": running,
            "restartCount": 0,
            "image": IMAGE,
            "imageID": "",
        }],
    }})
}

/// Keeps the mirror pods present and their status current until the process ends; `wake`
/// makes it look again at once (a mirror pod was deleted).
pub async fn run(client: kube::Client, cfg: NodeConfig, node_ip: String, wake: Arc<Notify>) {
    let wanted = mirrored(&cfg);
    let mut reported: HashMap<String, Value> = HashMap::new();
    loop {
        if let Err(e) = sync(&client, &cfg.node_name, &node_ip, &wanted, &mut reported).await {
            eprintln!("kubelet: mirror pods: {e}");
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

async fn sync(
    client: &kube::Client,
    node: &str,
    node_ip: &str,
    wanted: &[Mirrored],
    reported: &mut HashMap<String, Value>,
) -> Result<(), kube::Error> {
    let node_uid = Api::<Node>::all(client.clone())
        .get(node)
        .await?
        .metadata
        .uid
        .unwrap_or_default();
    for m in wanted {
        let api: Api<Pod> = Api::namespaced(client.clone(), m.namespace);
        let desired = pod(m, node, &node_uid);
        let hash = desired["metadata"]["annotations"][MIRROR_ANNOTATION].clone();
        let existing = api.get_opt(&m.pod_name).await?;
        let current = match existing {
            Some(p)
                if p.metadata.deletion_timestamp.is_none()
                    && p.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(MIRROR_ANNOTATION))
                        .is_some_and(|h| hash == *h)
                    && p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.uid == node_uid) =>
            {
                p
            }
            other => {
                // Deleted, outdated, or owned by an older Node: replace it, as upstream does.
                if let Some(old) = other {
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: old.metadata.uid.clone(),
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match api.delete(&m.pod_name, &dp).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                reported.remove(&m.pod_name);
                let p: Pod = serde_json::from_value(desired).map_err(kube::Error::SerdeError)?;
                match api.create(&PostParams::default(), &p).await {
                    Ok(p) => p,
                    // A delete still finishing: the next round creates it.
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        let since = current
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| jiff::Timestamp::now().to_string());
        let status = status(m, node_ip, find_process(&m.component).as_ref(), &since);
        if reported.get(&m.pod_name) != Some(&status) {
            api.patch_status(&m.pod_name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            reported.insert(m.pod_name.clone(), status);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::config::Role;

    #[test]
    fn control_planes_mirror_kubeadms_static_pods_and_every_node_its_flannel() {
        let cfg = NodeConfig {
            node_name: "dev-control-plane".into(),
            ..NodeConfig::example(Role::ControlPlane)
        };
        let names: Vec<_> = mirrored(&cfg)
            .iter()
            .map(|m| format!("{}/{}", m.namespace, m.pod_name))
            .collect();
        for want in [
            "kube-system/etcd-dev-control-plane",
            "kube-system/kube-apiserver-dev-control-plane",
            "kube-system/kube-controller-manager-dev-control-plane",
            "kube-system/kube-scheduler-dev-control-plane",
            "kube-system/coredns-dev-control-plane",
            "kube-flannel/kube-flannel-dev-control-plane",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        let worker = NodeConfig {
            node_name: "dev-worker".into(),
            ..NodeConfig::example(Role::Worker)
        };
        let names: Vec<_> = mirrored(&worker).into_iter().map(|m| m.pod_name).collect();
        assert!(
            names.contains(&"kube-flannel-dev-worker".to_string()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with("etcd-")), "{names:?}");
    }

    #[test]
    fn a_mirror_pod_is_owned_by_its_node_and_annotated_as_a_mirror() {
        let cfg = NodeConfig::example(Role::ControlPlane);
        let m = &mirrored(&cfg)[0];
        let p = pod(m, "dev-control-plane", "node-uid");
        assert_eq!(p["spec"]["hostNetwork"], true);
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "node-uid");
        let hash = &p["metadata"]["annotations"][MIRROR_ANNOTATION];
        assert_eq!(hash.as_str().unwrap().len(), 32);
        assert_eq!(
            *hash,
            pod(m, "dev-control-plane", "node-uid")["metadata"]["annotations"][MIRROR_ANNOTATION]
        );
        let s = status(
            m,
            "172.18.0.2",
            Some(&Process {
                pid: 7,
                started_at: "2026-01-01T00:00:00Z".into(),
            }),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(s["status"]["phase"], "Running");
        assert_eq!(s["status"]["podIP"], "172.18.0.2");
        assert_eq!(s["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(
            status(m, "172.18.0.2", None, "t")["status"]["phase"],
            "Pending"
        );
    }

    #[test]
    fn this_process_is_found_by_its_argv0() {
        let me = std::env::args().next().unwrap();
        let p = find_process(&me).expect("the test process");
        assert!(p.started_at.ends_with('Z'), "{p:?}");
    }
}
