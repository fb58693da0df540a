//! Objects in etcd: JSON under `/registry/<resource>/[<namespace>/]<name>`, with resourceVersion
//! taken from etcd's mod revision on the way out and never stored.

use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::etcd::{self, Cmp, Etcd, Kv, Op, TxnOutcome, WatchItem};
use super::fanout::{Change, Hubs, Item};
use super::resources::ResourceType;
use super::status::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Etcd(#[from] etcd::Error),
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("the object has been modified")]
    Conflict,
    #[error("stored object at {key} is not valid JSON: {message}")]
    Corrupt { key: String, message: String },
    #[error("{0}")]
    Rejected(ApiError),
    #[error("the continue token is not valid")]
    BadContinue,
    /// Another object holds a key this one claims (a ClusterIP, a NodePort).
    #[error("{0} is already allocated")]
    Claimed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A list answer: objects, the revision it was read at, and where the next page starts.
pub struct ListPage {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_token: Option<String>,
}

/// One watch event as the API sends it.
#[derive(Debug, Clone)]
pub enum WatchOut {
    Event {
        kind: &'static str,
        object: Value,
        revision: i64,
    },
    Progress(i64),
    Error(ApiError),
}

/// Which objects a list or watch keeps.
pub type Filter = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct Store {
    pub etcd: Etcd,
    /// The shared watches, one per type.
    hubs: Hubs,
}

fn decode(kv: &Kv) -> Result<Value> {
    let mut v: Value = serde_json::from_slice(&kv.value).map_err(|e| Error::Corrupt {
        key: kv.key.clone(),
        message: e.to_string(),
    })?;
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    v["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    Ok(v)
}

/// A stored object as `rt` serves it: a type served at several versions (CronJob at batch/v1
/// and batch/v1beta1) shares one store, and only the apiVersion differs.
fn decode_for(rt: &ResourceType, kv: &Kv) -> Result<Value> {
    let mut v = decode(kv)?;
    if v.is_object() {
        v["apiVersion"] = json!(rt.group_version());
    }
    Ok(v)
}

fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

/// The resourceVersion a client sent, if any ("" means none).
pub fn sent_revision(obj: &Value) -> Option<i64> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(-1))
}

/// Keys an object holds besides its own (a Service's ClusterIPs and NodePorts): written in the
/// same transaction as the object, refused when another object holds them, removed with it. So
/// allocations are race-free and survive restarts without any state in the API server.
pub fn claims(rt: &ResourceType, obj: &Value) -> Vec<String> {
    if super::services::is_service(rt) {
        super::services::claims(obj)
    } else {
        Vec::new()
    }
}

/// What a claim key holds: who owns it, for anyone reading etcd.
fn holder(obj: &Value) -> Vec<u8> {
    let m = &obj["metadata"];
    json!({"namespace": m["namespace"], "name": m["name"], "uid": m["uid"]})
        .to_string()
        .into_bytes()
}

/// The first key of `check[skip..]` that exists, as the claim that failed.
fn first_taken(check: &[String], current: &[Option<Kv>], skip: usize) -> Option<String> {
    check
        .iter()
        .zip(current)
        .skip(skip)
        .find(|(_, kv)| kv.is_some())
        .map(|(k, _)| k.clone())
}

impl Store {
    pub fn new(etcd: Etcd) -> Self {
        Store {
            etcd,
            hubs: Hubs::default(),
        }
    }

    pub async fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value> {
        let kv = self
            .etcd
            .get(&rt.key(ns, name))
            .await?
            .ok_or(Error::NotFound)?;
        decode_for(rt, &kv)
    }

    /// Store a new object; its resourceVersion is set from the write's revision.
    pub async fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        obj: Value,
    ) -> Result<Value> {
        let key = rt.key(ns, name);
        let held = claims(rt, &obj);
        if !held.is_empty() {
            let mut check = vec![key.clone()];
            check.extend(held.iter().cloned());
            let cmps: Vec<Cmp> = check.iter().map(|k| Cmp::Absent(k.clone())).collect();
            let mut ops = vec![Op::Put(key, encode(&obj))];
            ops.extend(held.iter().map(|k| Op::Put(k.clone(), holder(&obj))));
            return match self.etcd.txn_all(&cmps, &ops, &check).await? {
                Ok(rev) => {
                    let mut out = obj;
                    out["metadata"]["resourceVersion"] = json!(rev.to_string());
                    Ok(out)
                }
                Err(current) if current[0].is_some() => Err(Error::AlreadyExists),
                Err(current) => Err(first_taken(&check, &current, 1)
                    .map(Error::Claimed)
                    .unwrap_or(Error::Conflict)),
            };
        }
        match self.etcd.put_if(&key, &encode(&obj), "CREATE", 0).await? {
            TxnOutcome::Written(rev) => {
                let mut out = obj;
                out["metadata"]["resourceVersion"] = json!(rev.to_string());
                Ok(out)
            }
            TxnOutcome::Failed(_) => Err(Error::AlreadyExists),
        }
    }

    /// Read-modify-write with optimistic concurrency, retried while others write in between.
    /// `change` gets the current object and returns the new one; if the new one names a
    /// resourceVersion other than the current one the client raced someone: Conflict.
    pub async fn update<F>(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        change: F,
    ) -> Result<Value>
    where
        F: FnMut(Value) -> std::result::Result<Value, ApiError>,
    {
        self.update_opts(rt, ns, name, false, change).await
    }

    /// [`Store::update`], or with `dry_run` everything but the write: the would-be object
    /// comes back and etcd is left alone.
    pub async fn update_opts<F>(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
        mut change: F,
    ) -> Result<Value>
    where
        F: FnMut(Value) -> std::result::Result<Value, ApiError>,
    {
        let key = rt.key(ns, name);
        let mut current = self.etcd.get(&key).await?.ok_or(Error::NotFound)?;
        loop {
            let obj = decode_for(rt, &current)?;
            let old_claims = claims(rt, &obj);
            let new = change(obj).map_err(Error::Rejected)?;
            if sent_revision(&new).is_some_and(|rv| rv != current.mod_revision) {
                return Err(Error::Conflict);
            }
            if dry_run {
                let mut out = new;
                out["metadata"]["resourceVersion"] = json!(current.mod_revision.to_string());
                return Ok(out);
            }
            let new_claims = claims(rt, &new);
            if old_claims != new_claims {
                let added: Vec<String> = new_claims
                    .iter()
                    .filter(|k| !old_claims.contains(k))
                    .cloned()
                    .collect();
                let mut cmps = vec![Cmp::ModRevision(key.clone(), current.mod_revision)];
                cmps.extend(added.iter().map(|k| Cmp::Absent(k.clone())));
                let mut ops = vec![Op::Put(key.clone(), encode(&new))];
                ops.extend(added.iter().map(|k| Op::Put(k.clone(), holder(&new))));
                ops.extend(
                    old_claims
                        .iter()
                        .filter(|k| !new_claims.contains(k))
                        .map(|k| Op::Delete(k.clone())),
                );
                let mut check = vec![key.clone()];
                check.extend(added);
                match self.etcd.txn_all(&cmps, &ops, &check).await? {
                    Ok(rev) => {
                        let mut out = new;
                        out["metadata"]["resourceVersion"] = json!(rev.to_string());
                        return Ok(out);
                    }
                    Err(now) => match &now[0] {
                        None => return Err(Error::NotFound),
                        Some(kv) if kv.mod_revision != current.mod_revision => {
                            current = kv.clone();
                            continue;
                        }
                        Some(_) => {
                            return Err(first_taken(&check, &now, 1)
                                .map(Error::Claimed)
                                .unwrap_or(Error::Conflict));
                        }
                    },
                }
            }
            match self
                .etcd
                .put_if(&key, &encode(&new), "MOD", current.mod_revision)
                .await?
            {
                TxnOutcome::Written(rev) => {
                    let mut out = new;
                    out["metadata"]["resourceVersion"] = json!(rev.to_string());
                    return Ok(out);
                }
                TxnOutcome::Failed(Some(kv)) => current = kv,
                TxnOutcome::Failed(None) => return Err(Error::NotFound),
            }
        }
    }

    /// Remove an object and return it as it was.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        precondition_rv: Option<i64>,
    ) -> Result<Value> {
        let key = rt.key(ns, name);
        let mut current = self.etcd.get(&key).await?.ok_or(Error::NotFound)?;
        loop {
            if precondition_rv.is_some_and(|rv| rv != current.mod_revision) {
                return Err(Error::Conflict);
            }
            let held = claims(rt, &decode_for(rt, &current)?);
            if !held.is_empty() {
                let mut ops = vec![Op::Delete(key.clone())];
                ops.extend(held.into_iter().map(Op::Delete));
                let cmps = [Cmp::ModRevision(key.clone(), current.mod_revision)];
                match self
                    .etcd
                    .txn_all(&cmps, &ops, std::slice::from_ref(&key))
                    .await?
                {
                    Ok(_) => return decode_for(rt, &current),
                    Err(now) => match now.into_iter().next().flatten() {
                        Some(kv) => current = kv,
                        None => return Err(Error::NotFound),
                    },
                }
                continue;
            }
            match self.etcd.delete_if(&key, current.mod_revision).await? {
                TxnOutcome::Written(_) => return decode_for(rt, &current),
                TxnOutcome::Failed(Some(kv)) => current = kv,
                TxnOutcome::Failed(None) => return Err(Error::NotFound),
            }
        }
    }

    /// One page of objects matching `filter`. `limit` 0 means everything.
    pub async fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        filter: &Filter,
        limit: usize,
        continue_token: Option<&str>,
    ) -> Result<ListPage> {
        let prefix = rt.prefix(ns);
        let (start, at) = match continue_token.filter(|c| !c.is_empty()) {
            Some(c) => {
                let (rv, start) = decode_continue(c).ok_or(Error::BadContinue)?;
                (format!("{prefix}{start}"), rv)
            }
            None => (prefix.clone(), 0),
        };
        let (kvs, header_rev) = self
            .etcd
            .range(&start, &etcd::prefix_end(&prefix), at)
            .await?;
        let revision = if at > 0 { at } else { header_rev };
        let mut items = Vec::new();
        let mut next = None;
        for kv in &kvs {
            let obj = decode_for(rt, kv)?;
            if !filter(&obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                // Upstream's token: the revision and the key to resume after, relative to the prefix.
                next = Some(encode_continue(revision, &kv.key[prefix.len()..]));
                break;
            }
            items.push(obj);
        }
        Ok(ListPage {
            items,
            revision,
            continue_token: next,
        })
    }

    /// Events after revision `from` for objects under the type's prefix, filtered the way
    /// upstream's watch cache does: an object leaving the filter is DELETED, entering is ADDED.
    /// The type's shared watch serves it; a start older than its window watches etcd alone.
    pub async fn watch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        from: i64,
        filter: Filter,
    ) -> Result<Pin<Box<dyn Stream<Item = WatchOut> + Send>>> {
        let gv = rt.group_version();
        let within = rt.prefix(ns);
        let shared = self
            .hubs
            .subscribe(&self.etcd, &rt.prefix(None), from, change_of)
            .await?;
        if let Some(items) = shared {
            return Ok(Box::pin(items.filter_map(move |item| {
                futures::future::ready(match item {
                    Item::Progress(rev) => Some(WatchOut::Progress(rev)),
                    Item::Change(c) if c.key.starts_with(&within) => to_watch_out(&c, &filter, &gv),
                    Item::Change(_) => None,
                })
            })));
        }
        let stream = self.etcd.watch(&within, from + 1).await?;
        let out = stream.flat_map(move |item| {
            let outs: Vec<WatchOut> = match item {
                Err(etcd::Error::Compacted(c)) => vec![WatchOut::Error(ApiError::gone(format!(
                    "too old resource version: {from} ({c})"
                )))],
                Err(e) => vec![WatchOut::Error(ApiError::internal(e))],
                Ok(WatchItem::Progress(rev)) => vec![WatchOut::Progress(rev)],
                Ok(WatchItem::Events(events)) => events
                    .into_iter()
                    .filter_map(|ev| to_watch_out(&change_of(ev), &filter, &gv))
                    .collect(),
            };
            futures::stream::iter(outs)
        });
        Ok(Box::pin(out))
    }
}

/// One etcd change decoded (objects that are not valid JSON are left out, as a list does).
fn change_of(ev: etcd::WatchEvent) -> Change {
    Change {
        revision: ev.kv.mod_revision,
        deleted: ev.deleted,
        object: (!ev.deleted).then(|| decode(&ev.kv).ok()).flatten(),
        prev: ev.prev.as_ref().and_then(|kv| decode(kv).ok()),
        key: ev.kv.key,
    }
}

fn to_watch_out(c: &Change, filter: &Filter, gv: &str) -> Option<WatchOut> {
    let revision = c.revision;
    let as_served = |v: &Value| {
        let mut v = v.clone();
        v["apiVersion"] = json!(gv);
        v
    };
    let prev_in = c.prev.as_ref().is_some_and(|p| filter(p));
    if c.deleted {
        let mut obj = as_served(c.prev.as_ref()?);
        // A deleted object's last resourceVersion is the deletion's revision, as upstream.
        obj["metadata"]["resourceVersion"] = json!(revision.to_string());
        return prev_in.then_some(WatchOut::Event {
            kind: "DELETED",
            object: obj,
            revision,
        });
    }
    let obj = c.object.as_ref()?;
    let now_in = filter(obj);
    let kind = match (prev_in, now_in) {
        (true, true) => "MODIFIED",
        (false, true) => "ADDED",
        (true, false) => "DELETED",
        (false, false) => return None,
    };
    Some(WatchOut::Event {
        kind,
        object: as_served(obj),
        revision,
    })
}

fn encode_continue(rv: i64, start: &str) -> String {
    // `start` is the first key not returned, so the next page begins exactly there.
    B64.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> Option<(i64, String)> {
    let bytes = B64.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((v["rv"].as_i64()?, v["start"].as_str()?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/b");
        assert_eq!(decode_continue(&t), Some((42, "default/b".to_string())));
        assert_eq!(decode_continue("not base64!"), None);
    }

    #[test]
    fn resource_version_is_never_stored() {
        let bytes = encode(&json!({"metadata": {"name": "a", "resourceVersion": "7"}}));
        assert_eq!(bytes, br#"{"metadata":{"name":"a"}}"#);
    }

    #[test]
    fn an_object_leaving_the_selector_is_reported_deleted() {
        let kv = |v: &str, rev| Kv {
            key: "/registry/pods/d/a".into(),
            value: v.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: rev,
        };
        let ev = etcd::WatchEvent {
            deleted: false,
            kv: kv(r#"{"metadata":{"labels":{"app":"x"}}}"#, 5),
            prev: Some(kv(r#"{"metadata":{"labels":{"app":"web"}}}"#, 4)),
        };
        let filter: Filter = Arc::new(|o: &Value| o["metadata"]["labels"]["app"] == "web");
        let Some(WatchOut::Event { kind, .. }) = to_watch_out(&change_of(ev), &filter, "v1") else {
            panic!("expected an event")
        };
        assert_eq!(kind, "DELETED");
    }
}
