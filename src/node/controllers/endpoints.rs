//! The Endpoints controller: for each Service with a selector, an Endpoints object of the same
//! name listing ready pods in `addresses` and the others in `notReadyAddresses`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::common;
use super::{Error, Result};

/// The label upstream puts on a headless Service's Endpoints and EndpointSlices.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

pub struct Ctx {
    pub client: kube::Client,
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's selector as a list selector, or None when it has none (such Services'
/// endpoints are managed by hand and left alone, as upstream does).
pub fn selector_query(svc: &Service) -> Option<String> {
    let sel = svc.spec.as_ref()?.selector.as_ref()?;
    Some(
        sel.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The Service's labels plus the headless marker, as upstream labels what it publishes.
pub fn published_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = svc.metadata.labels.clone().unwrap_or_default();
    if is_headless(svc) {
        l.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        l.remove(HEADLESS_LABEL);
    }
    l
}

pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The subsets upstream's `syncService` and `RepackSubsets` produce: each pod's address with
/// the ports it resolves, addresses grouped by identical port sets, sorted by IP.
pub fn subsets_for(svc: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let name = svc.metadata.name.clone().unwrap_or_default();
    let svc_ports = spec.ports.clone().unwrap_or_default();
    // Keyed by the port set, so addresses sharing ports share a subset.
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, EndpointSubset)> = BTreeMap::new();
    for pod in pods {
        if !common::should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let addr = EndpointAddress {
            ip,
            hostname: common::endpoint_hostname(pod, &name, svc.metadata.namespace.as_deref()),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    port: common::find_port(pod, p)?,
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        // A pod resolving none of a Service's ports serves nothing through it.
        if ports.is_empty() && !(svc_ports.is_empty() && is_headless(svc)) {
            continue;
        }
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups.entry(key).or_insert_with(|| {
            (
                ports.clone(),
                EndpointSubset {
                    ports: (!ports.is_empty()).then(|| ports.clone()),
                    ..Default::default()
                },
            )
        });
        let list = if publish_not_ready || common::is_ready(pod) {
            &mut entry.1.addresses
        } else {
            &mut entry.1.not_ready_addresses
        };
        list.get_or_insert_with(Vec::new).push(addr);
    }
    groups
        .into_values()
        .map(|(_, mut s)| {
            for l in [&mut s.addresses, &mut s.not_ready_addresses]
                .into_iter()
                .flatten()
            {
                l.sort_by(|a, b| a.ip.cmp(&b.ip));
            }
            s
        })
        .collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(query) = selector_query(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&query))
        .await
        .map_err(|e| Error::Api(format!("pods for service {ns}/{name}"), e))?
        .items;
    let subsets = subsets_for(&svc, &pods);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let labels = published_labels(&svc);
    let current = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::Api(format!("endpoints {ns}/{name}"), e))?;
    let subsets = (!subsets.is_empty()).then_some(subsets);
    let result = match current {
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                subsets,
            };
            api.create(&PostParams::default(), &ep).await.map(|_| ())
        }
        Some(mut ep) => {
            let same_labels = ep.metadata.labels.clone().unwrap_or_default() == labels;
            let same_subsets = ep.subsets.clone().filter(|s| !s.is_empty()) == subsets;
            if same_labels && same_subsets {
                return Ok(Action::await_change());
            }
            ep.metadata.labels = Some(labels);
            ep.subsets = subsets;
            // The read's resourceVersion makes this a compare-and-swap; a conflict retries.
            api.replace(&name, &PostParams::default(), &ep)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        Err(e) => Err(Error::Api(format!("endpoints {ns}/{name}"), e)),
    }
}

fn error_policy(svc: Arc<Service>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    super::common::retry_after(
        "endpoints for service",
        &svc.metadata,
        e,
        Duration::from_secs(1),
    )
}

/// The Services in the pod's namespace whose selector matches it.
pub fn services_selecting(store: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let labels = common::labels_of(&pod.metadata);
    store
        .state()
        .iter()
        .filter(|s| s.metadata.namespace == pod.metadata.namespace)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.selector.as_ref())
                .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Maps pod changes to Services: those selecting the pod now and those that selected it at
/// its last change, since a watch event carries only the new labels and a relabelled pod
/// (`kubectl label pod x app-`) must leave the Services it left.
pub fn pod_mapper(
    store: Store<Service>,
) -> impl Fn(Pod) -> Vec<ObjectRef<Service>> + Send + Sync + 'static {
    let last: Mutex<HashMap<String, Vec<ObjectRef<Service>>>> = Mutex::default();
    move |pod: Pod| {
        let now = services_selecting(&store, &pod);
        let key = pod.metadata.uid.clone().unwrap_or_default();
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let before = if now.is_empty() {
            last.remove(&key)
        } else {
            last.insert(key, now.clone())
        };
        // A watch event cannot tell a deleted pod from a changed one, so entries of deleted
        // pods linger; starting over now and then bounds that at the cost of one missed wake.
        if last.len() > MAPPER_MEMORY {
            last.clear();
        }
        let mut all = now;
        all.extend(before.into_iter().flatten());
        all.sort_by_key(|r| r.to_string());
        all.dedup();
        all
    }
}

/// How many pods' last Services [`pod_mapper`] remembers.
const MAPPER_MEMORY: usize = 20_000;

/// A deleted Service's Endpoints go with it (they carry no owner reference, as upstream's).
async fn delete_with_services(client: kube::Client) {
    let services = Api::<Service>::all(client.clone());
    let stream = watcher::watcher(services, watcher::Config::default());
    let _ = stream
        .try_for_each(|ev| {
            let client = client.clone();
            async move {
                if let watcher::Event::Delete(svc) = ev
                    && selector_query(&svc).is_some()
                {
                    let ns = svc.metadata.namespace.clone().unwrap_or_default();
                    let name = svc.metadata.name.clone().unwrap_or_default();
                    let _ = Api::<Endpoints>::namespaced(client, &ns)
                        .delete(&name, &DeleteParams::default())
                        .await;
                }
                Ok(())
            }
        })
        .await;
}

/// Run the controller until its watches end: a pod change wakes the Services selecting it,
/// an Endpoints change (someone editing it) wakes its Service.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let main = controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            pod_mapper(store),
        )
        .watches(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
            |ep: Endpoints| {
                ep.metadata.name.clone().map(|n| {
                    ObjectRef::<Service>::new(&n)
                        .within(ep.metadata.namespace.as_deref().unwrap_or_default())
                })
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    tokio::join!(main, delete_with_services(client));
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    pub fn svc(extra: serde_json::Value) -> Service {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20",
                     "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                               {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"}]}
        });
        if let Some(m) = extra.as_object() {
            for (k, val) in m {
                v["spec"][k] = val.clone();
            }
        }
        serde_json::from_value(v).unwrap()
    }

    pub fn pod(name: &str, ip: &str, ready: bool, port_name: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"),
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "i",
                     "ports": [{"name": port_name, "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn ready_pods_are_addresses_and_the_rest_not_ready_addresses_with_named_ports_resolved() {
        let pods = [
            pod("b", "10.244.1.3", true, "web"),
            pod("a", "10.244.1.2", true, "web"),
            pod("c", "10.244.2.2", false, "web"),
        ];
        let subsets = subsets_for(&svc(json!({})), &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ips: Vec<_> = s
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.244.1.2", "10.244.1.3"]);
        let not_ready: Vec<_> = s
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect();
        assert_eq!(not_ready, ["10.244.2.2"]);
        let ports: Vec<_> = s
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref().unwrap(), p.port))
            .collect();
        assert_eq!(ports, [("http", 8080), ("metrics", 9100)]);
        let target = s.addresses.as_ref().unwrap()[0].target_ref.clone().unwrap();
        assert_eq!(
            (target.kind.as_deref(), target.name.as_deref()),
            (Some("Pod"), Some("a"))
        );
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_as_ready_and_ports_split_subsets() {
        let pods = [
            pod("a", "10.244.1.2", false, "web"),
            pod("b", "10.244.1.3", true, "other"),
        ];
        let subsets = subsets_for(&svc(json!({"publishNotReadyAddresses": true})), &pods);
        // b has no port named "web", so it serves only metrics: two port sets.
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        assert!(subsets.iter().all(|s| s.not_ready_addresses.is_none()));
        let only_metrics = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap().len() == 1)
            .unwrap();
        assert_eq!(only_metrics.addresses.as_ref().unwrap()[0].ip, "10.244.1.3");
    }

    #[test]
    fn a_relabelled_pod_still_wakes_the_service_it_left() {
        let (reader, mut writer) = kube::runtime::reflector::store::<Service>();
        writer.apply_watcher_event(&watcher::Event::Apply(svc(json!({}))));
        let map = pod_mapper(reader);
        let mut p = pod("a", "10.244.1.2", true, "web");
        assert_eq!(map(p.clone()).len(), 1);
        p.metadata.labels = Some(BTreeMap::from([("app".into(), "debug".into())]));
        assert_eq!(map(p.clone()).len(), 1, "the Service it left");
        assert!(map(p).is_empty(), "and only once");
    }

    #[test]
    fn pods_without_an_ip_or_terminating_are_left_out() {
        let mut no_ip = pod("a", "", true, "web");
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let mut going = pod("b", "10.244.1.3", true, "web");
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert!(subsets_for(&svc(json!({})), &[no_ip, going]).is_empty());
    }
}
