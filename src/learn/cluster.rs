//! The live cluster panel's data: reflector stores of Nodes, Pods, Services and Events fed by
//! watches on the lab cluster (no polling), turned into rows when the TUI asks.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kindling_tui::{ClusterSnapshot, EventRow, NodeRow, PodRow, ServiceRow};
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};

/// How many of the newest events the panel keeps.
const EVENTS_SHOWN: usize = 20;

/// Watches on one lab cluster; they run until the process ends.
pub struct Watches {
    nodes: Store<Node>,
    pods: Store<Pod>,
    services: Store<Service>,
    events: Store<Event>,
    /// The last watch error, shown while the stores are empty.
    error: Arc<Mutex<Option<String>>>,
    /// Moves on every watch event, so the TUI re-runs the checks.
    changes: Arc<AtomicU64>,
}

fn spawn<K>(api: Api<K>, error: Arc<Mutex<Option<String>>>, changes: Arc<AtomicU64>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if ev.is_ok() {
                changes.fetch_add(1, Ordering::Relaxed);
            }
            *error.lock().expect("error lock") = ev.err().map(|e| e.to_string());
        }
    });
    store
}

impl Watches {
    /// Start watching the cluster behind `kubeconfig` (on the current Tokio runtime).
    pub async fn start(kubeconfig: &Path) -> Result<Watches, String> {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .map_err(|e| format!("cannot read {}: {e}", kubeconfig.display()))?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| format!("bad kubeconfig {}: {e}", kubeconfig.display()))?;
        config.connect_timeout = Some(Duration::from_secs(3));
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        let error = Arc::new(Mutex::new(None));
        let changes = Arc::new(AtomicU64::new(0));
        Ok(Watches {
            nodes: spawn(Api::all(client.clone()), error.clone(), changes.clone()),
            pods: spawn(Api::all(client.clone()), error.clone(), changes.clone()),
            services: spawn(Api::all(client.clone()), error.clone(), changes.clone()),
            events: spawn(Api::all(client), error.clone(), changes.clone()),
            error,
            changes,
        })
    }

    /// How many watch events have arrived.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// The stores as rows, the way `kubectl get -o wide` would show them.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let mut nodes: Vec<NodeRow> = self.nodes.state().iter().map(|n| node_row(n)).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut pods: Vec<PodRow> = self.pods.state().iter().map(|p| pod_row(p)).collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut services: Vec<ServiceRow> = self
            .services
            .state()
            .iter()
            .map(|s| service_row(s))
            .collect();
        services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut events: Vec<(String, EventRow)> =
            self.events.state().iter().map(|e| event_row(e)).collect();
        events.sort_by(|a, b| b.0.cmp(&a.0));
        events.truncate(EVENTS_SHOWN);
        let note = if nodes.is_empty() {
            Some(
                self.error
                    .lock()
                    .expect("error lock")
                    .clone()
                    .unwrap_or_else(|| "Connecting to the lab cluster…".into()),
            )
        } else {
            None
        };
        ClusterSnapshot {
            nodes,
            pods,
            services,
            events: events.into_iter().map(|(_, e)| e).collect(),
            note,
        }
    }
}

fn node_row(n: &Node) -> NodeRow {
    let mut roles: Vec<&str> = n
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    roles.sort();
    let status = n.status.as_ref();
    NodeRow {
        name: n.metadata.name.clone().unwrap_or_default(),
        roles: if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        },
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        ip: status
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .find(|a| a.type_ == "InternalIP")
            .map(|a| a.address.clone())
            .unwrap_or_default(),
    }
}

/// The phase column as kubectl's STATUS shows it: a waiting reason beats the phase.
fn pod_row(p: &Pod) -> PodRow {
    let status = p.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let phase = if p.metadata.deletion_timestamp.is_some() {
        "Terminating".to_string()
    } else {
        waiting
            .or_else(|| status.and_then(|s| s.phase.clone()))
            .unwrap_or_else(|| "Pending".into())
    };
    PodRow {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        phase,
        ip: status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        node: p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
    }
}

fn service_row(s: &Service) -> ServiceRow {
    let spec = s.spec.as_ref();
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(np) => format!("{}:{np}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    ServiceRow {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        kind: spec
            .and_then(|s| s.type_.clone())
            .unwrap_or_else(|| "ClusterIP".into()),
        cluster_ip: spec.and_then(|s| s.cluster_ip.clone()).unwrap_or_default(),
        ports,
    }
}

/// An event row with the time it sorts by (RFC 3339 sorts as text).
fn event_row(e: &Event) -> (String, EventRow) {
    let when = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
        .unwrap_or_default();
    let o = &e.involved_object;
    (
        when,
        EventRow {
            kind: e.type_.clone().unwrap_or_default(),
            object: format!(
                "{}/{}",
                o.kind.as_deref().unwrap_or("").to_ascii_lowercase(),
                o.name.as_deref().unwrap_or("")
            ),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_like_kubectl_wide_output() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "lab-control-plane", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "Hostname", "address": "x"}, {"type": "InternalIP", "address": "172.18.0.2"}]}
        }))
        .unwrap();
        let n = node_row(&node);
        assert_eq!(
            (n.roles.as_str(), n.ready, n.ip.as_str()),
            ("control-plane", true, "172.18.0.2")
        );
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "lab-worker", "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "podIP": "10.244.1.5",
                       "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                                              "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        }))
        .unwrap();
        let p = pod_row(&pod);
        assert_eq!(
            (p.phase.as_str(), p.ip.as_str(), p.node.as_str()),
            ("CrashLoopBackOff", "10.244.1.5", "lab-worker")
        );
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
                     "ports": [{"port": 80, "nodePort": 30081, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let s = service_row(&svc);
        assert_eq!(
            (s.kind.as_str(), s.ports.as_str()),
            ("NodePort", "80:30081/TCP,53/UDP")
        );
        let ev: Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web"}, "type": "Normal", "reason": "Scheduled",
            "message": "assigned", "lastTimestamp": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let (when, e) = event_row(&ev);
        assert!(when.starts_with("2026-01-01"), "{when}");
        assert_eq!(
            (e.object.as_str(), e.reason.as_str()),
            ("pod/web", "Scheduled")
        );
    }
}
