//! The DaemonSet controller: one pod per eligible node (nodeSelector, required node affinity,
//! taints against the pod's tolerations), placed by node affinity on `metadata.name` as
//! upstream does, rolled by RollingUpdate (maxUnavailable) or OnDelete, with
//! ControllerRevisions for history and the status `kubectl rollout status` reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::common;
use super::history::{self, HASH_LABEL};
use super::{Error, Result};

pub const COMPONENT: &str = "daemonset-controller";
/// The deprecated label upstream still puts on daemon pods.
pub const GENERATION_LABEL: &str = "pod-template-generation";
/// The field a daemon pod's node affinity pins.
const NODE_NAME_FIELD: &str = "metadata.name";

/// The tolerations upstream's `AddOrUpdateDaemonPodTolerations` adds to every daemon pod, so
/// daemons survive not-ready and unreachable nodes and pressure conditions.
pub fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = spec.tolerations.clone().unwrap_or_default();
    let mut extra = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        extra.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    for e in extra {
        if !out
            .iter()
            .any(|o| o.key == e.key && o.effect == e.effect && o.operator == e.operator)
        {
            out.push(e);
        }
    }
    out
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.clone().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(w)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|w| w.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" { v > w } else { v < w }
        }
        _ => false,
    }
}

/// The node selector term matches `node`: expressions on labels, fields on the name.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.clone();
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        // An empty term matches nothing (upstream's `NodeSelectorRequirementsAsSelector`).
        return false;
    }
    exprs
        .iter()
        .all(|e| requirement_matches(e, labels.get(&e.key)))
        && fields
            .iter()
            .all(|f| f.key == NODE_NAME_FIELD && requirement_matches(f, name.as_ref()))
}

/// Upstream's `NodeShouldRunDaemonPod`: (should run, may keep running). A node passes if the
/// pod's nodeSelector and required node affinity match it; it should run the pod if every
/// NoSchedule and NoExecute taint is tolerated, and may keep one already there if every
/// NoExecute taint is.
pub fn node_should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_ok = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)));
    if !selector_ok || !affinity_ok {
        return (false, false);
    }
    let tolerations = daemon_tolerations(spec);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerated = |effect: &str| {
        taints
            .iter()
            .filter(|t| t.effect == effect)
            .all(|taint| tolerations.iter().any(|t| common::tolerates(t, taint)))
    };
    let keep = tolerated("NoExecute");
    (keep && tolerated("NoSchedule"), keep)
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes
/// one term pinning `metadata.name` to the node, so the scheduler binds it there.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: NODE_NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    });
    a
}

/// The node a daemon pod is for: its nodeName, or the name its affinity pins
/// (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == NODE_NAME_FIELD && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

/// The pod for `node` from the DaemonSet's template at revision `hash`.
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds.spec.clone().unwrap_or_default().template;
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    labels.insert(
        GENERATION_LABEL.into(),
        ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let mut spec = template.spec.unwrap_or_default();
    spec.tolerations = Some(daemon_tolerations(&spec));
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                ds.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            owner_references: Some(vec![common::controller_ref(
                "apps/v1",
                "DaemonSet",
                &ds.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// What one pass decided, as pure data for tests.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes that need a pod.
    pub create: Vec<String>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    pub status: BTreeMap<&'static str, i64>,
}

/// One pass of upstream's `manage` and `rollingUpdate` (maxSurge 0) over every node.
pub fn plan(
    ds: &DaemonSet,
    nodes: &[Node],
    pods: &[Pod],
    hash: &str,
    now: jiff::Timestamp,
) -> Plan {
    let spec = ds.spec.clone().unwrap_or_default();
    let template_spec = spec.template.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = target_node(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    for list in by_node.values_mut() {
        list.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        });
    }
    let mut p = Plan::default();
    let node_names: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    // Pods for nodes that are gone: nothing will ever run them.
    for (node, list) in &by_node {
        if !node_names.contains(node) {
            p.delete.extend(
                list.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter_map(|p| p.metadata.name.clone()),
            );
        }
    }
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    // (pod, available) of old-revision pods on nodes that should run one, for the rollout.
    let mut old: Vec<(&Pod, bool)> = Vec::new();
    let mut unavailable = 0;
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let (should_run, keep) = node_should_run(&template_spec, node);
        let list = by_node.get(&name).cloned().unwrap_or_default();
        let live: Vec<&Pod> = list
            .iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if should_run {
            desired += 1;
        }
        if !keep {
            if !live.is_empty() {
                misscheduled += 1;
            }
            p.delete
                .extend(live.iter().filter_map(|p| p.metadata.name.clone()));
            continue;
        }
        // Failed daemon pods are replaced; extras beyond the oldest go.
        let (failed, running): (Vec<&Pod>, Vec<&Pod>) = live
            .iter()
            .partition(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        p.delete
            .extend(failed.iter().filter_map(|p| p.metadata.name.clone()));
        p.delete.extend(
            running
                .iter()
                .skip(1)
                .filter_map(|p| p.metadata.name.clone()),
        );
        let pod = running.first().copied();
        if !should_run {
            if pod.is_some() {
                misscheduled += 1;
            }
            continue;
        }
        match pod {
            None => {
                // Wait for a pod still terminating there before replacing it.
                if list.iter().all(|p| p.metadata.deletion_timestamp.is_none()) {
                    p.create.push(name);
                }
                unavailable += 1;
            }
            Some(pod) => {
                current += 1;
                let is_ready = common::is_ready(pod);
                let is_available = common::is_available(pod, min_ready, now);
                ready += i64::from(is_ready);
                available += i64::from(is_available);
                if !is_available {
                    unavailable += 1;
                }
                if hash_of(pod) == Some(hash) {
                    updated += 1;
                } else {
                    old.push((pod, is_available));
                }
            }
        }
    }
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    if rolling {
        let max_unavailable = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.clone())
            .unwrap_or(IntOrString::Int(1));
        let max_unavailable =
            super::deployment::scaled(&max_unavailable, desired as i32, true).max(1) as i64;
        // Old pods that are not available anyway go first, at no cost to availability.
        for (pod, is_available) in old {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if !is_available {
                p.delete.push(name);
            } else if unavailable < max_unavailable {
                unavailable += 1;
                p.delete.push(name);
            }
        }
    }
    p.delete.sort();
    p.delete.dedup();
    p.status = BTreeMap::from([
        ("desiredNumberScheduled", desired),
        ("currentNumberScheduled", current),
        ("numberMisscheduled", misscheduled),
        ("numberReady", ready),
        ("numberAvailable", available),
        ("updatedNumberScheduled", updated),
        ("numberUnavailable", (desired - available).max(0)),
    ]);
    p
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<super::replicaset::Ctx>) -> Result<Action> {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    // Its pods are the kubelets' mirror pods of a node component (components.rs).
    if ds.metadata.deletion_timestamp.is_some() || super::components::is_component(&ds.metadata) {
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let revs_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
    let spec = ds.spec.clone().unwrap_or_default();
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Api("nodes".into(), e))?
        .items;
    let what = format!("pods of daemonset {ns}/{name}");
    let pods = common::owned_pods(&pods_api, &spec.selector, &uid, what).await?;
    let mut revs = history::owned(&revs_api, &uid).await?;
    let (cur, hash) = history::ensure(
        &revs_api,
        "apps/v1",
        "DaemonSet",
        &ds.metadata,
        &spec.template,
        &mut revs,
    )
    .await?;
    let now = jiff::Timestamp::now();
    let plan = plan(&ds, &nodes, &pods, &hash, now);
    let ds_ref = common::reference("apps/v1", "DaemonSet", &ds.metadata);
    let mut failure = None;
    for node in &plan.create {
        let pod = pod_for(&ds, node, &hash);
        match pods_api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                common::record(
                    client,
                    ds_ref.clone(),
                    COMPONENT,
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                )
                .await
            }
            Err(e) => {
                common::record(
                    client,
                    ds_ref.clone(),
                    COMPONENT,
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {}", common::api_message(&e)),
                )
                .await;
                failure = Some(Error::Api(format!("daemonset {ns}/{name}"), e));
            }
        }
    }
    for pname in &plan.delete {
        let pod = pods
            .iter()
            .find(|p| p.metadata.name.as_ref() == Some(pname));
        if let Some(p) = pod
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
        {
            common::record(
                client,
                ds_ref.clone(),
                COMPONENT,
                "Warning",
                "FailedDaemonPod",
                format!(
                    "Found failed daemon pod {ns}/{pname} on node {}, will try to kill it",
                    target_node(p).unwrap_or_default()
                ),
            )
            .await;
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.and_then(|p| p.metadata.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods_api.delete(pname, &dp).await {
            Ok(_) => {
                common::record(
                    client,
                    ds_ref.clone(),
                    COMPONENT,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {pname}"),
                )
                .await
            }
            Err(e) if common::gone_or_conflict(&e) => {}
            Err(e) => failure = Some(Error::Api(format!("pod {ns}/{pname}"), e)),
        }
    }
    let in_use: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| hash_of(p).map(str::to_string))
        .collect();
    let cur_name = cur.metadata.name.clone().unwrap_or_default();
    history::truncate(
        &revs_api,
        &revs,
        &in_use,
        &[&cur_name],
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    let mut status: serde_json::Map<String, Value> = plan
        .status
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    status.insert("observedGeneration".into(), json!(ds.metadata.generation));
    let current = serde_json::to_value(ds.status.clone().unwrap_or_default()).unwrap_or_default();
    let differs = status.iter().any(|(k, v)| {
        let cur = current.get(k).unwrap_or(&Value::Null);
        cur != v && !(v == &json!(0) && cur.is_null())
    });
    if differs {
        // numberUnavailable is omitted when zero, as upstream's omitempty leaves it.
        if status["numberUnavailable"] == json!(0) {
            status.insert("numberUnavailable".into(), Value::Null);
        }
        match dss
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::Api(format!("daemonset {ns}/{name} status"), e)),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if min_ready > 0 && plan.status["numberReady"] != plan.status["numberAvailable"] {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

fn error_policy(ds: Arc<DaemonSet>, e: &Error, _ctx: Arc<super::replicaset::Ctx>) -> Action {
    super::common::retry_after("daemonset", &ds.metadata, e, Duration::from_secs(2))
}

/// Run the controller until its watches end: a pod's change wakes its DaemonSet, a node's
/// change (new node, labels, taints) wakes them all.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(super::replicaset::Ctx {
        client: client.clone(),
    });
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .watches(
            Api::<Node>::all(client),
            watcher::Config::default(),
            move |_node: Node| {
                store
                    .state()
                    .iter()
                    .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                    .collect::<Vec<ObjectRef<DaemonSet>>>()
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    fn spec(v: Value) -> PodSpec {
        let mut v = v;
        v["containers"] = json!([]);
        serde_json::from_value(v).unwrap()
    }

    fn control_plane() -> Node {
        node(
            "cp",
            json!({}),
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        )
    }

    #[test]
    fn the_control_plane_taint_keeps_daemons_off_unless_tolerated() {
        let plain = spec(json!({}));
        assert_eq!(node_should_run(&plain, &control_plane()), (false, true));
        assert_eq!(
            node_should_run(&plain, &node("w1", json!({}), json!([]))),
            (true, true)
        );
        let tolerant = spec(json!({"tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
             "effect": "NoSchedule"}]}));
        assert_eq!(node_should_run(&tolerant, &control_plane()), (true, true));
    }

    #[test]
    fn node_selectors_and_affinity_pick_nodes_and_unreachable_nodes_keep_their_daemons() {
        let ssd = spec(json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(
            node_should_run(&ssd, &node("w1", json!({"disk": "ssd"}), json!([]))),
            (true, true)
        );
        assert_eq!(
            node_should_run(&ssd, &node("w2", json!({}), json!([]))),
            (false, false)
        );
        let pinned = PodSpec {
            affinity: Some(pin_to_node(None, "w2")),
            ..Default::default()
        };
        assert!(node_should_run(&pinned, &node("w2", json!({}), json!([]))).0);
        assert!(!node_should_run(&pinned, &node("w1", json!({}), json!([]))).0);
        // An unreachable node: no new daemon there, but the one there stays.
        let unreachable = node(
            "w3",
            json!({}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                   {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            node_should_run(&spec(json!({})), &unreachable),
            (false, true)
        );
    }

    fn ds(strategy: Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "u1", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn daemon(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {HASH_LABEL: hash},
                         "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    #[test]
    fn missing_daemons_are_created_and_pinned_to_their_node() {
        let d = ds(json!({"type": "RollingUpdate"}));
        let nodes = [
            control_plane(),
            node("w1", json!({}), json!([])),
            node("w2", json!({}), json!([])),
        ];
        let p = plan(
            &d,
            &nodes,
            &[daemon("agent-a", "w1", "h1", true)],
            "h1",
            jiff::Timestamp::now(),
        );
        assert_eq!(p.create, ["w2"]);
        assert_eq!(p.status["desiredNumberScheduled"], 2);
        assert_eq!(p.status["currentNumberScheduled"], 1);
        let pod = pod_for(&d, "w2", "h1");
        assert_eq!(target_node(&pod).as_deref(), Some("w2"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(
            (
                labels[HASH_LABEL].as_str(),
                labels[GENERATION_LABEL].as_str()
            ),
            ("h1", "2")
        );
    }

    #[test]
    fn a_rolling_update_replaces_at_most_max_unavailable_daemons_at_once() {
        let nodes = [
            node("w1", json!({}), json!([])),
            node("w2", json!({}), json!([])),
            node("w3", json!({}), json!([])),
        ];
        let pods = [
            daemon("a", "w1", "old", true),
            daemon("b", "w2", "old", true),
            daemon("c", "w3", "old", true),
        ];
        let p = plan(
            &ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})),
            &nodes,
            &pods,
            "new",
            jiff::Timestamp::now(),
        );
        assert_eq!(p.delete.len(), 1);
        assert_eq!(p.status["updatedNumberScheduled"], 0);
        // One new pod not ready yet: no more old ones go.
        let pods = [
            daemon("a2", "w1", "new", false),
            pods[1].clone(),
            pods[2].clone(),
        ];
        let p = plan(
            &ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})),
            &nodes,
            &pods,
            "new",
            jiff::Timestamp::now(),
        );
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        // OnDelete never deletes.
        let p = plan(
            &ds(json!({"type": "OnDelete"})),
            &nodes,
            &pods,
            "new",
            jiff::Timestamp::now(),
        );
        assert!(p.delete.is_empty());
    }
}
