//! The ReplicaSet controller: keeps `spec.replicas` pods from the template running, adopting
//! matching orphans, deleting surplus pods in upstream's order, and reporting status.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::json;

use super::common::{self, controller_of, selector_matches};
use super::{Error, Result};

pub const COMPONENT: &str = "replicaset-controller";
/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 500;
/// Upstream's `pod-deletion-cost` annotation: lower costs are deleted first.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

pub struct Ctx {
    pub client: kube::Client,
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| Error::Api(what, e)
}

/// The pod a ReplicaSet creates from its template, named by the API server from
/// `generateName` (`<rs>-<5 random characters>`) like upstream's `GetPodFromTemplate`.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                rs.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: rs.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![common::controller_ref(
                "apps/v1",
                "ReplicaSet",
                &rs.metadata,
            )]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .map(|c| c.restart_count)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Upstream's `LogarithmicScaleDown`: times compare by the power of two of their age, so
/// pods of about the same age are not told apart by a few milliseconds.
fn log_rank(t: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos > 0 {
        (nanos as f64).log2() as i64
    } else {
        -1
    }
}

/// Upstream's time comparison: a missing time first, then the newer of two, bucketed by
/// `log_rank`, with the UID breaking ties inside a bucket.
fn newer_first(
    a: (Option<jiff::Timestamp>, &Pod),
    b: (Option<jiff::Timestamp>, &Pod),
    now: jiff::Timestamp,
) -> Option<Ordering> {
    let (ta, tb) = (a.0, b.0);
    if ta == tb {
        return None;
    }
    Some(match (ta, tb) {
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => {
            let diff = log_rank(x, now) - log_rank(y, now);
            if diff == 0 {
                a.1.metadata.uid.cmp(&b.1.metadata.uid)
            } else {
                diff.cmp(&0)
            }
        }
    })
}

/// The order in which surplus pods go, first to last, as upstream's `ActivePodsWithRanks`:
/// unscheduled, then Pending < Unknown < Running, not ready, lower deletion cost, more pods on
/// the same node, ready more recently, more restarts, created more recently.
pub fn deletion_order(pods: &[Pod], now: jiff::Timestamp) -> Vec<usize> {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let on_node = |n: &str| {
        pods.iter()
            .filter(|p| common::is_active(p) && node(p) == n)
            .count()
    };
    let mut order: Vec<usize> = (0..pods.len()).collect();
    let rank: Vec<usize> = pods.iter().map(|p| on_node(&node(p))).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&pods[i], &pods[j]);
        node(a)
            .is_empty()
            .cmp(&node(b).is_empty())
            .reverse()
            .then(phase_ordinal(a).cmp(&phase_ordinal(b)))
            .then(common::is_ready(a).cmp(&common::is_ready(b)))
            .then(deletion_cost(a).cmp(&deletion_cost(b)))
            .then(rank[j].cmp(&rank[i]))
            .then_with(|| {
                if common::is_ready(a) && common::is_ready(b) {
                    let ra = common::ready_since(a).flatten();
                    let rb = common::ready_since(b).flatten();
                    newer_first((ra, a), (rb, b), now).unwrap_or(Ordering::Equal)
                } else {
                    Ordering::Equal
                }
            })
            .then(max_restarts(b).cmp(&max_restarts(a)))
            .then_with(|| {
                let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                newer_first((ca, a), (cb, b), now).unwrap_or(Ordering::Equal)
            })
    });
    order
}

/// Adopt matching orphans and release owned pods that no longer match (upstream's
/// `PodControllerRefManager`); returns the active pods this ReplicaSet controls.
async fn claim_pods(rs: &ReplicaSet, pods: &Api<Pod>, all: Vec<Pod>) -> Result<Vec<Pod>> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let selector = rs
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let mut mine = Vec::new();
    for pod in all.into_iter().filter(common::is_active) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let matches = selector_matches(&selector, &common::labels_of(&pod.metadata));
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    mine.push(pod);
                } else {
                    let refs: Vec<_> = pod
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .filter(|r| r.uid != uid)
                        .collect();
                    let patch =
                        json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
                    ignore_gone(
                        pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await,
                    )
                    .map_err(api_err(format!("pod {name}")))?;
                }
            }
            Some(_) => {}
            None if matches && rs.metadata.deletion_timestamp.is_none() => {
                let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
                refs.push(common::controller_ref(
                    "apps/v1",
                    "ReplicaSet",
                    &rs.metadata,
                ));
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
                match pods
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(p) => mine.push(p),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(Error::Api(format!("pod {name}"), e)),
                }
            }
            None => {}
        }
    }
    Ok(mine)
}

fn ignore_gone<T>(r: std::result::Result<T, kube::Error>) -> std::result::Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn create_pods(ctx: &Ctx, rs: &ReplicaSet, pods: &Api<Pod>, count: usize) -> Result<()> {
    let pod = pod_from_template(rs);
    let pp = PostParams::default();
    let rs_ref = common::reference("apps/v1", "ReplicaSet", &rs.metadata);
    // Upstream's slow start: batches of 1, 2, 4, ... so a failing template fails once, not
    // hundreds of times.
    let (mut done, mut batch) = (0, 1);
    while done < count {
        let n = batch.min(count - done);
        let results = futures::future::join_all((0..n).map(|_| pods.create(&pp, &pod))).await;
        let mut failed = None;
        for r in results {
            match r {
                Ok(p) => {
                    let name = p.metadata.name.unwrap_or_default();
                    common::record(
                        &ctx.client,
                        rs_ref.clone(),
                        COMPONENT,
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    )
                    .await;
                }
                Err(e) => {
                    let msg = match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        e => e.to_string(),
                    };
                    common::record(
                        &ctx.client,
                        rs_ref.clone(),
                        COMPONENT,
                        "Warning",
                        "FailedCreate",
                        format!("Error creating: {msg}"),
                    )
                    .await;
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(Error::Api(
                format!(
                    "replicaset {}",
                    rs.metadata.name.as_deref().unwrap_or_default()
                ),
                e,
            ));
        }
        done += n;
        batch *= 2;
    }
    Ok(())
}

async fn delete_pods(ctx: &Ctx, rs: &ReplicaSet, pods: &Api<Pod>, doomed: Vec<&Pod>) -> Result<()> {
    let rs_ref = common::reference("apps/v1", "ReplicaSet", &rs.metadata);
    let results = futures::future::join_all(doomed.iter().map(|p| {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        async move {
            let name = p.metadata.name.clone().unwrap_or_default();
            (name.clone(), pods.delete(&name, &dp).await)
        }
    }))
    .await;
    for (name, r) in results {
        match r {
            Ok(_) => {
                common::record(
                    &ctx.client,
                    rs_ref.clone(),
                    COMPONENT,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                )
                .await
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                common::record(
                    &ctx.client,
                    rs_ref.clone(),
                    COMPONENT,
                    "Warning",
                    "FailedDelete",
                    format!("Error deleting: {e}"),
                )
                .await;
                return Err(Error::Api(format!("pod {name}"), e));
            }
        }
    }
    Ok(())
}

/// The status upstream's `calculateStatus` reports for these pods.
pub fn status_for(rs: &ReplicaSet, pods: &[Pod], now: jiff::Timestamp) -> serde_json::Value {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully = pods
        .iter()
        .filter(|p| {
            let l = common::labels_of(&p.metadata);
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| common::is_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| common::is_available(p, min_ready, now))
        .count();
    json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": fully,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs.metadata.generation,
    })
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = rs.metadata.name.clone().unwrap_or_default();
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let rss: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    // A fresh list rather than a cache: the pods created by the last pass are always seen,
    // which is what upstream's expectations bookkeeping exists to guarantee.
    let all = pods
        .list(&ListParams::default())
        .await
        .map_err(api_err(format!("pods in {ns}")))?
        .items;
    let mine = claim_pods(&rs, &pods, all).await?;
    let want = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let now = jiff::Timestamp::now();
    let mut result = Ok(());
    if rs.metadata.deletion_timestamp.is_none() {
        if mine.len() < want {
            let n = (want - mine.len()).min(BURST_REPLICAS);
            result = create_pods(&ctx, &rs, &pods, n).await;
        } else if mine.len() > want {
            let n = (mine.len() - want).min(BURST_REPLICAS);
            let order = deletion_order(&mine, now);
            let doomed = order.iter().take(n).map(|&i| &mine[i]).collect();
            result = delete_pods(&ctx, &rs, &pods, doomed).await;
        }
    }
    let status = status_for(&rs, &mine, now);
    let current = serde_json::to_value(rs.status.clone().unwrap_or_default()).unwrap_or_default();
    let changed = [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .any(|k| current.get(*k).unwrap_or(&json!(0)) != &status[*k]);
    if changed {
        match rss
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::Api(format!("replicaset {name} status"), e)),
        }
    }
    result?;
    // Ready pods become available only after minReadySeconds, with no event to say so.
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    if min_ready > 0 && status["readyReplicas"] != status["availableReplicas"] {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

fn error_policy(rs: Arc<ReplicaSet>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    super::common::retry_after("replicaset", &rs.metadata, e, Duration::from_secs(2))
}

/// Run the controller until its watches end. A pod change wakes its controller; an orphan's
/// change wakes every ReplicaSet in its namespace whose selector matches it.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default(),
            move |pod: Pod| {
                let ns = pod.metadata.namespace.clone();
                let targets: Vec<ObjectRef<ReplicaSet>> = match controller_of(&pod.metadata) {
                    Some(r) if r.kind == "ReplicaSet" => {
                        vec![ObjectRef::new(&r.name).within(ns.as_deref().unwrap_or_default())]
                    }
                    Some(_) => vec![],
                    None => {
                        let labels = common::labels_of(&pod.metadata);
                        store
                            .state()
                            .iter()
                            .filter(|rs| rs.metadata.namespace == ns)
                            .filter(|rs| {
                                rs.spec
                                    .as_ref()
                                    .is_some_and(|s| selector_matches(&s.selector, &labels))
                            })
                            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
                            .collect()
                    }
                };
                targets
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, v: serde_json::Value) -> Pod {
        let mut v = v;
        v["metadata"]["name"] = json!(name);
        v["metadata"]["uid"] = json!(format!("uid-{name}"));
        serde_json::from_value(v).unwrap()
    }

    fn ready(node: &str, since: &str, created: &str) -> serde_json::Value {
        json!({
            "metadata": {"creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": since}]}
        })
    }

    #[test]
    fn surplus_pods_go_unscheduled_then_pending_then_not_ready_then_newest() {
        let now: jiff::Timestamp = "2025-01-01T12:00:00Z".parse().unwrap();
        let pods = vec![
            pod(
                "old-ready",
                ready("w1", "2025-01-01T08:00:00Z", "2025-01-01T08:00:00Z"),
            ),
            pod(
                "unscheduled",
                json!({"spec": {"containers": []}, "status": {"phase": "Pending"}}),
            ),
            pod(
                "new-ready",
                ready("w2", "2025-01-01T11:59:50Z", "2025-01-01T11:59:40Z"),
            ),
            pod(
                "pending",
                json!({"spec": {"nodeName": "w3", "containers": []}, "status": {"phase": "Pending"}}),
            ),
            pod(
                "not-ready",
                json!({"spec": {"nodeName": "w3", "containers": []}, "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        ];
        let names: Vec<_> = deletion_order(&pods, now)
            .into_iter()
            .map(|i| pods[i].metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn of_equal_pods_the_one_sharing_a_node_or_with_lower_cost_goes_first() {
        let now: jiff::Timestamp = "2025-01-01T12:00:00Z".parse().unwrap();
        let t = "2025-01-01T08:00:00Z";
        let pods = vec![
            pod("alone", ready("w1", t, t)),
            pod("crowded-a", ready("w2", t, t)),
            pod("crowded-b", ready("w2", t, t)),
        ];
        let order = deletion_order(&pods, now);
        assert_eq!(pods[order[2]].metadata.name.as_deref(), Some("alone"));

        let mut cheap = ready("w1", t, t);
        cheap["metadata"]["annotations"] = json!({DELETION_COST: "-5"});
        let pods = vec![pod("a", ready("w1", t, t)), pod("cheap", cheap)];
        let order = deletion_order(&pods, now);
        assert_eq!(pods[order[0]].metadata.name.as_deref(), Some("cheap"));
    }

    #[test]
    fn pods_from_the_template_carry_its_labels_and_a_blocking_controller_reference() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-7d4b9c", "namespace": "default", "uid": "u1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap();
        let p = pod_from_template(&rs);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-7d4b9c-"));
        assert_eq!(p.metadata.labels.unwrap()["app"], "web");
        let r = &p.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (
                r.kind.as_str(),
                r.uid.as_str(),
                r.controller,
                r.block_owner_deletion
            ),
            ("ReplicaSet", "u1", Some(true), Some(true))
        );
    }
}
