//! The EndpointSlice controller: for each Service with a selector, `discovery.k8s.io/v1`
//! slices (`<svc>-<random>`, at most 100 endpoints each, one per resolved port set) with
//! ready/serving/terminating conditions, as kube-proxy reads them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use super::endpoints::{pod_mapper, pod_ref, published_labels, selector_query};
use super::{Error, Result, common};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

pub struct Ctx {
    pub client: kube::Client,
}

/// Upstream's `podToEndpoint`: terminating pods stay (serving, not ready) so kube-proxy can
/// drain them; publishNotReadyAddresses makes every endpoint ready.
pub fn endpoint_for(svc: &Service, pod: &Pod) -> Endpoint {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = common::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    Endpoint {
        addresses: vec![
            pod.status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default(),
        ],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: common::endpoint_hostname(
            pod,
            svc.metadata.name.as_deref().unwrap_or_default(),
            svc.metadata.namespace.as_deref(),
        ),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_ref(pod)),
        ..Default::default()
    }
}

/// The ports `pod` serves for `svc` (`getEndpointPorts`); unresolvable ones are left out.
pub fn ports_for(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(common::find_port(pod, p)?),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The slices' contents: endpoints grouped by port set, sorted by address, cut at 100.
/// No endpoints at all still gives one empty slice, upstream's placeholder.
pub fn desired(svc: &Service, pods: &[Pod]) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods
        .iter()
        .filter(|p| common::should_be_in_endpoints(p, true))
    {
        let ports = ports_for(svc, pod);
        let key = serde_json::to_string(&ports).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint_for(svc, pod));
    }
    let mut out = Vec::new();
    for (_, (ports, mut eps)) in groups {
        eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        out.push((Vec::new(), Vec::new()));
    }
    out
}

fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l = published_labels(svc);
    l.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    l.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    l
}

fn ports_field(ports: &[EndpointPort]) -> Option<Vec<EndpointPort>> {
    (!ports.is_empty()).then(|| ports.to_vec())
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
    let api_err = |what: String| move |e| Error::Api(what, e);
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&query))
        .await
        .map_err(api_err(format!("pods for service {ns}/{name}")))?
        .items;
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let mut existing = api
        .list(&ListParams::default().labels(&format!(
            "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        )))
        .await
        .map_err(api_err(format!("endpointslices of {ns}/{name}")))?
        .items;
    let labels = slice_labels(&svc);
    let owner = common::controller_ref("v1", "Service", &svc.metadata);
    for (ports, endpoints) in desired(&svc, &pods) {
        let ports = ports_field(&ports);
        // Reuse a slice with the same ports (else any left over), so slices keep their names.
        let reuse = existing
            .iter()
            .position(|s| s.ports == ports)
            .or((!existing.is_empty()).then_some(0));
        match reuse.map(|i| existing.remove(i)) {
            Some(mut slice) => {
                if slice.ports == ports
                    && slice.endpoints == endpoints
                    && slice.metadata.labels.as_ref() == Some(&labels)
                {
                    continue;
                }
                let slice_name = slice.metadata.name.clone().unwrap_or_default();
                slice.ports = ports;
                slice.endpoints = endpoints;
                slice.metadata.labels = Some(labels.clone());
                api.replace(&slice_name, &PostParams::default(), &slice)
                    .await
                    .map_err(api_err(format!("endpointslice {ns}/{slice_name}")))?;
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..Default::default()
                    },
                    address_type: "IPv4".into(),
                    endpoints,
                    ports,
                };
                api.create(&PostParams::default(), &slice)
                    .await
                    .map_err(api_err(format!("endpointslice for {ns}/{name}")))?;
            }
        }
    }
    for stale in existing {
        let slice_name = stale.metadata.name.clone().unwrap_or_default();
        match api.delete(&slice_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::Api(format!("endpointslice {ns}/{slice_name}"), e)),
        }
    }
    Ok(Action::await_change())
}

fn error_policy(svc: Arc<Service>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    super::common::retry_after(
        "endpointslices for service",
        &svc.metadata,
        e,
        Duration::from_secs(1),
    )
}

/// Run the controller until its watches end: a pod change wakes the Services selecting it,
/// a slice change wakes the Service owning it; deleted Services' slices go by their owner
/// reference.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            pod_mapper(store),
        )
        .owns(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::super::endpoints::tests::{pod, svc};
    use super::*;
    use serde_json::json;

    #[test]
    fn slices_carry_conditions_resolved_ports_and_the_pod_reference() {
        let mut going = pod("c", "10.244.2.2", true, "web");
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let pods = [
            pod("b", "10.244.1.3", false, "web"),
            pod("a", "10.244.1.2", true, "web"),
            going,
        ];
        let slices = desired(&svc(json!({})), &pods);
        assert_eq!(slices.len(), 1);
        let (ports, eps) = &slices[0];
        let ports: Vec<_> = ports
            .iter()
            .map(|p| (p.name.as_deref().unwrap(), p.port.unwrap()))
            .collect();
        assert_eq!(ports, [("http", 8080), ("metrics", 9100)]);
        let cond = |i: usize| {
            let c = eps[i].conditions.clone().unwrap();
            (
                eps[i].addresses[0].as_str(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        };
        assert_eq!(cond(0), ("10.244.1.2", true, true, false));
        assert_eq!(cond(1), ("10.244.1.3", false, false, false));
        assert_eq!(cond(2), ("10.244.2.2", false, true, true));
        assert_eq!(eps[0].node_name.as_deref(), Some("w1"));
    }

    #[test]
    fn a_service_with_no_pods_keeps_one_empty_placeholder_slice() {
        let slices = desired(&svc(json!({})), &[]);
        assert_eq!(slices.len(), 1);
        assert!(slices[0].0.is_empty() && slices[0].1.is_empty());
    }

    #[test]
    fn slices_hold_at_most_100_endpoints() {
        let pods: Vec<Pod> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.244.{}.{}", i / 100, i % 100 + 2),
                    true,
                    "web",
                )
            })
            .collect();
        let slices = desired(&svc(json!({})), &pods);
        let sizes: Vec<usize> = slices.iter().map(|s| s.1.len()).collect();
        assert_eq!(sizes, [100, 50]);
        let labels = slice_labels(&svc(json!({"clusterIP": "None"})));
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels["service.kubernetes.io/headless"], "");
    }
}
