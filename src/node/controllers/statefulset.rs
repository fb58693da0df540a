//! The StatefulSet controller: pods with stable names `<sts>-<ordinal>`, hostnames under the
//! governing Service and their own PersistentVolumeClaims, started in order (OrderedReady) or
//! all at once (Parallel), removed from the highest ordinal down, and rolled from the highest
//! ordinal down to the partition, with ControllerRevisions as upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::common;
use super::history::{self, HASH_LABEL};
use super::{Error, Result};

pub const COMPONENT: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The ordinal in `<set>-<ordinal>`, if `pod` is named like one of `set`'s pods.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok().filter(|n: &i32| *n >= 0)
}

/// `<template>-<set>-<ordinal>`, the claim a pod's volume binds to.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The pod for `ordinal` from `template` at revision `revision` (upstream's
/// `newVersionedStatefulSetPod`): stable name and hostname, the Service's subdomain, the
/// identity labels, and each volumeClaimTemplate as a claim volume.
pub fn pod_for(sts: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let set = sts.metadata.name.clone().unwrap_or_default();
    let spec = sts.spec.clone().unwrap_or_default();
    let name = format!("{set}-{ordinal}");
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(HASH_LABEL.into(), revision.into());
    let mut pspec = template.spec.clone().unwrap_or_default();
    pspec.hostname = Some(name.clone());
    pspec.subdomain = spec.service_name.clone().filter(|s| !s.is_empty());
    let mut volumes = pspec.volumes.take().unwrap_or_default();
    for claim in spec.volume_claim_templates.iter().flatten() {
        let cname = claim.metadata.name.clone().unwrap_or_default();
        volumes.retain(|v| v.name != cname);
        volumes.push(Volume {
            name: cname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&cname, &set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if !volumes.is_empty() {
        pspec.volumes = Some(volumes);
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: sts.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            owner_references: Some(vec![common::controller_ref(
                "apps/v1",
                "StatefulSet",
                &sts.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(pspec),
        status: None,
    }
}

/// The claims of `ordinal` (upstream's `getPersistentVolumeClaims`): each template's spec,
/// labelled with the template's labels and the set's selector.
pub fn claims_for(sts: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let set = sts.metadata.name.clone().unwrap_or_default();
    let spec = sts.spec.clone().unwrap_or_default();
    let delete_with_set = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let tname = t.metadata.name.clone().unwrap_or_default();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&tname, &set, ordinal)),
                    namespace: sts.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    owner_references: delete_with_set.then(|| {
                        vec![common::controller_ref(
                            "apps/v1",
                            "StatefulSet",
                            &sts.metadata,
                        )]
                    }),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Upstream's `isRunningAndReady`.
pub fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && common::is_ready(pod)
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The one step a pass takes, as pure data for tests.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Create the pod for this ordinal (from the current revision when below the partition).
    Create(Vec<i32>),
    /// Delete these pods (failed ones, condemned ones, or one to update).
    Delete(Vec<String>),
    Wait,
}

/// Upstream's `updateStatefulSet` reduced to its decisions: replace failed pods and create
/// missing ones in ordinal order (stopping at the first not Running and Ready when ordered),
/// then remove condemned pods from the highest ordinal, then roll the highest outdated pod.
pub fn next_steps(sts: &StatefulSet, pods: &[Pod], update_revision: &str) -> Vec<Step> {
    let set = sts.metadata.name.clone().unwrap_or_default();
    let spec = sts.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let by_ordinal: BTreeMap<i32, &Pod> = pods
        .iter()
        .filter_map(|p| Some((ordinal_of(&set, p.metadata.name.as_deref()?)?, p)))
        .collect();
    let mut steps = Vec::new();
    let mut create = Vec::new();
    let mut delete = Vec::new();
    let mut unhealthy = false;
    for ord in start..start + replicas {
        match by_ordinal.get(&ord) {
            None => {
                create.push(ord);
                unhealthy = true;
                if ordered {
                    break;
                }
            }
            Some(p) if matches!(phase(p), "Failed" | "Succeeded") && !terminating(p) => {
                delete.push(p.metadata.name.clone().unwrap_or_default());
                unhealthy = true;
                if ordered {
                    break;
                }
            }
            Some(p) if terminating(p) || !running_and_ready(p) => {
                unhealthy = true;
                if ordered {
                    break;
                }
            }
            Some(_) => {}
        }
    }
    if !create.is_empty() {
        steps.push(Step::Create(create));
    }
    if !delete.is_empty() {
        steps.push(Step::Delete(delete));
    }
    if ordered && unhealthy {
        return if steps.is_empty() {
            vec![Step::Wait]
        } else {
            steps
        };
    }
    // Condemned: ordinals outside the range, highest first.
    let condemned: Vec<&Pod> = by_ordinal
        .iter()
        .rev()
        .filter(|(o, _)| **o < start || **o >= start + replicas)
        .map(|(_, p)| *p)
        .collect();
    if !condemned.is_empty() {
        if ordered {
            let first = condemned[0];
            if terminating(first) {
                steps.push(Step::Wait);
            } else {
                steps.push(Step::Delete(vec![
                    first.metadata.name.clone().unwrap_or_default(),
                ]));
            }
            return steps;
        }
        let doomed: Vec<String> = condemned
            .iter()
            .filter(|p| !terminating(p))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if !doomed.is_empty() {
            steps.push(Step::Delete(doomed));
        }
    }
    if unhealthy || !steps.is_empty() {
        return steps;
    }
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return steps;
    }
    let partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);
    // Upstream rolls one pod at a time, from the highest ordinal down to the partition.
    for ord in (start + partition..start + replicas).rev() {
        let Some(p) = by_ordinal.get(&ord) else {
            continue;
        };
        if revision_of(p) != Some(update_revision) {
            steps.push(Step::Delete(vec![
                p.metadata.name.clone().unwrap_or_default(),
            ]));
            return steps;
        }
    }
    steps
}

async fn event(client: &kube::Client, sts: &StatefulSet, type_: &str, reason: &str, msg: String) {
    let r = common::reference("apps/v1", "StatefulSet", &sts.metadata);
    common::record(client, r, COMPONENT, type_, reason, msg).await;
}

/// Create the claims of `ordinal` that do not exist yet.
async fn ensure_claims(client: &kube::Client, sts: &StatefulSet, ordinal: i32) -> Result<()> {
    let ns = sts.metadata.namespace.clone().unwrap_or_default();
    let set = sts.metadata.name.clone().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    for claim in claims_for(sts, ordinal) {
        let cname = claim.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&cname).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return Err(Error::Api(format!("persistentvolumeclaim {cname}"), e)),
        }
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                event(
                    client,
                    sts,
                    "Normal",
                    "SuccessfulCreate",
                    format!(
                        "create Claim {cname} Pod {set}-{ordinal} in StatefulSet {set} success"
                    ),
                )
                .await
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                event(
                    client,
                    sts,
                    "Warning",
                    "FailedCreate",
                    format!(
                        "create Claim {cname} for Pod {set}-{ordinal} in StatefulSet {set} failed error: {}",
                        common::api_message(&e)
                    ),
                )
                .await;
                return Err(Error::Api(format!("persistentvolumeclaim {cname}"), e));
            }
        }
    }
    Ok(())
}

async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<super::replicaset::Ctx>) -> Result<Action> {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let ns = sts.metadata.namespace.clone().unwrap_or_default();
    let uid = sts.metadata.uid.clone().unwrap_or_default();
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let revs_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let spec = sts.spec.clone().unwrap_or_default();
    let what = format!("pods of statefulset {ns}/{name}");
    let pods = common::owned_pods(&pods_api, &spec.selector, &uid, what).await?;
    let mut revs = history::owned(&revs_api, &uid).await?;
    let (update, _) = history::ensure(
        &revs_api,
        "apps/v1",
        "StatefulSet",
        &sts.metadata,
        &spec.template,
        &mut revs,
    )
    .await?;
    let update_name = update.metadata.name.clone().unwrap_or_default();
    let status_current = sts
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .filter(|c| revs.iter().any(|r| r.metadata.name.as_ref() == Some(c)));
    let current_name = status_current.unwrap_or_else(|| update_name.clone());
    let current_template = revs
        .iter()
        .find(|r| r.metadata.name.as_ref() == Some(&current_name))
        .and_then(history::template_of)
        .unwrap_or_else(|| spec.template.clone());
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let mut failure = None;
    for step in next_steps(&sts, &pods, &update_name) {
        match step {
            Step::Wait => {}
            Step::Create(ordinals) => {
                for ord in ordinals {
                    if let Err(e) = ensure_claims(client, &sts, ord).await {
                        failure = Some(e);
                        continue;
                    }
                    let (template, rev) = if rolling && ord < start + partition {
                        (&current_template, &current_name)
                    } else {
                        (&spec.template, &update_name)
                    };
                    let pod = pod_for(&sts, template, ord, rev);
                    let pname = pod.metadata.name.clone().unwrap_or_default();
                    match pods_api.create(&PostParams::default(), &pod).await {
                        Ok(_) => {
                            event(
                                client,
                                &sts,
                                "Normal",
                                "SuccessfulCreate",
                                format!("create Pod {pname} in StatefulSet {name} successful"),
                            )
                            .await
                        }
                        // The old pod of that name is still being removed.
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => {
                            event(
                                client,
                                &sts,
                                "Warning",
                                "FailedCreate",
                                format!(
                                    "create Pod {pname} in StatefulSet {name} failed error: {}",
                                    common::api_message(&e)
                                ),
                            )
                            .await;
                            failure = Some(Error::Api(format!("pod {ns}/{pname}"), e));
                        }
                    }
                }
            }
            Step::Delete(names) => {
                for pname in names {
                    let uid = pods
                        .iter()
                        .find(|p| p.metadata.name.as_ref() == Some(&pname))
                        .and_then(|p| p.metadata.uid.clone());
                    let dp = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid,
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match pods_api.delete(&pname, &dp).await {
                        Ok(_) => {
                            event(
                                client,
                                &sts,
                                "Normal",
                                "SuccessfulDelete",
                                format!("delete Pod {pname} in StatefulSet {name} successful"),
                            )
                            .await
                        }
                        Err(e) if common::gone_or_conflict(&e) => {}
                        Err(e) => failure = Some(Error::Api(format!("pod {ns}/{pname}"), e)),
                    }
                }
            }
        }
    }

    // Status from the pods as listed; the next pass, woken by their changes, catches up.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let live: Vec<&Pod> = pods.iter().filter(|p| !terminating(p)).collect();
    let replicas = pods.len() as i64;
    let ready = pods.iter().filter(|p| running_and_ready(p)).count() as i64;
    let available = pods
        .iter()
        .filter(|p| running_and_ready(p) && common::is_available(p, min_ready, now))
        .count() as i64;
    let count_rev = |r: &str| live.iter().filter(|p| revision_of(p) == Some(r)).count() as i64;
    let updated = count_rev(&update_name);
    let mut current_rev = current_name.clone();
    let mut current = count_rev(&current_name);
    let want = i64::from(spec.replicas.unwrap_or(1));
    // Upstream's `completeRollingUpdate`: once every pod is updated and ready, the update
    // revision becomes the current one.
    if rolling && updated == want && ready == want && replicas == want {
        current_rev = update_name.clone();
        current = updated;
    }
    let status = json!({
        "observedGeneration": sts.metadata.generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_rev,
        "updateRevision": update_name,
        "collisionCount": 0,
    });
    let old = serde_json::to_value(sts.status.clone().unwrap_or_default()).unwrap_or_default();
    let differs = status.as_object().into_iter().flatten().any(|(k, v)| {
        let cur = old.get(k).unwrap_or(&Value::Null);
        cur != v && !(v == &json!(0) && cur.is_null())
    });
    if differs {
        match stss
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::Api(format!("statefulset {ns}/{name} status"), e)),
        }
    }
    let in_use: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| revision_of(p).map(str::to_string))
        .collect();
    history::truncate(
        &revs_api,
        &revs,
        &in_use,
        &[&current_rev, &update_name],
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    if min_ready > 0 && ready != available {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

fn error_policy(sts: Arc<StatefulSet>, e: &Error, _ctx: Arc<super::replicaset::Ctx>) -> Action {
    super::common::retry_after("statefulset", &sts.metadata, e, Duration::from_secs(2))
}

/// Run the controller until its watches end; a pod's change wakes its StatefulSet.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(super::replicaset::Ctx {
        client: client.clone(),
    });
    Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client), watcher::Config::default())
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(replicas: i32, policy: &str, partition: i32) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": partition}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "www"},
                         "spec": {"accessModes": ["ReadWriteOnce"],
                                  "resources": {"requests": {"storage": "1Gi"}}}}]}
        }))
        .unwrap()
    }

    fn pod(name: &str, rev: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {HASH_LABEL: rev}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    #[test]
    fn ordinals_are_read_only_from_the_sets_own_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-db-1"), None);
        assert_eq!(claim_name("www", "web", 2), "www-web-2");
    }

    #[test]
    fn pods_get_a_stable_identity_and_their_own_claims() {
        let s = sts(3, "OrderedReady", 0);
        let p = pod_for(&s, &s.spec.clone().unwrap().template, 1, "web-abc");
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vol = &spec.volumes.unwrap()[0];
        assert_eq!(
            vol.persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-1"
        );
        let labels = p.metadata.labels.unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-1");
        assert_eq!(labels[POD_INDEX_LABEL], "1");
        assert_eq!(labels[HASH_LABEL], "web-abc");
        let claims = claims_for(&s, 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("www-web-1"));
        assert_eq!(claims[0].metadata.labels.as_ref().unwrap()["app"], "nginx");
    }

    #[test]
    fn ordered_pods_start_one_at_a_time_and_wait_for_readiness() {
        let s = sts(3, "OrderedReady", 0);
        assert_eq!(next_steps(&s, &[], "r1"), [Step::Create(vec![0])]);
        assert_eq!(
            next_steps(&s, &[pod("web-0", "r1", false)], "r1"),
            [Step::Wait]
        );
        assert_eq!(
            next_steps(&s, &[pod("web-0", "r1", true)], "r1"),
            [Step::Create(vec![1])]
        );
        let parallel = sts(3, "Parallel", 0);
        assert_eq!(
            next_steps(&parallel, &[], "r1"),
            [Step::Create(vec![0, 1, 2])]
        );
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
        let s = sts(1, "OrderedReady", 0);
        let pods = [
            pod("web-0", "r1", true),
            pod("web-1", "r1", true),
            pod("web-2", "r1", true),
        ];
        assert_eq!(
            next_steps(&s, &pods, "r1"),
            [Step::Delete(vec!["web-2".into()])]
        );
        let parallel = sts(1, "Parallel", 0);
        assert_eq!(
            next_steps(&parallel, &pods, "r1"),
            [Step::Delete(vec!["web-2".into(), "web-1".into()])]
        );
    }

    #[test]
    fn rolling_updates_go_from_the_highest_ordinal_down_to_the_partition() {
        let pods = [
            pod("web-0", "r1", true),
            pod("web-1", "r1", true),
            pod("web-2", "r2", true),
        ];
        let s = sts(3, "OrderedReady", 0);
        assert_eq!(
            next_steps(&s, &pods, "r2"),
            [Step::Delete(vec!["web-1".into()])]
        );
        let partitioned = sts(3, "OrderedReady", 2);
        assert!(next_steps(&partitioned, &pods, "r2").is_empty());
    }
}
