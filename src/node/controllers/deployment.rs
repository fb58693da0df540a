//! The Deployment controller: one ReplicaSet per pod template (`<deploy>-<pod-template-hash>`),
//! rolled by RollingUpdate or Recreate, with revisions, status and conditions as upstream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::common::{self, controller_of, selector_matches};
use super::{Error, Result};

pub const COMPONENT: &str = "deployment-controller";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations that describe the Deployment itself and are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// apimachinery's `rand` alphabet: no vowels, no confusable digits, so no words in names.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// apimachinery's `rand.SafeEncodeString`: each character mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| ALPHANUMS[c as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// 32-bit FNV-1a, as Go's `hash/fnv.New32a`.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x01000193)
    })
}

/// JSON with object keys sorted at every level, so equal templates hash equally whatever
/// order their fields arrived in.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Upstream's `ComputeHash`: FNV-1a of the template, then the collision count's four
/// little-endian bytes padded to eight, printed in decimal and safe-encoded. Upstream feeds
/// the hasher Go's spew dump of the struct; Kindling feeds it canonical JSON, so the names
/// look alike but differ from a real cluster's for the same template.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    canonical(
        &serde_json::to_value(template).unwrap_or_default(),
        &mut text,
    );
    let mut bytes = text.into_bytes();
    if let Some(c) = collision_count {
        let mut extra = [0u8; 8];
        extra[..4].copy_from_slice(&(c as u32).to_le_bytes());
        bytes.extend_from_slice(&extra);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Templates equal once the pod-template-hash label is set aside (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        let meta = t.metadata.get_or_insert_with(Default::default);
        if let Some(l) = meta.labels.as_mut() {
            l.remove(HASH_LABEL);
            if l.is_empty() {
                meta.labels = None;
            }
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

/// apimachinery's `GetScaledValueFromIntOrPercent`.
pub fn scaled(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = pct * i64::from(total);
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

fn replicas_of(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Upstream's `ResolveFenceposts`: (maxSurge, maxUnavailable), never both zero.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let quarter = IntOrString::String("25%".into());
    let want = replicas_of(d);
    let surge = scaled(ru.max_surge.as_ref().unwrap_or(&quarter), want, true);
    let unavailable = scaled(ru.max_unavailable.as_ref().unwrap_or(&quarter), want, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Upstream's `MaxUnavailable`: zero for Recreate, at most the replicas.
fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || replicas_of(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas_of(d))
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status
        .as_ref()
        .map(|s| {
            (
                s.replicas,
                s.ready_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
            )
        })
        .unwrap_or_default()
}

fn template_of(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// Upstream's `SetDeploymentCondition`: the same status and reason change nothing; the same
/// status keeps its transition time.
fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let now = common::now_time();
    let mut c = DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(now.clone()),
        last_update_time: Some(now),
    };
    if let Some(i) = conds.iter().position(|x| x.type_ == type_) {
        let old = &conds[i];
        if old.status == status && old.reason.as_deref() == Some(reason) {
            return;
        }
        if old.status == status {
            c.last_transition_time = old.last_transition_time.clone();
        }
        conds.remove(i);
    }
    conds.push(c);
}

/// An active ReplicaSet as proportional scaling sees it.
pub struct ActiveSet {
    pub replicas: i32,
    /// `deployment.kubernetes.io/max-replicas`: the Deployment's size (plus surge) when this
    /// ReplicaSet was last scaled.
    pub max_annotation: Option<i32>,
    pub created: Option<jiff::Timestamp>,
}

/// Upstream's proportional scaling (`scale` with `GetProportion`): a new replica count in
/// mid-rollout is shared among the active ReplicaSets by their size, larger first (newer
/// first on ties when growing, older when shrinking), leftovers to the first. Returns the
/// new sizes in the order given.
pub fn proportional(
    sets: &[ActiveSet],
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
) -> Vec<i32> {
    let total: i32 = sets.iter().map(|s| s.replicas).sum();
    let allowed = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let to_add = allowed - total;
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&sets[a], &sets[b]);
        let by_age = if to_add > 0 {
            y.created.cmp(&x.created)
        } else {
            x.created.cmp(&y.created)
        };
        y.replicas.cmp(&x.replicas).then(by_age)
    });
    let mut sizes: Vec<i32> = sets.iter().map(|s| s.replicas).collect();
    if to_add == 0 {
        return sizes;
    }
    let mut added = 0;
    for &i in &order {
        let s = &sets[i];
        if s.replicas == 0 || added == to_add {
            continue;
        }
        let fraction = if replicas == 0 {
            -s.replicas
        } else {
            let annotated = s.max_annotation.unwrap_or(status_replicas).max(1);
            ((f64::from(s.replicas) * f64::from(allowed)) / f64::from(annotated)).round() as i32
                - s.replicas
        };
        let left = to_add - added;
        let p = if to_add > 0 {
            fraction.min(left)
        } else {
            fraction.max(left)
        };
        sizes[i] += p;
        added += p;
    }
    if let Some(&first) = order.first() {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

/// One sync of one Deployment: its ReplicaSets, the new one (matching the template) apart.
struct Rollout {
    client: kube::Client,
    d: Deployment,
    api: Api<ReplicaSet>,
    new: Option<ReplicaSet>,
    old: Vec<ReplicaSet>,
    conditions: Vec<DeploymentCondition>,
}

impl Rollout {
    fn name(&self) -> String {
        self.d.metadata.name.clone().unwrap_or_default()
    }

    fn all(&self) -> impl Iterator<Item = &ReplicaSet> {
        self.new.iter().chain(self.old.iter())
    }

    async fn event(&self, reason: &str, message: String) {
        let r = common::reference("apps/v1", "Deployment", &self.d.metadata);
        common::record(&self.client, r, COMPONENT, "Normal", reason, message).await;
    }

    /// The annotations the new ReplicaSet should carry: the Deployment's own (bar its
    /// bookkeeping) and the replica counts upstream records for proportional scaling.
    fn rs_annotations(&self) -> BTreeMap<String, String> {
        let mut a: BTreeMap<String, String> = self
            .d
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
            .collect();
        let want = replicas_of(&self.d);
        a.insert(DESIRED_REPLICAS.into(), want.to_string());
        a.insert(
            MAX_REPLICAS.into(),
            (want + fenceposts(&self.d).0).to_string(),
        );
        a
    }

    /// Set `rs`'s replicas (and the replica annotations), with upstream's ScalingReplicaSet
    /// event; true when the size changed.
    async fn scale(&mut self, which: Which, to: i32) -> Result<bool> {
        let rs = match which {
            Which::New => self.new.as_ref(),
            Which::Old(i) => self.old.get(i),
        };
        let Some(rs) = rs else { return Ok(false) };
        let from = rs_replicas(rs);
        let want = replicas_of(&self.d);
        let max = want + fenceposts(&self.d).0;
        let ann = rs.metadata.annotations.clone().unwrap_or_default();
        let ann_ok = ann.get(DESIRED_REPLICAS) == Some(&want.to_string())
            && ann.get(MAX_REPLICAS) == Some(&max.to_string());
        if from == to && ann_ok {
            return Ok(false);
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: want.to_string(), MAX_REPLICAS: max.to_string()}},
            "spec": {"replicas": to},
        });
        let updated = self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| Error::Api(format!("replicaset {name}"), e))?;
        match which {
            Which::New => self.new = Some(updated),
            Which::Old(i) => self.old[i] = updated,
        }
        if from != to {
            let dir = if to > from { "up" } else { "down" };
            self.event(
                "ScalingReplicaSet",
                format!("Scaled {dir} replica set {name} from {from} to {to}"),
            )
            .await;
        }
        Ok(from != to)
    }

    /// Upstream's `getNewReplicaSet`: bring the new ReplicaSet's revision and annotations up
    /// to date, or create it (when `create`), and note its revision on the Deployment.
    async fn sync_new(&mut self, create: bool) -> Result<()> {
        let new_revision = self.old.iter().map(revision).max().unwrap_or(0) + 1;
        let d_name = self.name();
        if let Some(rs) = self.new.clone() {
            let mut ann = rs.metadata.annotations.clone().unwrap_or_default();
            let before = ann.clone();
            for (k, v) in self.rs_annotations() {
                if k != DESIRED_REPLICAS && k != MAX_REPLICAS {
                    ann.insert(k, v);
                }
            }
            if revision(&rs) < new_revision {
                ann.insert(REVISION.into(), new_revision.to_string());
            }
            if ann != before {
                let name = rs.metadata.name.clone().unwrap_or_default();
                let patch = json!({"metadata": {"annotations": ann}});
                let updated = self
                    .api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| Error::Api(format!("replicaset {name}"), e))?;
                self.new = Some(updated);
            }
            if !self.conditions.iter().any(|c| c.type_ == "Progressing") {
                set_condition(
                    &mut self.conditions,
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    format!(
                        "Found new replica set \"{name}\"",
                        name = rs.metadata.name.as_deref().unwrap_or_default()
                    ),
                );
            }
        } else if create {
            let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
            let hash = template_hash(&template_of(&self.d), collision);
            let mut template = template_of(&self.d);
            template
                .metadata
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(Default::default)
                .insert(HASH_LABEL.into(), hash.clone());
            let mut selector = self
                .d
                .spec
                .as_ref()
                .map(|s| s.selector.clone())
                .unwrap_or_default();
            selector
                .match_labels
                .get_or_insert_with(Default::default)
                .insert(HASH_LABEL.into(), hash.clone());
            let mut ann = self.rs_annotations();
            ann.insert(REVISION.into(), new_revision.to_string());
            let name = format!("{d_name}-{hash}");
            let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
            let mut rs = ReplicaSet {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: self.d.metadata.namespace.clone(),
                    labels,
                    annotations: Some(ann),
                    owner_references: Some(vec![common::controller_ref(
                        "apps/v1",
                        "Deployment",
                        &self.d.metadata,
                    )]),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(0),
                    min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                    selector,
                    template: Some(template),
                }),
                status: None,
            };
            let replicas = if is_recreate(&self.d) {
                replicas_of(&self.d)
            } else {
                self.new_rs_replicas(0)
            };
            if let Some(s) = rs.spec.as_mut() {
                s.replicas = Some(replicas);
            }
            match self.api.create(&PostParams::default(), &rs).await {
                Ok(created) => {
                    self.new = Some(created);
                    if replicas > 0 {
                        self.event(
                            "ScalingReplicaSet",
                            format!("Scaled up replica set {name} from 0 to {replicas}"),
                        )
                        .await;
                    }
                    set_condition(
                        &mut self.conditions,
                        "Progressing",
                        "True",
                        "NewReplicaSetCreated",
                        format!("Created new replica set \"{name}\""),
                    );
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    // Ours already (a pass whose list missed it), or a hash collision: upstream
                    // bumps collisionCount so the next name differs.
                    let existing = self
                        .api
                        .get(&name)
                        .await
                        .map_err(|e| Error::Api(format!("replicaset {name}"), e))?;
                    let ours = controller_of(&existing.metadata)
                        .is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
                    let same = existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| equal_ignore_hash(t, &template_of(&self.d)));
                    if ours && same {
                        self.new = Some(existing);
                    } else {
                        let count = collision.unwrap_or(0) + 1;
                        let patch = json!({"status": {"collisionCount": count}});
                        self.patch_status(&patch).await?;
                        return Err(Error::HashCollision(name));
                    }
                }
                Err(e) => return Err(Error::Api(format!("replicaset {name}"), e)),
            }
        }
        // The Deployment shows its current revision, as `kubectl describe` prints it.
        if let Some(rev) = self.new.as_ref().map(revision) {
            let has = self
                .d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .and_then(|v| v.parse::<i64>().ok());
            if has != Some(rev) {
                let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
                Api::<Deployment>::namespaced(
                    self.client.clone(),
                    self.d.metadata.namespace.as_deref().unwrap_or_default(),
                )
                .patch(&d_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| Error::Api(format!("deployment {d_name}"), e))?;
            }
        }
        Ok(())
    }

    /// Upstream's `NewRSNewReplicas` for RollingUpdate: grow the new ReplicaSet as far as
    /// maxSurge allows over all ReplicaSets' replicas.
    fn new_rs_replicas(&self, current_new: i32) -> i32 {
        let want = replicas_of(&self.d);
        let total: i32 = self.all().map(rs_replicas).sum::<i32>()
            + if self.new.is_none() { current_new } else { 0 };
        let max_total = want + fenceposts(&self.d).0;
        if total >= max_total {
            return current_new;
        }
        current_new + (max_total - total).min(want - current_new)
    }

    async fn reconcile_new(&mut self) -> Result<bool> {
        let Some(new) = &self.new else {
            return Ok(false);
        };
        let (cur, want) = (rs_replicas(new), replicas_of(&self.d));
        if cur == want {
            return Ok(false);
        }
        let to = if cur > want {
            want
        } else {
            self.new_rs_replicas(cur)
        };
        self.scale(Which::New, to).await
    }

    /// Upstream's `reconcileOldReplicaSets`: scale old ReplicaSets down while at least
    /// replicas - maxUnavailable pods stay available, unhealthy ones first.
    async fn reconcile_old(&mut self) -> Result<bool> {
        let old_count: i32 = self.old.iter().map(rs_replicas).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count: i32 = self.all().map(rs_replicas).sum();
        let min_available = replicas_of(&self.d) - max_unavailable(&self.d);
        let new_unavailable = self
            .new
            .as_ref()
            .map(|n| rs_replicas(n) - rs_status(n).2)
            .unwrap_or(0);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Unhealthy replicas first: they add nothing to availability.
        let mut cleaned = 0;
        let mut scaled = false;
        for i in 0..self.old.len() {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.old[i];
            let (r, avail) = (rs_replicas(rs), rs_status(rs).2);
            if r == 0 || avail >= r {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(r - avail);
            cleaned += down;
            scaled |= self.scale(Which::Old(i), r - down).await?;
        }
        let available: i32 = self.all().map(|rs| rs_status(rs).2).sum();
        if available > min_available {
            let total_down = available - min_available;
            let mut done = 0;
            for i in 0..self.old.len() {
                if done >= total_down {
                    break;
                }
                let r = rs_replicas(&self.old[i]);
                if r == 0 {
                    continue;
                }
                let down = r.min(total_down - done);
                done += down;
                scaled |= self.scale(Which::Old(i), r - down).await?;
            }
        }
        Ok(scaled)
    }

    /// Upstream's `isScalingEvent` + `scale`: a new replica count with one active
    /// ReplicaSet, or a saturated new one, is applied at once rather than rolled.
    async fn scale_only(&mut self) -> Result<bool> {
        let want = replicas_of(&self.d);
        let active: Vec<Which> = self
            .new
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .map(|_| Which::New)
            .chain(
                self.old
                    .iter()
                    .enumerate()
                    .filter(|(_, rs)| rs_replicas(rs) > 0)
                    .map(|(i, _)| Which::Old(i)),
            )
            .collect();
        match active.as_slice() {
            [one] => self.scale(*one, want).await,
            // None active: the newest ReplicaSet takes the whole count (`FindActiveOrLatest`).
            [] => match (&self.new, self.old.len()) {
                (Some(_), _) => self.scale(Which::New, want).await,
                (None, 0) => Ok(false),
                (None, n) => self.scale(Which::Old(n - 1), want).await,
            },
            _ => {
                let saturated = self.new.as_ref().is_some_and(|n| {
                    rs_replicas(n) == want
                        && rs_status(n).2 == want
                        && n.metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(DESIRED_REPLICAS))
                            == Some(&want.to_string())
                });
                let mut scaled = false;
                if saturated {
                    for i in 0..self.old.len() {
                        scaled |= self.scale(Which::Old(i), 0).await?;
                    }
                } else if !is_recreate(&self.d) {
                    let sets: Vec<ActiveSet> = active
                        .iter()
                        .map(|w| {
                            let rs = match w {
                                Which::New => self.new.as_ref(),
                                Which::Old(i) => self.old.get(*i),
                            }
                            .expect("active sets exist");
                            ActiveSet {
                                replicas: rs_replicas(rs),
                                max_annotation: rs
                                    .metadata
                                    .annotations
                                    .as_ref()
                                    .and_then(|a| a.get(MAX_REPLICAS))
                                    .and_then(|v| v.parse().ok()),
                                created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                            }
                        })
                        .collect();
                    let status_replicas =
                        self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let sizes = proportional(&sets, want, fenceposts(&self.d).0, status_replicas);
                    for (w, to) in active.iter().zip(sizes) {
                        scaled |= self.scale(*w, to).await?;
                    }
                }
                Ok(scaled)
            }
        }
    }

    /// Upstream's `cleanupDeployment`: keep revisionHistoryLimit old, scaled-down
    /// ReplicaSets, deleting the lowest revisions beyond that.
    async fn cleanup(&mut self) -> Result<()> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut alive: Vec<&ReplicaSet> = self
            .old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        if alive.len() <= limit {
            return Ok(());
        }
        alive.sort_by_key(|rs| revision(rs));
        let extra = alive.len() - limit;
        for rs in alive.into_iter().take(extra) {
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
            if rs_status(rs).0 != 0 || rs_replicas(rs) != 0 || rs.metadata.generation > observed {
                continue;
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::Api(format!("replicaset {name}"), e)),
            }
        }
        Ok(())
    }

    /// Whether pods of old ReplicaSets still exist (Recreate waits for them to be gone).
    async fn old_pods_running(&self) -> Result<bool> {
        let ns = self.d.metadata.namespace.clone().unwrap_or_default();
        let old_uids: Vec<&String> = self
            .old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_ref())
            .collect();
        let pods = Api::<Pod>::namespaced(self.client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::Api(format!("pods in {ns}"), e))?;
        Ok(pods.items.iter().any(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
                && controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&&r.uid))
        }))
    }

    async fn patch_status(&self, patch: &Value) -> Result<()> {
        let name = self.name();
        Api::<Deployment>::namespaced(
            self.client.clone(),
            self.d.metadata.namespace.as_deref().unwrap_or_default(),
        )
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| Error::Api(format!("deployment {name} status"), e))?;
        Ok(())
    }

    /// Upstream's `calculateStatus` and, unless `only_status`, `syncRolloutStatus`; returns
    /// how long until the progress deadline should be checked again.
    async fn sync_status(&mut self, rollout: bool) -> Result<Option<Duration>> {
        let want = replicas_of(&self.d);
        let available: i32 = self.all().map(|rs| rs_status(rs).2).sum();
        let total_spec: i32 = self.all().map(rs_replicas).sum();
        let replicas: i32 = self.all().map(|rs| rs_status(rs).0).sum();
        let ready: i32 = self.all().map(|rs| rs_status(rs).1).sum();
        let updated = self.new.as_ref().map(|n| rs_status(n).0).unwrap_or(0);
        let generation = self.d.metadata.generation.unwrap_or(0);
        let mut conds = self.conditions.clone();
        if available >= want - max_unavailable(&self.d) {
            set_condition(
                &mut conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            );
        } else {
            set_condition(
                &mut conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            );
        }
        let deadline = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600);
        let mut recheck = None;
        let old_status = self.d.status.clone().unwrap_or_default();
        let progressing = conds.iter().find(|c| c.type_ == "Progressing").cloned();
        let complete = updated == want && replicas == want && available == want;
        let already_done = replicas == updated
            && progressing.as_ref().and_then(|c| c.reason.as_deref())
                == Some("NewReplicaSetAvailable");
        let what = match &self.new {
            Some(n) => format!(
                "ReplicaSet \"{}\"",
                n.metadata.name.as_deref().unwrap_or_default()
            ),
            None => format!("Deployment \"{}\"", self.name()),
        };
        if deadline == i32::MAX {
            conds.retain(|c| c.type_ != "Progressing");
        } else if rollout && !already_done {
            let old_old =
                old_status.replicas.unwrap_or(0) - old_status.updated_replicas.unwrap_or(0);
            let moving = updated > old_status.updated_replicas.unwrap_or(0)
                || replicas - updated < old_old
                || ready > old_status.ready_replicas.unwrap_or(0)
                || available > old_status.available_replicas.unwrap_or(0);
            if complete {
                set_condition(
                    &mut conds,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("{what} has successfully progressed."),
                );
            } else if moving {
                // Progress refreshes lastUpdateTime, which the deadline counts from.
                let keep = progressing
                    .as_ref()
                    .filter(|c| c.status == "True")
                    .and_then(|c| c.last_transition_time.clone());
                conds.retain(|c| c.type_ != "Progressing");
                set_condition(
                    &mut conds,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    format!("{what} is progressing."),
                );
                if let (Some(t), Some(c)) = (keep, conds.last_mut()) {
                    c.last_transition_time = Some(t);
                }
                recheck = Some(Duration::from_secs(deadline as u64));
            } else if let Some(c) = &progressing {
                let reason = c.reason.as_deref();
                if reason != Some("ProgressDeadlineExceeded")
                    && reason != Some("NewReplicaSetAvailable")
                {
                    let since = c
                        .last_update_time
                        .as_ref()
                        .map(|t| t.0.as_second())
                        .unwrap_or(0);
                    let left = since + i64::from(deadline) - jiff::Timestamp::now().as_second();
                    if left < 0 {
                        set_condition(
                            &mut conds,
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("{what} has timed out progressing."),
                        );
                    } else {
                        recheck = Some(Duration::from_secs(left as u64 + 1));
                    }
                }
            }
        }
        let status = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": (total_spec - available).max(0),
            "conditions": conds,
            "collisionCount": old_status.collision_count,
        });
        let current = serde_json::to_value(&old_status).unwrap_or_default();
        let differs = status.as_object().into_iter().flatten().any(|(k, v)| {
            current.get(k).unwrap_or(&Value::Null) != v
                && !(v == &json!(0) && current.get(k).is_none())
        });
        if differs {
            self.patch_status(&json!({"status": status})).await?;
        }
        Ok(recheck)
    }
}

#[derive(Clone, Copy)]
enum Which {
    New,
    Old(usize),
}

/// Adopt orphan ReplicaSets the selector matches and release owned ones it no longer
/// matches (upstream's `ReplicaSetControllerRefManager`); returns those this Deployment owns.
async fn claim(
    d: &Deployment,
    api: &Api<ReplicaSet>,
    all: Vec<ReplicaSet>,
) -> Result<Vec<ReplicaSet>> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let selector = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    let mut mine = Vec::new();
    for rs in all {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let matches = selector_matches(&selector, &common::labels_of(&rs.metadata));
        let refs = rs.metadata.owner_references.clone().unwrap_or_default();
        let patch = match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid && matches => {
                mine.push(rs);
                continue;
            }
            Some(r) if r.uid == uid => {
                let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != uid).collect();
                json!({"metadata": {"ownerReferences": kept, "uid": rs.metadata.uid}})
            }
            None if matches
                && d.metadata.deletion_timestamp.is_none()
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = refs;
                refs.push(common::controller_ref("apps/v1", "Deployment", &d.metadata));
                json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}})
            }
            _ => continue,
        };
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(updated) if matches => mine.push(updated),
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(Error::Api(format!("replicaset {name}"), e)),
        }
    }
    Ok(mine)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<super::replicaset::Ctx>) -> Result<Action> {
    // Its pods are a node component's mirror pods (components.rs), not ReplicaSets'.
    if super::components::is_component(&d.metadata) {
        return Ok(Action::await_change());
    }
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Api(format!("replicasets in {ns}"), e))?
        .items;
    let mut mine = claim(&d, &api, all).await?;
    // Oldest first: upstream scales old ReplicaSets down in creation order, and the oldest
    // of several matching the template is the new one.
    mine.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            &a.metadata.name,
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &b.metadata.name,
            ))
    });
    let template = template_of(&d);
    let new_at = mine.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &template))
    });
    let new = new_at.map(|i| mine.remove(i));
    let mut r = Rollout {
        client: ctx.client.clone(),
        conditions: d
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default(),
        d: (*d).clone(),
        api,
        new,
        old: mine,
    };
    if d.metadata.deletion_timestamp.is_some() {
        r.sync_status(false).await?;
        return Ok(Action::await_change());
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let progressing_reason = r
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.reason.clone());
    if paused && progressing_reason.as_deref() != Some("DeploymentPaused") {
        set_condition(
            &mut r.conditions,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
        );
    } else if !paused && progressing_reason.as_deref() == Some("DeploymentPaused") {
        set_condition(
            &mut r.conditions,
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
        );
    }
    if paused {
        r.sync_new(false).await?;
        r.scale_only().await?;
        r.cleanup().await?;
        r.sync_status(false).await?;
        return Ok(Action::await_change());
    }
    let want = replicas_of(&d);
    let scaling_event = r.all().filter(|rs| rs_replicas(rs) > 0).any(|rs| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESIRED_REPLICAS))
            != Some(&want.to_string())
    });
    if scaling_event {
        r.sync_new(false).await?;
        if r.scale_only().await? {
            r.sync_status(false).await?;
            return Ok(Action::await_change());
        }
    }
    let recheck = if is_recreate(&d) {
        r.sync_new(false).await?;
        let mut scaled = false;
        for i in 0..r.old.len() {
            scaled |= r.scale(Which::Old(i), 0).await?;
        }
        if scaled {
            r.sync_status(true).await?;
            return Ok(Action::await_change());
        }
        if r.old_pods_running().await? {
            r.sync_status(true).await?;
            // A pod's disappearance after its grace period changes no ReplicaSet's status,
            // so no watch event would wake us: look again shortly.
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        if r.new.is_none() {
            r.sync_new(true).await?;
        }
        r.scale(Which::New, want).await?;
        if r.new.as_ref().is_some_and(|n| rs_status(n).2 == want) {
            r.cleanup().await?;
        }
        r.sync_status(true).await?
    } else {
        r.sync_new(true).await?;
        if r.reconcile_new().await? || r.reconcile_old().await? {
            r.sync_status(true).await?
        } else {
            let done = r
                .new
                .as_ref()
                .is_some_and(|n| rs_status(n).0 == want && rs_status(n).2 == want)
                && r.old.iter().all(|o| rs_replicas(o) == 0);
            if done {
                r.cleanup().await?;
            }
            r.sync_status(true).await?
        }
    };
    Ok(recheck
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

fn error_policy(d: Arc<Deployment>, e: &Error, _ctx: Arc<super::replicaset::Ctx>) -> Action {
    super::common::retry_after("deployment", &d.metadata, e, Duration::from_secs(1))
}

/// Run the controller until its watches end; a ReplicaSet change wakes its Deployment.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(super::replicaset::Ctx {
        client: client.clone(),
    });
    Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ReplicaSet>::all(client), watcher::Config::default())
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn safe_encoding_maps_digits_into_the_vowel_free_alphabet() {
        // '0' is 48, 48 % 27 = 21 -> '4'; '9' is 57, 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("0"), "4");
        assert_eq!(safe_encode("9"), "f");
        assert_eq!(safe_encode("1234567890"), "56789bcdf4");
    }

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "whoami", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_template_hash_is_stable_and_changes_with_the_template_or_collision_count() {
        let a = template_hash(&template("kindling/whoami"), None);
        assert_eq!(a, template_hash(&template("kindling/whoami"), None));
        assert!(
            a.len() <= 10 && a.bytes().all(|b| ALPHANUMS.contains(&b)),
            "{a}"
        );
        assert_ne!(a, template_hash(&template("kindling/toolbox"), None));
        assert_ne!(a, template_hash(&template("kindling/whoami"), Some(1)));
        // The hash text is the decimal FNV-1a, safe-encoded.
        let mut text = String::new();
        canonical(
            &serde_json::to_value(template("kindling/whoami")).unwrap(),
            &mut text,
        );
        assert_eq!(a, safe_encode(&fnv32a(text.as_bytes()).to_string()));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut with_hash = template("kindling/whoami");
        with_hash
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&with_hash, &template("kindling/whoami")));
        assert!(!equal_ignore_hash(
            &with_hash,
            &template("kindling/toolbox")
        ));
    }

    #[test]
    fn a_scale_in_mid_rollout_is_shared_by_size_with_leftovers_to_the_largest() {
        let t = |s: &str| Some(s.parse::<jiff::Timestamp>().unwrap());
        // 10 replicas (maxSurge 3) mid-rollout: old 8, new 5, both sized when max was 13.
        let sets = [
            ActiveSet {
                replicas: 8,
                max_annotation: Some(13),
                created: t("2025-01-01T00:00:00Z"),
            },
            ActiveSet {
                replicas: 5,
                max_annotation: Some(13),
                created: t("2025-01-01T01:00:00Z"),
            },
        ];
        // Scaled to 20 (maxSurge 5): 25 allowed, 12 more, shared 8:5.
        assert_eq!(proportional(&sets, 20, 5, 13), [15, 10]);
        // Scaled to 5 (maxSurge 2): 7 allowed, 6 fewer.
        let down = proportional(&sets, 5, 2, 13);
        assert_eq!(down.iter().sum::<i32>(), 7);
        assert!(down[0] >= down[1], "{down:?}");
        // To zero: everything goes.
        assert_eq!(proportional(&sets, 0, 0, 13), [0, 0]);
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down_and_never_both_zero() {
        let d = |surge: Value, unavail: Value, replicas: i32| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": replicas, "selector": {}, "template": {},
                         "strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}}
            }))
            .unwrap()
        };
        assert_eq!(fenceposts(&d(json!("25%"), json!("25%"), 3)), (1, 0));
        assert_eq!(fenceposts(&d(json!("25%"), json!("25%"), 10)), (3, 2));
        assert_eq!(fenceposts(&d(json!(0), json!(0), 3)), (0, 1));
        assert_eq!(fenceposts(&d(json!(2), json!("50%"), 5)), (2, 2));
    }
}
