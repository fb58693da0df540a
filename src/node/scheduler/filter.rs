//! Filtering and scoring nodes for one pod, worded like kube-scheduler's messages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Bind(String),
    /// The FailedScheduling message, e.g. `0/3 nodes are available: ...`.
    Unschedulable(String),
}

/// Why a node was filtered out; the text is upstream's reason.
fn untolerated_taint(t: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        t.key,
        t.value.clone().unwrap_or_default()
    )
}

const NOT_READY: &str = "node(s) were not ready";
const UNSCHEDULABLE: &str = "node(s) were unschedulable";
const SELECTOR: &str = "node(s) didn't match Pod's node affinity/selector";
const TOO_MANY_PODS: &str = "Too many pods";
const INSUFFICIENT_CPU: &str = "Insufficient cpu";
const INSUFFICIENT_MEMORY: &str = "Insufficient memory";

/// Parse a Kubernetes quantity into base units (cores for cpu, bytes for memory), as f64.
pub fn quantity(q: &str) -> f64 {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().unwrap_or(0.0);
    let mult = match suffix {
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => 1.0,
    };
    n * mult
}

fn requests(pod: &Pod) -> (f64, f64) {
    let mut cpu = 0.0;
    let mut mem = 0.0;
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Some(r) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            cpu += r.get("cpu").map(|q| quantity(&q.0)).unwrap_or(0.0);
            mem += r.get("memory").map(|q| quantity(&q.0)).unwrap_or(0.0);
        }
    }
    (cpu, mem)
}

fn allocatable(node: &Node, key: &str) -> Option<f64> {
    node.status
        .as_ref()?
        .allocatable
        .as_ref()?
        .get(key)
        .map(|q: &Quantity| quantity(&q.0))
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let key_ok = match t.key.as_deref() {
            None | Some("") => t.operator.as_deref() == Some("Exists"),
            Some(k) => k == taint.key,
        };
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        };
        effect_ok && key_ok && value_ok
    })
}

fn matches_requirement(labels: &BTreeMap<String, String>, r: &NodeSelectorRequirement) -> bool {
    let v = labels.get(&r.key);
    let values = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => v.is_some_and(|v| values.contains(v)),
        "NotIn" => v.is_none_or(|v| !values.contains(v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(want)) = (
                v.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|w| w.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > want
            } else {
                v < want
            }
        }
        _ => false,
    }
}

fn selector_matches(pod: &Pod, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let spec = match &pod.spec {
        Some(s) => s,
        None => return true,
    };
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        // Terms are ORed, expressions within a term ANDed; matchFields may only name
        // `metadata.name` (how DaemonSet pods are pinned to their node).
        Some(r) => r.node_selector_terms.iter().any(|term| {
            let name = BTreeMap::from([(
                "metadata.name".to_string(),
                node.metadata.name.clone().unwrap_or_default(),
            )]);
            term.match_expressions
                .iter()
                .flatten()
                .all(|e| matches_requirement(labels, e))
                && term
                    .match_fields
                    .iter()
                    .flatten()
                    .all(|f| f.key == "metadata.name" && matches_requirement(&name, f))
        }),
        None => true,
    }
}

/// Why `node` cannot run `pod`, or None when it can.
fn reject(pod: &Pod, node: &Node, placed: &[Pod]) -> Option<String> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    if !is_ready(node) {
        return Some(NOT_READY.into());
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Some(UNSCHEDULABLE.into());
    }
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    for taint in node.spec.iter().flat_map(|s| s.taints.iter().flatten()) {
        if (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !tolerates(&tolerations, taint)
        {
            return Some(untolerated_taint(taint));
        }
    }
    if !selector_matches(pod, node) {
        return Some(SELECTOR.into());
    }
    let on_node: Vec<&Pod> = placed
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            )
        })
        .collect();
    if let Some(max) = allocatable(node, "pods")
        && on_node.len() as f64 + 1.0 > max
    {
        return Some(TOO_MANY_PODS.into());
    }
    let (cpu, mem) = requests(pod);
    let (used_cpu, used_mem) = on_node
        .iter()
        .map(|p| requests(p))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    if cpu > 0.0 && allocatable(node, "cpu").is_some_and(|a| used_cpu + cpu > a) {
        return Some(INSUFFICIENT_CPU.into());
    }
    if mem > 0.0 && allocatable(node, "memory").is_some_and(|a| used_mem + mem > a) {
        return Some(INSUFFICIENT_MEMORY.into());
    }
    None
}

/// Higher is better: least allocated, and fewer pods of the same owner (spreading a
/// controller's replicas over nodes).
fn score(pod: &Pod, node: &Node, placed: &[Pod]) -> f64 {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let on_node: Vec<&Pod> = placed
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
        .collect();
    let (used_cpu, used_mem) = on_node
        .iter()
        .map(|p| requests(p))
        .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let free = |used: f64, key: &str| {
        allocatable(node, key)
            .filter(|a| *a > 0.0)
            .map(|a| 1.0 - used / a)
            .unwrap_or(1.0)
    };
    let least_allocated = (free(used_cpu, "cpu") + free(used_mem, "memory")) / 2.0;
    let owner = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.uid.clone());
    let siblings = on_node
        .iter()
        .filter(|p| {
            owner.is_some()
                && p.metadata
                    .owner_references
                    .as_ref()
                    .and_then(|o| o.first())
                    .map(|o| o.uid.clone())
                    == owner
        })
        .count() as f64;
    let others = on_node.len() as f64;
    least_allocated * 10.0 - siblings * 5.0 - others * 0.1
}

/// Pick a node for `pod` among `nodes`, given the pods already placed.
pub fn decide(pod: &Pod, nodes: &[Node], placed: &[Pod]) -> Decision {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(f64, String)> = None;
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        match reject(pod, node, placed) {
            Some(reason) => *reasons.entry(reason).or_default() += 1,
            None => {
                let s = score(pod, node, placed);
                // Ties go to the first name, so results are stable.
                if best
                    .as_ref()
                    .is_none_or(|(b, n)| s > *b || (s == *b && name < *n))
                {
                    best = Some((s, name));
                }
            }
        }
    }
    if let Some((_, node)) = best {
        return Decision::Bind(node);
    }
    let total = nodes.len();
    // Upstream sorts the "<count> <reason>" strings themselves.
    let mut detail: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    detail.sort();
    let detail = detail.join(", ");
    let message = if total == 0 {
        "no nodes available to schedule pods".to_string()
    } else {
        format!(
            "0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
        )
    };
    Decision::Unschedulable(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value, ready: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {
                "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
            },
        }))
        .unwrap()
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x"}]);
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn cluster() -> Vec<Node> {
        vec![
            node(
                "cp",
                json!({"node-role.kubernetes.io/control-plane": ""}),
                json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
                true,
            ),
            node("w1", json!({"disk": "ssd"}), json!([]), true),
            node("w2", json!({"disk": "hdd"}), json!([]), true),
        ]
    }

    #[test]
    fn tainted_control_planes_are_skipped_and_workers_chosen() {
        let d = decide(&pod(json!({})), &cluster(), &[]);
        assert_eq!(d, Decision::Bind("w1".into()));
    }

    #[test]
    fn a_toleration_allows_the_control_plane() {
        let p = pod(json!({
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        }));
        assert_eq!(decide(&p, &cluster(), &[]), Decision::Bind("cp".into()));
    }

    #[test]
    fn match_fields_on_the_node_name_pin_a_daemon_pod_to_its_node() {
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w2"]}]}]
            }}}}),
        );
        assert_eq!(decide(&p, &cluster(), &[]), Decision::Bind("w2".into()));
    }

    #[test]
    fn node_selector_and_affinity_pick_matching_nodes() {
        let p = pod(json!({"nodeSelector": {"disk": "hdd"}}));
        assert_eq!(decide(&p, &cluster(), &[]), Decision::Bind("w2".into()));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]
            }}}}),
        );
        // The control plane has no disk label (NotIn matches) but is tainted.
        assert_eq!(decide(&p, &cluster(), &[]), Decision::Bind("w2".into()));
    }

    #[test]
    fn an_unschedulable_pod_gets_upstreams_message() {
        let p = pod(json!({"nodeSelector": {"disk": "nvme"}}));
        let Decision::Unschedulable(m) = decide(&p, &cluster(), &[]) else {
            panic!()
        };
        assert_eq!(
            m,
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn requests_beyond_allocatable_are_refused() {
        let mut p = pod(json!({}));
        p.spec.as_mut().unwrap().containers[0].resources =
            serde_json::from_value(json!({"requests": {"cpu": "3", "memory": "1Gi"}})).unwrap();
        let Decision::Unschedulable(m) = decide(&p, &cluster()[1..], &[]) else {
            panic!()
        };
        assert!(m.contains("2 Insufficient cpu"), "{m}");
    }

    #[test]
    fn replicas_of_one_owner_spread_over_nodes() {
        let owned = |node: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "r1", "namespace": "default",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}]},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            }))
            .unwrap()
        };
        let mut p = owned("");
        p.spec.as_mut().unwrap().node_name = None;
        assert_eq!(
            decide(&p, &cluster(), &[owned("w1")]),
            Decision::Bind("w2".into())
        );
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(quantity("500m"), 0.5);
        assert_eq!(quantity("2"), 2.0);
        assert_eq!(quantity("1Gi"), 1073741824.0);
        assert_eq!(quantity("128M"), 128e6);
    }
}
