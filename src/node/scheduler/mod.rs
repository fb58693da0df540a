//! kube-scheduler: watches Pods without a node, filters the nodes that can run each one, scores
//! the rest, and binds the Pod to the best through `pods/<name>/binding`, with the events and
//! messages upstream's scheduler gives.

mod filter;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::consts::ADMIN_KUBECONFIG_PATH;

pub use filter::{Decision, decide};

/// How often unschedulable pods are tried again even when nothing changed.
const RETRY: Duration = Duration::from_secs(5);
const SCHEDULER_NAME: &str = "default-scheduler";

pub async fn run() -> anyhow::Result<()> {
    let client = crate::node::client_from(ADMIN_KUBECONFIG_PATH).await?;
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    // Any change to unscheduled pods or to nodes is a reason to run a scheduling pass.
    let pending = watcher(
        pods.clone(),
        watcher::Config::default().fields("spec.nodeName="),
    )
    .map(|_| ())
    .boxed();
    let node_changes = watcher(nodes.clone(), watcher::Config::default())
        .map(|_| ())
        .boxed();
    let mut triggers = futures::stream::select(pending, node_changes);
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    loop {
        if let Err(e) = pass(&client, &pods, &nodes, &mut reported).await {
            eprintln!("kube-scheduler: {e:#}");
        }
        // One pass serves every event that queued up meanwhile (a burst of creates, the
        // bindings just made): drain them all, then wait for the next.
        let _ = tokio::time::timeout(RETRY, triggers.next()).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        while triggers.next().now_or_never().flatten().is_some() {}
    }
}

/// Schedule every pending pod once; `reported` remembers the last FailedScheduling message per
/// pod so a pod that stays unschedulable is not flooded with identical events.
async fn pass(
    client: &kube::Client,
    pods: &Api<Pod>,
    nodes: &Api<Node>,
    reported: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let pending = pods
        .list(&ListParams::default().fields("spec.nodeName="))
        .await?;
    let pending: Vec<Pod> = pending
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.scheduler_name.as_deref())
                .is_none_or(|n| n == SCHEDULER_NAME)
        })
        .collect();
    if pending.is_empty() {
        reported.clear();
        return Ok(());
    }
    let bound_pods = ListParams::default().fields("spec.nodeName!=");
    let all_nodes = ListParams::default();
    let (node_list, placed) = futures::try_join!(nodes.list(&all_nodes), pods.list(&bound_pods))?;
    let (node_list, mut placed) = (node_list.items, placed.items);
    // Placements are decided one after another (each sees the ones before it); the bindings
    // then go out together, and events are sent without waiting, as upstream's binding cycle
    // and event broadcaster do.
    let mut bindings = Vec::new();
    for pod in pending {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let key = format!("{ns}/{name}");
        match decide(&pod, &node_list, &placed) {
            Decision::Bind(node) => {
                reported.remove(&key);
                let mut bound = pod.clone();
                if let Some(s) = bound.spec.as_mut() {
                    s.node_name = Some(node.clone());
                }
                placed.push(bound);
                bindings.push(bind(client.clone(), pod, node));
            }
            Decision::Unschedulable(message) => {
                if reported.get(&key) != Some(&message) {
                    event(client, &pod, "Warning", "FailedScheduling", &message).await;
                    set_unschedulable(pods, &pod, &message).await;
                    reported.insert(key, message);
                }
            }
        }
    }
    for r in futures::future::join_all(bindings).await {
        r?;
    }
    Ok(())
}

/// Binds `pod` to `node` through pods/<name>/binding, then records Scheduled in the background.
async fn bind(client: kube::Client, pod: Pod, node: String) -> anyhow::Result<()> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..Default::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let req = http::Request::post(format!("{}/{name}/binding", api.resource_url()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding)?)?;
    match client.request_text(req).await {
        Ok(_) => {
            tokio::spawn(async move {
                let message = format!("Successfully assigned {ns}/{name} to {node}");
                event(&client, &pod, "Normal", "Scheduled", &message).await;
            });
            Ok(())
        }
        // Bound meanwhile (409) or deleted (404): nothing to do.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Mark the pod's PodScheduled condition False, as upstream does, so `kubectl describe`
/// and `kubectl get pods` show why it is Pending.
async fn set_unschedulable(pods: &Api<Pod>, pod: &Pod, message: &str) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(pods.clone().into_client(), &ns);
    let now = crate::node::now_seconds();
    let patch = json!({"status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastTransitionTime": now.to_string(),
    }]}});
    let _ = api
        .patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await;
}

async fn event(client: &kube::Client, pod: &Pod, type_: &str, reason: &str, message: &str) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let now = crate::node::now_seconds();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let ev = json!({
        "metadata": {"generateName": format!("{pod_name}."), "namespace": ns},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": pod_name,
                           "uid": pod.metadata.uid},
        "reason": reason, "message": message, "type": type_,
        "source": {"component": SCHEDULER_NAME},
        "reportingComponent": SCHEDULER_NAME,
        "firstTimestamp": now.to_string(), "lastTimestamp": now.to_string(), "count": 1,
    });
    if let Ok(ev) = serde_json::from_value(ev) {
        let _ = api.create(&PostParams::default(), &ev).await;
    }
}
