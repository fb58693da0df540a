//! The node components that kubeadm runs as workloads, shown as those workloads: the
//! Deployment `coredns` and the DaemonSets `kube-proxy` and `kube-flannel-ds`, whose pods are
//! the kubelets' mirror pods of the components each node runs itself. Their status follows
//! those pods on every pod or node change, so `kubectl get deploy,ds -A` and `kubectl rollout
//! status` read as on a kubeadm cluster; the Deployment and DaemonSet controllers leave them
//! alone (they carry [`ANNOTATION`]).

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::{Error, Result};

/// Marks a workload whose pods are node components' mirror pods; its value names the component.
pub const ANNOTATION: &str = "kindling.dev/node-component";
/// The image the mirror pods name.
const IMAGE: &str = "kindling/node";
/// A full pass even without events, for changes a watch may have missed.
const RESYNC: Duration = Duration::from_secs(30);

/// Whether a Deployment or DaemonSet is one of these (and so not for its controller).
pub fn is_component(meta: &kube::api::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION))
}

/// One component shown as a workload.
struct Shown {
    kind: &'static str,
    namespace: &'static str,
    name: &'static str,
    label: (&'static str, &'static str),
    container: &'static str,
    /// Runs on control planes only (the rest run on every node).
    control_plane_only: bool,
}

const SHOWN: &[Shown] = &[
    Shown {
        kind: "Deployment",
        namespace: crate::node::dns::NAMESPACE,
        name: "coredns",
        label: crate::node::dns::APP_LABEL,
        container: "coredns",
        control_plane_only: true,
    },
    Shown {
        kind: "DaemonSet",
        namespace: "kube-system",
        name: "kube-proxy",
        label: ("k8s-app", "kube-proxy"),
        container: "kube-proxy",
        control_plane_only: false,
    },
    Shown {
        kind: "DaemonSet",
        namespace: crate::node::flannel::NAMESPACE,
        name: "kube-flannel-ds",
        label: ("app", "flannel"),
        container: "flanneld",
        control_plane_only: false,
    },
];

/// The workload as first created (a Deployment with `replicas` pods): selector and template
/// match the mirror pods.
fn object(s: &Shown, replicas: usize) -> Value {
    let (k, v) = s.label;
    let mut spec = json!({
        "selector": {"matchLabels": {k: v}},
        "template": {
            "metadata": {"labels": {k: v}},
            "spec": {
                "hostNetwork": true,
                "priorityClassName": "system-node-critical",
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": s.container, "image": IMAGE, "command": [s.container]}],
            },
        },
    });
    if s.kind == "Deployment" {
        spec["replicas"] = json!(replicas);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": s.kind,
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "labels": {k: v},
            "annotations": {ANNOTATION: s.container},
        },
        "spec": spec,
    })
}

/// The status for `s` from its pods (`(pods, ready)`), the nodes that should run one, and the
/// object's generation.
fn status(s: &Shown, pods: usize, ready: usize, desired: usize, generation: i64) -> Value {
    if s.kind == "Deployment" {
        let available = ready > 0;
        json!({
            "observedGeneration": generation,
            "replicas": pods,
            "updatedReplicas": pods,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": pods.saturating_sub(ready),
            "conditions": [
                {
                    "type": "Available",
                    "status": if available { "True" } else { "False" },
                    "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if available { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": format!("{} runs as each control plane's own component.", s.name),
                },
            ],
        })
    } else {
        json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": pods,
            "updatedNumberScheduled": pods,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": desired.saturating_sub(ready),
            "numberMisscheduled": 0,
        })
    }
}

fn is_control_plane(n: &Node) -> bool {
    n.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key("node-role.kubernetes.io/control-plane"))
}

/// Create the workload if missing, then set its status from its mirror pods.
async fn reconcile(client: &kube::Client, s: &Shown, nodes: &[Node]) -> Result<()> {
    let what = || format!("{} {}/{}", s.kind.to_lowercase(), s.namespace, s.name);
    let ar = if s.kind == "Deployment" {
        kube::api::ApiResource::erase::<Deployment>(&())
    } else {
        kube::api::ApiResource::erase::<DaemonSet>(&())
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), s.namespace, &ar);
    let desired = nodes
        .iter()
        .filter(|n| !s.control_plane_only || is_control_plane(n))
        .count();
    let existing = match api.get_opt(s.name).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            let obj: kube::api::DynamicObject =
                serde_json::from_value(object(s, desired)).expect("a valid object");
            match api.create(&PostParams::default(), &obj).await {
                Ok(o) => o,
                // The namespace (kube-flannel) may not be there yet; the next pass retries.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
                Err(e) => return Err(Error::Api(what(), e)),
            }
        }
        Err(e) => return Err(Error::Api(what(), e)),
    };
    let (k, v) = s.label;
    let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), s.namespace)
        .list(&ListParams::default().labels(&format!("{k}={v}")))
        .await
        .map_err(|e| Error::Api(what(), e))?
        .items;
    let ready = pods.iter().filter(|p| super::common::is_ready(p)).count();
    let generation = existing.metadata.generation.unwrap_or(1);
    let want = status(s, pods.len(), ready, desired, generation);
    if existing.data.get("status") == Some(&want) {
        return Ok(());
    }
    api.patch_status(
        s.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": want})),
    )
    .await
    .map_err(|e| Error::Api(what(), e))?;
    Ok(())
}

async fn pass(client: &kube::Client) {
    let nodes = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(n) => n.items,
        Err(e) => {
            eprintln!("kube-controller-manager: components: nodes: {e}");
            return;
        }
    };
    for s in SHOWN {
        if let Err(e) = reconcile(client, s, &nodes).await {
            eprintln!("kube-controller-manager: components: {e:#}");
        }
    }
}

/// A `()` for every event of a watch on `api`.
fn changes<K>(api: Api<K>) -> impl futures::Stream<Item = ()> + Send
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .map(|_| ())
}

/// Reconcile on every change of a node or of a pod, Deployment or DaemonSet in the components'
/// namespaces (`kubectl rollout restart`, `scale` or `edit` bump a generation the status must
/// observe at once), and every [`RESYNC`].
pub async fn run(client: kube::Client) {
    let c = &client;
    let flannel = crate::node::flannel::NAMESPACE;
    let watches = futures::stream::select_all([
        changes(Api::<Node>::all(c.clone())).boxed(),
        changes(Api::<Pod>::namespaced(c.clone(), "kube-system")).boxed(),
        changes(Api::<Pod>::namespaced(c.clone(), flannel)).boxed(),
        changes(Api::<Deployment>::namespaced(c.clone(), "kube-system")).boxed(),
        changes(Api::<DaemonSet>::namespaced(c.clone(), "kube-system")).boxed(),
        changes(Api::<DaemonSet>::namespaced(c.clone(), flannel)).boxed(),
    ]);
    let ticks = futures::stream::unfold((), |()| async {
        tokio::time::sleep(RESYNC).await;
        Some(((), ()))
    });
    let mut events = std::pin::pin!(futures::stream::select(watches, ticks));
    pass(&client).await;
    while events.next().await.is_some() {
        // Events come in bursts (a node's pods, status updates): one pass for the lot.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Some(Some(())) = events.next().now_or_never() {}
        pass(&client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coredns_deployment_reads_as_rolled_out_when_its_pods_are_ready() {
        let s = &SHOWN[0];
        let st = status(s, 1, 1, 1, 3);
        assert_eq!(st["observedGeneration"], 3);
        for k in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            assert_eq!(st[k], 1, "{k}");
        }
        assert_eq!(st["conditions"][0]["status"], "True");
        let st = status(s, 1, 0, 1, 1);
        assert_eq!(st["conditions"][0]["status"], "False");
        assert_eq!(st["unavailableReplicas"], 1);
    }

    #[test]
    fn a_daemonset_wants_one_pod_per_node() {
        let st = status(&SHOWN[1], 2, 2, 3, 1);
        assert_eq!(st["desiredNumberScheduled"], 3);
        assert_eq!(st["numberReady"], 2);
        assert_eq!(st["numberUnavailable"], 1);
    }

    #[test]
    fn the_objects_select_the_mirror_pods_and_are_marked() {
        for s in SHOWN {
            let o = object(s, 2);
            let (k, v) = s.label;
            assert_eq!(o["spec"]["selector"]["matchLabels"][k], v);
            assert_eq!(o["spec"]["template"]["metadata"]["labels"][k], v);
            assert_eq!(o["metadata"]["annotations"][ANNOTATION], s.container);
            let meta: kube::api::ObjectMeta =
                serde_json::from_value(o["metadata"].clone()).unwrap();
            assert!(is_component(&meta));
        }
    }
}
