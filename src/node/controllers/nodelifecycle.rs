//! Node lifecycle: a node whose kubelet stops renewing its Lease and status turns Ready
//! Unknown after a grace period and is tainted unreachable; pods on NoExecute-tainted nodes
//! are evicted once their tolerationSeconds run out; and pod garbage collection force-deletes
//! pods stuck on nodes that are gone or not Ready (upstream's node lifecycle, taint eviction
//! and pod GC controllers, with shorter classroom timings).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::common;
use crate::consts::NODE_LEASE_NAMESPACE;

pub const COMPONENT: &str = "node-controller";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const STOPPED_MESSAGE: &str = "Kubelet stopped posting node status.";
/// How often nodes are looked at (upstream's `--node-monitor-period`, 5 s).
const MONITOR_PERIOD: Duration = Duration::from_secs(2);
/// Pods on nodes that no longer exist are collected every this many passes.
const GC_EVERY: u32 = 5;

/// The timings, from the cluster config's `nodeLifecycle` (shorter than upstream's, so a
/// classroom sees a node fail within a minute).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Silence after which a node is Unknown (upstream's `--node-monitor-grace-period`).
    pub grace: Duration,
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The conditions upstream marks Unknown when a node goes silent, the rest left alone.
pub fn unknown_conditions(node: &Node, now: &Time) -> Vec<NodeCondition> {
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = match conds.iter_mut().find(|c| c.type_ == t) {
            Some(c) => c,
            None => {
                conds.push(NodeCondition {
                    type_: t.into(),
                    ..Default::default()
                });
                conds.last_mut().expect("just pushed")
            }
        };
        if c.status != "Unknown" {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some(STOPPED_MESSAGE.into());
            c.last_transition_time = Some(now.clone());
        }
    }
    conds
}

/// The taints a node should carry for its Ready condition (upstream's NoSchedule taints by
/// condition and NoExecute taints for eviction), keeping the others and the times already
/// set; None when nothing changes.
pub fn desired_taints(node: &Node, now: &Time) -> Option<Vec<Taint>> {
    let existing = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let key = match ready_status(node) {
        Some("Unknown") => Some(UNREACHABLE),
        Some("False") => Some(NOT_READY),
        _ => None,
    };
    let mut want: Vec<Taint> = existing
        .iter()
        .filter(|t| t.key != UNREACHABLE && t.key != NOT_READY)
        .cloned()
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            let kept = existing
                .iter()
                .find(|t| t.key == key && t.effect == effect)
                .cloned();
            want.push(kept.unwrap_or_else(|| Taint {
                key: key.into(),
                effect: effect.into(),
                time_added: (effect == "NoExecute").then(|| now.clone()),
                value: None,
            }));
        }
    }
    (want != existing).then_some(want)
}

/// When a pod on a node with these taints must go (upstream's taint eviction): now if a
/// NoExecute taint is not tolerated, never if all are tolerated forever, else when the
/// shortest tolerationSeconds since its taint was added runs out.
pub fn eviction_time(pod: &Pod, taints: &[Taint], now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut due: Option<jiff::Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<_> = tolerations
            .iter()
            .filter(|t| common::tolerates(t, taint))
            .collect();
        if matching.is_empty() {
            return Some(now);
        }
        // Tolerated forever unless every matching toleration has a limit.
        let Some(secs) = matching
            .iter()
            .map(|t| t.toleration_seconds)
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().min())
        else {
            continue;
        };
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let at = jiff::Timestamp::from_second(added.as_second() + secs.max(0)).unwrap_or(now);
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}

struct Monitor {
    client: kube::Client,
    settings: Settings,
    /// Per node: the last heartbeat seen (lease renewTime, Ready heartbeat) and when this
    /// controller saw it change, by its own clock, as upstream's probe timestamps.
    seen: HashMap<String, (String, Instant)>,
    passes: u32,
}

fn heartbeat_of(node: &Node, lease: Option<&Lease>) -> String {
    let renew = lease
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let status = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    format!("{renew}/{status}")
}

impl Monitor {
    async fn event_on_node(&self, node: &Node, reason: &str, message: String) {
        let mut r = common::reference("v1", "Node", &node.metadata);
        // Upstream's node events carry the node's name as their uid.
        r.uid = node.metadata.name.clone();
        r.namespace = Some("default".into());
        common::record(&self.client, r, COMPONENT, "Normal", reason, message).await;
    }

    async fn pods_on(&self, node: &str) -> kube::Result<Vec<Pod>> {
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        Ok(Api::<Pod>::all(self.client.clone()).list(&lp).await?.items)
    }

    /// Upstream's `MarkPodsNotReady`: the pods of a silent node stop being Ready, so
    /// Services stop sending them traffic at once.
    async fn mark_pods_not_ready(&self, node: &str, now: &Time) -> kube::Result<()> {
        for pod in self.pods_on(node).await? {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let Some(mut conds) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
                continue;
            };
            let Some(ready) = conds.iter_mut().find(|c| c.type_ == "Ready") else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            ready.status = "False".into();
            ready.last_transition_time = Some(now.clone());
            let patch = json!({"status": {"conditions": conds}});
            match Api::<Pod>::namespaced(self.client.clone(), &ns)
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if common::gone_or_conflict(&e) => {}
                Err(e) => return Err(e),
            }
            let r = common::reference("v1", "Pod", &pod.metadata);
            common::record(
                &self.client,
                r,
                COMPONENT,
                "Warning",
                "NodeNotReady",
                "Node is not ready".into(),
            )
            .await;
        }
        Ok(())
    }

    async fn force_delete(&self, pod: &Pod) -> kube::Result<()> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        match Api::<Pod>::namespaced(self.client.clone(), &ns)
            .delete(&name, &dp)
            .await
        {
            Ok(_) => {
                eprintln!("kube-controller-manager: pod gc: force-deleted {ns}/{name}");
                Ok(())
            }
            Err(e) if common::gone_or_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Evict the pods whose tolerations ran out, and force-delete the terminating pods of a
    /// node that is not Ready once their grace period is over: no kubelet will finish them.
    async fn evict(&self, node: &Node, now: jiff::Timestamp) -> kube::Result<()> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        let not_ready = ready_status(node) != Some("True");
        if taints.is_empty() && !not_ready {
            return Ok(());
        }
        for pod in self.pods_on(&name).await? {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let pname = pod.metadata.name.clone().unwrap_or_default();
            if let Some(deleting) = pod.metadata.deletion_timestamp.as_ref() {
                if not_ready && deleting.0 <= now {
                    self.force_delete(&pod).await?;
                }
                continue;
            }
            if eviction_time(&pod, &taints, now).is_some_and(|t| t <= now) {
                let r = common::reference("v1", "Pod", &pod.metadata);
                common::record(
                    &self.client,
                    r,
                    "taint-eviction-controller",
                    "Normal",
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {ns}/{pname}"),
                )
                .await;
                match Api::<Pod>::namespaced(self.client.clone(), &ns)
                    .delete(&pname, &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if common::gone_or_conflict(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Upstream's pod GC: pods bound to nodes that no longer exist, and unscheduled pods
    /// being deleted, are removed outright.
    async fn collect_orphans(&self) -> kube::Result<()> {
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        // Nodes listed after the pods, so a node registered meanwhile is not taken for gone.
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        for pod in pods {
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let orphan = match node.as_deref() {
                Some(n) if !n.is_empty() => {
                    !nodes.iter().any(|x| x.metadata.name.as_deref() == Some(n))
                }
                _ => pod.metadata.deletion_timestamp.is_some(),
            };
            if orphan {
                self.force_delete(&pod).await?;
            }
        }
        Ok(())
    }

    async fn pass(&mut self) -> kube::Result<()> {
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let leases = Api::<Lease>::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE)
            .list(&ListParams::default())
            .await?
            .items;
        let now = jiff::Timestamp::now();
        let now_t = common::now_time();
        self.seen.retain(|n, _| {
            nodes
                .iter()
                .any(|x| x.metadata.name.as_deref() == Some(n.as_str()))
        });
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let lease = leases
                .iter()
                .find(|l| l.metadata.name.as_deref() == Some(name.as_str()));
            let beat = heartbeat_of(node, lease);
            let entry = self
                .seen
                .entry(name.clone())
                .or_insert_with(|| (beat.clone(), Instant::now()));
            if entry.0 != beat {
                *entry = (beat, Instant::now());
            }
            let silent = entry.1.elapsed() > self.settings.grace;
            let mut node = node.clone();
            if silent && ready_status(&node) != Some("Unknown") {
                let conds = unknown_conditions(&node, &now_t);
                let patch = json!({"status": {"conditions": conds}});
                node = Api::<Node>::all(self.client.clone())
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                eprintln!("kube-controller-manager: node {name} stopped posting status");
                self.event_on_node(
                    &node,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
                self.mark_pods_not_ready(&name, &now_t).await?;
            }
            if let Some(taints) = desired_taints(&node, &now_t) {
                let patch = json!({"spec": {"taints": taints}});
                node = Api::<Node>::all(self.client.clone())
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            self.evict(&node, now).await?;
        }
        self.passes += 1;
        if self.passes.is_multiple_of(GC_EVERY) {
            self.collect_orphans().await?;
        }
        Ok(())
    }
}

/// Run the monitor forever. Absence of heartbeats is not an event a watch could deliver, so
/// this one loop looks every [`MONITOR_PERIOD`], as upstream's monitor does.
pub async fn run(client: kube::Client, settings: Settings) {
    let mut m = Monitor {
        client,
        settings,
        seen: HashMap::new(),
        passes: 0,
    };
    loop {
        if let Err(e) = m.pass().await {
            eprintln!("kube-controller-manager: node lifecycle: {e}");
        }
        tokio::time::sleep(MONITOR_PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "w1"},
            "spec": {"taints": taints},
            "status": {"conditions": [
                {"type": "Ready", "status": ready, "reason": "KubeletReady"},
                {"type": "MemoryPressure", "status": "False"}]}
        }))
        .unwrap()
    }

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn a_silent_node_has_every_condition_unknown_with_upstreams_message() {
        let conds = unknown_conditions(&node("True", json!([])), &t("2025-01-01T00:00:00Z"));
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some(STOPPED_MESSAGE));
        assert_eq!(conds.len(), 4);
        assert!(conds.iter().all(|c| c.status == "Unknown"));
    }

    #[test]
    fn unknown_nodes_get_unreachable_taints_and_ready_nodes_lose_them() {
        let now = t("2025-01-01T00:00:00Z");
        let cp = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
        let taints = desired_taints(&node("Unknown", cp.clone()), &now).unwrap();
        let keys: Vec<_> = taints
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        assert_eq!(
            keys,
            [
                "node-role.kubernetes.io/control-plane:NoSchedule",
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert!(taints[2].time_added.is_some());
        let tainted = serde_json::to_value(&taints).unwrap();
        assert_eq!(
            desired_taints(&node("Unknown", tainted.clone()), &now),
            None
        );
        assert_eq!(
            desired_taints(&node("True", tainted), &now).unwrap().len(),
            1
        );
        let not_ready = desired_taints(&node("False", json!([])), &now).unwrap();
        assert!(not_ready.iter().all(|t| t.key == NOT_READY));
    }

    #[test]
    fn pods_go_when_their_shortest_toleration_runs_out_and_at_once_without_one() {
        let taint: Taint = serde_json::from_value(json!({
            "key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}))
        .unwrap();
        let pod = |tolerations: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tolerations}}))
                .unwrap()
        };
        let now: jiff::Timestamp = "2025-01-01T00:00:10Z".parse().unwrap();
        let defaulted = pod(json!([{"key": UNREACHABLE, "operator": "Exists",
                                    "effect": "NoExecute", "tolerationSeconds": 30}]));
        assert_eq!(
            eviction_time(&defaulted, std::slice::from_ref(&taint), now),
            Some("2025-01-01T00:00:30Z".parse().unwrap())
        );
        assert_eq!(
            eviction_time(&pod(json!([])), std::slice::from_ref(&taint), now),
            Some(now)
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_time(&forever, &[taint], now), None);
    }
}
