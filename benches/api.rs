//! API server benchmark against a real etcd: 1000 pod creates from a few concurrent clients, a
//! list of them all, and one watch fanned out to 50 watchers. Prints figures; fails when creates
//! plus the list exceed the 10 s budget. Run with `cargo bench --bench api`.

#[path = "../tests/common/api.rs"]
mod api;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// Pods created.
const PODS: usize = 1000;
/// Clients creating at once.
const CLIENTS: usize = 8;
/// Watchers the watch fans out to.
const WATCHERS: usize = 50;
/// Creates plus the list must fit in this.
const BUDGET: Duration = Duration::from_secs(10);

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("bench-{i:04}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
            "ports": [{"containerPort": 8080}], "env": [{"name": "N", "value": i.to_string()}]}]}}))
    .unwrap()
}

#[tokio::main]
async fn main() {
    let Some(server) = api::ApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let before = pods
        .list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let start = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let pods = pods.clone();
            tokio::spawn(async move {
                for i in (w..PODS).step_by(CLIENTS) {
                    pods.create(&PostParams::default(), &pod(i)).await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let creates = start.elapsed();

    let t = Instant::now();
    let listed = pods.list(&ListParams::default()).await.unwrap();
    let list = t.elapsed();
    assert_eq!(listed.items.len(), PODS);

    // Every watcher starts from before the creates, so each must see all of them.
    let t = Instant::now();
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let pods = pods.clone();
            let rv = before.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                let stream = pods.watch(&WatchParams::default(), &rv).await.unwrap();
                futures::pin_mut!(stream);
                while seen < PODS {
                    match stream.try_next().await.unwrap() {
                        Some(WatchEvent::Added(_)) => seen += 1,
                        Some(_) => {}
                        None => panic!("the watch ended after {seen} events"),
                    }
                }
            })
        })
        .collect();
    futures::stream::iter(watchers)
        .for_each_concurrent(None, |w| async { w.await.unwrap() })
        .await;
    let fan_out = t.elapsed();

    let total = creates + list;
    println!("api benchmark: {PODS} pods, {CLIENTS} clients, {WATCHERS} watchers");
    println!(
        "  creates:        {:.2} s ({:.0} creates/s)",
        creates.as_secs_f64(),
        PODS as f64 / creates.as_secs_f64()
    );
    println!("  list:           {} ms", list.as_millis());
    println!(
        "  creates + list: {:.2} s (budget {} s)",
        total.as_secs_f64(),
        BUDGET.as_secs()
    );
    println!(
        "  watch fan-out:  {} ms until all {WATCHERS} watchers saw all {PODS} events",
        fan_out.as_millis()
    );
    assert!(
        total <= BUDGET,
        "over budget: {:.2} s for {PODS} creates and a list",
        total.as_secs_f64()
    );
}
