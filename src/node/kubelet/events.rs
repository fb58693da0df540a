//! Events about pods (Pulled, Created, Started, Killing, BackOff, Failed), posted to the core
//! events API with the fields `kubectl describe` shows; repeats are merged by count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// An event's identity for merging repeats: namespace, pod uid, fieldPath, reason, message.
type EventKey = (String, String, String, String, String);
/// What was posted for a key: event name, count, first timestamp.
type Posted = (String, i32, String);

/// Posts events in the background so a pod's start never waits on them.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
    seen: Arc<Mutex<HashMap<EventKey, Posted>>>,
}

impl Recorder {
    pub fn new(client: kube::Client, node: &str) -> Self {
        Recorder {
            client,
            node: node.into(),
            seen: Arc::default(),
        }
    }

    /// Records an event about `pod`, or about one of its containers when `container` is given.
    pub fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: Kind,
        reason: &str,
        message: String,
    ) {
        let p = super::spec::pod_ref(pod);
        let (ns, name, uid) = (
            p.namespace.to_string(),
            p.name.to_string(),
            p.uid.to_string(),
        );
        let field_path = container.map(|c| {
            let init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|ic| ic.iter().any(|x| x.name == c));
            if init {
                format!("spec.initContainers{{{c}}}")
            } else {
                format!("spec.containers{{{c}}}")
            }
        });
        let now = jiff::Timestamp::now();
        let now_s = crate::node::whole_seconds(now).to_string();
        let key = (
            ns.clone(),
            uid.clone(),
            field_path.clone().unwrap_or_default(),
            reason.to_string(),
            message.clone(),
        );
        let (event_name, count, first) = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() > 4096 {
                // Forget old history rather than grow without bound.
                seen.clear();
            }
            let e = seen.entry(key).or_insert_with(|| {
                (
                    format!("{name}.{:x}", now.as_nanosecond()),
                    0,
                    now_s.clone(),
                )
            });
            e.1 += 1;
            e.clone()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let node = self.node.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            let result = if count > 1 {
                let patch = json!({"count": count, "lastTimestamp": now_s});
                api.patch(&event_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            } else {
                let mut involved = json!({"kind": "Pod", "apiVersion": "v1", "namespace": ns,
                                          "name": name, "uid": uid});
                if let Some(f) = field_path {
                    involved["fieldPath"] = json!(f);
                }
                let ev = json!({
                    "metadata": {"name": event_name, "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "source": {"component": "kubelet", "host": node},
                    "firstTimestamp": first,
                    "lastTimestamp": now_s,
                    "count": count,
                    "type": match kind { Kind::Normal => "Normal", Kind::Warning => "Warning" },
                    "reportingComponent": "kubelet",
                    "reportingInstance": node,
                });
                match serde_json::from_value::<Event>(ev) {
                    Ok(ev) => api.create(&PostParams::default(), &ev).await.map(|_| ()),
                    Err(e) => {
                        eprintln!("kubelet: could not build event {reason}: {e}");
                        Ok(())
                    }
                }
            };
            if let Err(e) = result {
                eprintln!("kubelet: could not post event {reason} for pod {name}: {e}");
            }
        });
    }
}
