//! Garbage collection by ownerReferences and namespace finalization, run as tasks beside the
//! API server. Upstream runs both in kube-controller-manager (the garbage collector and the
//! namespace controller); they live here until Kindling has one, and speak only to the
//! [`Store`] and [`deletion`] so they can move there as they are.

use std::time::Duration;

use serde_json::{Value, json};

use super::deletion::{self, DeleteOptions, FOREGROUND, NAMESPACE_FINALIZER, ORPHAN, Propagation};
use super::resources::{self, RESOURCES, ResourceType};
use super::status::ApiError;
use super::storage::{self, Filter, Store};

/// How often a finalizer task looks again while something it waits for is still there.
const RECHECK: Duration = Duration::from_millis(100);
/// The longest pause between looks, once waiting has gone on a while.
const MAX_RECHECK: Duration = Duration::from_secs(2);

fn everything() -> Filter {
    std::sync::Arc::new(|_: &Value| true)
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ns_of(obj: &Value) -> Option<String> {
    obj["metadata"]["namespace"].as_str().map(str::to_string)
}

fn refs_to(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// Every stored object whose ownerReferences name `uid`. Namespaced owners only have
/// dependents in their own namespace; cluster-scoped owners may have them anywhere.
async fn dependents(
    store: &Store,
    owner_ns: Option<&str>,
    uid: &str,
) -> Result<Vec<(&'static ResourceType, Value)>, storage::Error> {
    let mut out = Vec::new();
    for rt in RESOURCES
        .iter()
        .filter(|r| r.stored() && r.is_storage_version())
    {
        if owner_ns.is_some() && !rt.namespaced {
            continue;
        }
        let page = store.list(rt, owner_ns, &everything(), 0, None).await?;
        out.extend(
            page.items
                .into_iter()
                .filter(|o| refs_to(o, uid))
                .map(|o| (rt, o)),
        );
    }
    Ok(out)
}

/// Whether the owner an ownerReference names still exists (same uid). References to kinds
/// this server does not serve are taken as alive, so nothing is deleted on a guess.
async fn owner_exists(store: &Store, dependent_ns: Option<&str>, r: &Value) -> bool {
    let api_version = r["apiVersion"].as_str().unwrap_or_default();
    let Some(rt) = resources::find_kind(api_version, r["kind"].as_str().unwrap_or_default()) else {
        return true;
    };
    let ns = if rt.namespaced { dependent_ns } else { None };
    match store
        .get(rt, ns, r["name"].as_str().unwrap_or_default())
        .await
    {
        Ok(o) => o["metadata"]["uid"] == r["uid"],
        Err(storage::Error::NotFound) => false,
        Err(_) => true,
    }
}

/// Drop the ownerReferences to `uid` from one dependent.
async fn drop_reference(
    store: &Store,
    rt: &'static ResourceType,
    dep: &Value,
    uid: &str,
) -> Result<(), ApiError> {
    let (name, ns) = (name_of(dep), ns_of(dep));
    let res = store
        .update(rt, ns.as_deref(), &name, |mut cur| {
            if let Some(refs) = cur["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != uid);
                if refs.is_empty() {
                    cur["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                }
            }
            Ok(cur)
        })
        .await;
    match res {
        Ok(_) | Err(storage::Error::NotFound) => Ok(()),
        Err(e) => Err(super::handlers::map_storage(rt, &name, e)),
    }
}

/// Delete a dependent whose owners are all gone (or going); otherwise just let go of `uid`.
async fn collect_one(
    store: &Store,
    rt: &'static ResourceType,
    dep: &Value,
    uid: &str,
) -> Result<(), ApiError> {
    let ns = ns_of(dep);
    let refs = dep["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in refs.iter().filter(|r| r["uid"] != uid) {
        if owner_exists(store, ns.as_deref(), r).await {
            return drop_reference(store, rt, dep, uid).await;
        }
    }
    if !dep["metadata"]["deletionTimestamp"].is_null() {
        return Ok(());
    }
    let opts = DeleteOptions {
        propagation: Some(Propagation::Background),
        ..Default::default()
    };
    match deletion::delete(store, rt, ns.as_deref(), &name_of(dep), &opts).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// After an owner is gone: collect every dependent that pointed at it.
pub async fn collect_dependents(
    store: &Store,
    owner_ns: Option<&str>,
    uid: &str,
) -> Result<(), ApiError> {
    let deps = dependents(store, owner_ns, uid)
        .await
        .map_err(ApiError::internal)?;
    for (rt, dep) in deps {
        collect_one(store, rt, &dep, uid).await?;
    }
    Ok(())
}

/// Run `work` until it succeeds, pausing longer after each failure: these tasks have no
/// client to report to, so they log and carry on like a controller's requeue.
fn spawn_retrying<F, Fut>(what: String, work: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<bool, ApiError>> + Send,
{
    tokio::spawn(async move {
        let mut delay = RECHECK;
        loop {
            match work().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => eprintln!("{what}: {e}"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RECHECK);
        }
    });
}

/// Collect the dependents of an owner that was just removed (Background propagation).
pub fn spawn_dependents(store: Store, rt: &'static ResourceType, ns: Option<&str>, uid: String) {
    if uid.is_empty() {
        return;
    }
    let ns = ns.filter(|_| rt.namespaced).map(str::to_string);
    spawn_retrying(
        format!("garbage collection of dependents of {uid}"),
        move || {
            let (store, ns, uid) = (store.clone(), ns.clone(), uid.clone());
            async move {
                collect_dependents(&store, ns.as_deref(), &uid).await?;
                Ok(true)
            }
        },
    );
}

/// Work through the finalizers this server owns on an object being deleted: `orphan`,
/// `foregroundDeletion`, and a namespace's `kubernetes`.
pub fn spawn_finalizers(store: Store, rt: &'static ResourceType, ns: Option<&str>, name: &str) {
    let (ns, name) = (ns.map(str::to_string), name.to_string());
    spawn_retrying(format!("finalizing {} {name}", rt.qualified()), move || {
        let (store, ns, name) = (store.clone(), ns.clone(), name.clone());
        async move { finalize_step(&store, rt, ns.as_deref(), &name).await }
    });
}

/// One pass over an object's finalizers; true once nothing is left for this server to do.
async fn finalize_step(
    store: &Store,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
) -> Result<bool, ApiError> {
    let obj = match store.get(rt, ns, name).await {
        Ok(o) => o,
        Err(storage::Error::NotFound) => return Ok(true),
        Err(e) => return Err(super::handlers::map_storage(rt, name, e)),
    };
    if obj["metadata"]["deletionTimestamp"].is_null() {
        return Ok(true);
    }
    let uid = obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let has = |f: &str| {
        obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == f))
    };
    let scope = if rt.namespaced { ns } else { None };
    if has(ORPHAN) {
        for (drt, dep) in dependents(store, scope, &uid)
            .await
            .map_err(ApiError::internal)?
        {
            drop_reference(store, drt, &dep, &uid).await?;
        }
        return release(store, rt, ns, name, ORPHAN, false)
            .await
            .map(|_| false);
    }
    if has(FOREGROUND) {
        let deps = dependents(store, scope, &uid)
            .await
            .map_err(ApiError::internal)?;
        if deps.is_empty() {
            return release(store, rt, ns, name, FOREGROUND, false)
                .await
                .map(|_| false);
        }
        for (drt, dep) in deps {
            collect_one(store, drt, &dep, &uid).await?;
        }
        return Ok(false);
    }
    if rt.group.is_empty() && rt.kind == "Namespace" {
        if !empty_namespace(store, name).await? {
            return Ok(false);
        }
        release(store, rt, ns, name, NAMESPACE_FINALIZER, true).await?;
    }
    Ok(true)
}

/// Delete everything inside namespace `ns`; true once nothing is left.
async fn empty_namespace(store: &Store, ns: &str) -> Result<bool, ApiError> {
    let mut left = 0;
    let opts = DeleteOptions {
        propagation: Some(Propagation::Background),
        ..Default::default()
    };
    for rt in RESOURCES
        .iter()
        .filter(|r| r.stored() && r.namespaced && r.is_storage_version())
    {
        let page = store
            .list(rt, Some(ns), &everything(), 0, None)
            .await
            .map_err(ApiError::internal)?;
        for obj in page.items {
            left += 1;
            if obj["metadata"]["deletionTimestamp"].is_null() {
                match deletion::delete(store, rt, Some(ns), &name_of(&obj), &opts).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(left == 0)
}

/// Remove finalizer `f` (from spec.finalizers when `in_spec`, as namespaces keep theirs) and
/// remove the object if that was the last thing holding it.
async fn release(
    store: &Store,
    rt: &'static ResourceType,
    ns: Option<&str>,
    name: &str,
    f: &str,
    in_spec: bool,
) -> Result<(), ApiError> {
    let res = store
        .update(rt, ns, name, |mut cur| {
            let list = if in_spec {
                &mut cur["spec"]["finalizers"]
            } else {
                &mut cur["metadata"]["finalizers"]
            };
            if let Some(a) = list.as_array_mut() {
                a.retain(|x| x != f);
            }
            if list.as_array().is_some_and(Vec::is_empty) {
                *list = json!([]);
            }
            Ok(cur)
        })
        .await;
    let written = match res {
        Ok(o) => o,
        Err(storage::Error::NotFound) => return Ok(()),
        Err(e) => return Err(super::handlers::map_storage(rt, name, e)),
    };
    deletion::remove_if_released(store, rt, ns, &written).await?;
    Ok(())
}

/// Pick up work left over from before a restart: objects stuck being deleted, and dependents
/// whose owners disappeared meanwhile.
pub async fn sweep(store: &Store) -> Result<(), ApiError> {
    for rt in RESOURCES
        .iter()
        .filter(|r| r.stored() && r.is_storage_version())
    {
        let page = store
            .list(rt, None, &everything(), 0, None)
            .await
            .map_err(ApiError::internal)?;
        for obj in page.items {
            let ns = ns_of(&obj);
            if !obj["metadata"]["deletionTimestamp"].is_null() {
                spawn_finalizers(store.clone(), rt, ns.as_deref(), &name_of(&obj));
            }
            for r in obj["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if !owner_exists(store, ns.as_deref(), r).await {
                    let uid = r["uid"].as_str().unwrap_or_default().to_string();
                    collect_one(store, rt, &obj, &uid).await?;
                }
            }
        }
    }
    Ok(())
}
