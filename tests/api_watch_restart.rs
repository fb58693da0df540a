//! Tier-2 test of a kube-rs watcher across API server restarts: changes made while its server
//! is down (through another API server on the same etcd) and after it returns are each seen
//! exactly once, and the watcher's view ends equal to the server's.

#[path = "common/api.rs"]
mod api;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::ApiServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"k": name}}))
    .unwrap()
}

/// What the watcher told us: its view, and every change event after the first sync.
#[derive(Default)]
struct Seen {
    view: BTreeSet<String>,
    synced: bool,
    relists: usize,
    events: Vec<(String, &'static str)>,
}

async fn create(api: &Api<ConfigMap>, names: &[&str]) {
    for n in names {
        api.create(&PostParams::default(), &cm(n)).await.unwrap();
    }
}

async fn delete(api: &Api<ConfigMap>, names: &[&str]) {
    for n in names {
        api.delete(n, &DeleteParams::default()).await.unwrap();
    }
}

async fn until(seen: &Arc<Mutex<Seen>>, what: &str, check: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(&seen.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_kube_rs_watcher_keeps_a_consistent_view_across_api_server_restarts() {
    let Some(mut s) = ApiServer::start().await else {
        return;
    };
    let home = s.port;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    create(&api, &["a0", "a1", "a2", "a3"]).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    let watched = api.clone();
    let task = tokio::spawn(async move {
        let stream = watcher(watched, watcher::Config::default());
        futures::pin_mut!(stream);
        let mut fresh = BTreeSet::new();
        while let Some(ev) = stream.next().await {
            let Ok(ev) = ev else { continue };
            let mut s = sink.lock().unwrap();
            match ev {
                watcher::Event::Init => fresh.clear(),
                watcher::Event::InitApply(o) => {
                    fresh.insert(o.metadata.name.unwrap());
                }
                watcher::Event::InitDone => {
                    s.view = std::mem::take(&mut fresh);
                    s.relists += usize::from(s.synced);
                    s.synced = true;
                }
                watcher::Event::Apply(o) => {
                    let name = o.metadata.name.unwrap();
                    let kind = if s.view.insert(name.clone()) {
                        "added"
                    } else {
                        "modified"
                    };
                    s.events.push((name, kind));
                }
                watcher::Event::Delete(o) => {
                    let name = o.metadata.name.unwrap();
                    s.view.remove(&name);
                    s.events.push((name, "deleted"));
                }
            }
        }
    });
    until(&seen, "the first sync", |s| s.synced).await;
    create(&api, &["b0"]).await;
    until(&seen, "b0", |s| s.view.contains("b0")).await;

    // Down: changes go through another API server on the same etcd.
    s.start_apiserver_on(api::free_port()).await;
    let other: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    create(&other, &["c0", "c1", "c2"]).await;
    delete(&other, &["a0", "a1"]).await;
    // Back on its port: the watcher resumes, then sees what happens next.
    s.start_apiserver_on(home).await;
    until(&seen, "the changes made while it was away", |s| {
        s.view.contains("c2") && !s.view.contains("a1")
    })
    .await;
    create(&api, &["d0"]).await;
    delete(&api, &["a2", "c0"]).await;
    // A restart in place, with changes right after it.
    s.start_apiserver_on(home).await;
    create(&api, &["e0"]).await;
    delete(&api, &["b0"]).await;
    until(&seen, "the changes after the restarts", |s| {
        s.view.contains("e0") && !s.view.contains("b0")
    })
    .await;

    let truth: BTreeSet<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let s = seen.lock().unwrap();
    assert_eq!(s.view, truth);
    // Each change exactly once, in order per object, and no relist was needed.
    let mut per_object: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, kind) in &s.events {
        per_object.entry(name).or_default().push(kind);
    }
    let expected: BTreeMap<&str, Vec<&str>> = [
        ("a0", vec!["deleted"]),
        ("a1", vec!["deleted"]),
        ("a2", vec!["deleted"]),
        ("b0", vec!["added", "deleted"]),
        ("c0", vec!["added", "deleted"]),
        ("c1", vec!["added"]),
        ("c2", vec!["added"]),
        ("d0", vec!["added"]),
        ("e0", vec!["added"]),
    ]
    .into();
    assert_eq!(per_object, expected, "events: {:?}", s.events);
    assert_eq!(s.relists, 0, "the watcher had to list again");
    task.abort();
}
