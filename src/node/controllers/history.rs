//! ControllerRevisions, the history DaemonSets and StatefulSets keep of their pod templates
//! (upstream's `controller/history`): one revision `<owner>-<hash>` per template, numbered in
//! order of use, so `kubectl rollout history|undo` work on them.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::common::{self, controller_of};
use super::deployment::template_hash;
use super::{Error, Result};

/// The label on pods and revisions naming the revision they belong to.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// What a revision stores: a strategic-merge patch that puts the template back, as upstream's
/// `getPatch` writes it (kubectl's `rollout undo` applies it as it is).
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

/// The template a revision stores.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0["spec"]["template"].clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// The revisions `owner_uid` controls, oldest revision number first.
pub async fn owned(
    api: &Api<ControllerRevision>,
    owner_uid: &str,
) -> Result<Vec<ControllerRevision>> {
    let mut revs: Vec<ControllerRevision> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Api("controllerrevisions".into(), e))?
        .items
        .into_iter()
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == owner_uid))
        .collect();
    revs.sort_by_key(|r| (r.revision, r.metadata.name.clone()));
    Ok(revs)
}

/// Find or make the revision for `template`, the newest in number: an older revision with
/// the same template (after `rollout undo`) is renumbered, as upstream does. Returns it and
/// its hash.
pub async fn ensure(
    api: &Api<ControllerRevision>,
    owner_api_version: &str,
    owner_kind: &str,
    owner: &ObjectMeta,
    template: &PodTemplateSpec,
    revs: &mut Vec<ControllerRevision>,
) -> Result<(ControllerRevision, String)> {
    let hash = template_hash(template, None);
    let data = revision_data(template);
    let max = revs.iter().map(|r| r.revision).max().unwrap_or(0);
    let same = |r: &ControllerRevision| {
        r.data.as_ref().map(|d| &d.0) == Some(&data)
            || template_of(r).is_some_and(|t| {
                serde_json::to_value(t).ok() == serde_json::to_value(template).ok()
            })
    };
    if let Some(i) = revs.iter().position(same) {
        let rev = &revs[i];
        if rev.revision == max {
            let h = rev
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL).cloned())
                .unwrap_or(hash);
            return Ok((rev.clone(), h));
        }
        let name = rev.metadata.name.clone().unwrap_or_default();
        let updated = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"revision": max + 1})),
            )
            .await
            .map_err(|e| Error::Api(format!("controllerrevision {name}"), e))?;
        revs[i] = updated.clone();
        let h = updated
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL).cloned())
            .unwrap_or(hash);
        return Ok((updated, h));
    }
    let owner_name = owner.name.clone().unwrap_or_default();
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let rev = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{owner_name}-{hash}")),
            namespace: owner.namespace.clone(),
            labels: Some(labels),
            annotations: owner.annotations.clone(),
            owner_references: Some(vec![common::controller_ref(
                owner_api_version,
                owner_kind,
                owner,
            )]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: max + 1,
    };
    let made = match api.create(&PostParams::default(), &rev).await {
        Ok(r) => r,
        // Made by an earlier pass we did not see listed yet.
        Err(kube::Error::Api(s)) if s.code == 409 => api
            .get(rev.metadata.name.as_deref().unwrap_or_default())
            .await
            .map_err(|e| Error::Api(format!("controllerrevision {owner_name}-{hash}"), e))?,
        Err(e) => {
            return Err(Error::Api(
                format!("controllerrevision {owner_name}-{hash}"),
                e,
            ));
        }
    };
    revs.push(made.clone());
    Ok((made, hash))
}

/// Delete the oldest revisions beyond `limit` that no pod uses and that are not `keep`
/// (upstream's `truncateHistory`).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revs: &[ControllerRevision],
    in_use: &BTreeSet<String>,
    keep: &[&str],
    limit: i32,
) -> Result<()> {
    let idle: Vec<&ControllerRevision> = revs
        .iter()
        .filter(|r| {
            let name = r.metadata.name.as_deref().unwrap_or_default();
            let hash = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL))
                .map(String::as_str)
                .unwrap_or_default();
            !keep.contains(&name) && !in_use.contains(name) && !in_use.contains(hash)
        })
        .collect();
    let extra = idle.len().saturating_sub(limit.max(0) as usize);
    for r in idle.into_iter().take(extra) {
        let name = r.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if common::gone_or_conflict(&e) => {}
            Err(e) => return Err(Error::Api(format!("controllerrevision {name}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_store_a_replacing_patch_that_gives_the_template_back() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "kindling/whoami"}]}
        }))
        .unwrap();
        let data = revision_data(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(t));
    }
}
