//! Tier-2 tests of Services: the `kubernetes` Service, ClusterIP and NodePort allocation with
//! upstream's defaults and refusals, release on delete, and races, with kubectl and kube-rs.

#[path = "common/api.rs"]
mod api;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use api::ApiServer;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn kubectls() -> Vec<PathBuf> {
    [api::kubectl_current(), api::kubectl_120()]
        .into_iter()
        .flatten()
        .collect()
}

fn ok(s: &ApiServer, kubectl: &Path, args: &[&str]) -> String {
    let (success, out, err) = s.kubectl(kubectl, args);
    assert!(success, "{kubectl:?} {args:?} failed: {err}\n{out}");
    out
}

fn fails(s: &ApiServer, kubectl: &Path, args: &[&str]) -> String {
    let (success, out, err) = s.kubectl(kubectl, args);
    assert!(!success, "{kubectl:?} {args:?} should have failed:\n{out}");
    err
}

fn get_json(s: &ApiServer, kubectl: &Path, args: &[&str]) -> Value {
    let mut a = vec!["get", "-o", "json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(s, kubectl, &a)).unwrap()
}

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

#[tokio::test]
async fn the_kubernetes_service_takes_the_first_address_and_points_at_the_api_server() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let k = svcs.get("kubernetes").await.unwrap();
    let spec = k.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.1".to_string()]));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("https"), 443));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(s.port as i32))
    );
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let ep = eps.get("kubernetes").await.unwrap();
    let subset = &ep.subsets.unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "127.0.0.1");
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, s.port as i32);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice = slices.get("kubernetes").await.unwrap();
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.endpoints[0].addresses, vec!["127.0.0.1".to_string()]);
    assert_eq!(
        slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
        "kubernetes"
    );
    // Asking for the address the kubernetes Service holds is refused as upstream words it.
    for kubectl in kubectls() {
        let err = fails(
            &s,
            &kubectl,
            &[
                "create",
                "service",
                "clusterip",
                "taken",
                "--tcp=80:80",
                "--clusterip=10.96.0.1",
            ],
        );
        assert!(
            err.contains("Service \"taken\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.1\"}: failed to allocate IP 10.96.0.1: provided IP is already allocated"),
            "{kubectl:?}: {err}"
        );
    }
}

#[tokio::test]
async fn kubectl_create_service_allocates_addresses_and_node_ports_with_upstream_defaults() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    for (i, kubectl) in kubectls().iter().enumerate() {
        let name = |n: &str| format!("{n}-{i}");
        ok(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "clusterip",
                &name("web"),
                "--tcp=80:8080",
            ],
        );
        let web = get_json(&s, kubectl, &["service", &name("web")]);
        let spec = &web["spec"];
        let ip = spec["clusterIP"].as_str().unwrap();
        assert!(ip.starts_with("10.96.") && ip != "10.96.0.1", "{ip}");
        assert_eq!(spec["clusterIPs"], json!([ip]));
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 8080);

        let np = name("np");
        ok(
            &s,
            kubectl,
            &["create", "service", "nodeport", &np, "--tcp=80:80"],
        );
        let got = get_json(&s, kubectl, &["service", &np]);
        let port = got["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&port), "{port}");
        assert_eq!(got["spec"]["externalTrafficPolicy"], "Cluster");
        // `kubectl get` shows the node port beside the port, as upstream prints it.
        let table = ok(&s, kubectl, &["get", "service", &np]);
        assert!(table.contains(&format!("80:{port}/TCP")), "{table}");

        let fixed = format!("{}", 30100 + i);
        ok(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "nodeport",
                &name("fixed"),
                "--tcp=80:80",
                "--node-port",
                &fixed,
            ],
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "nodeport",
                &name("again"),
                "--tcp=80:80",
                "--node-port",
                &fixed,
            ],
        );
        assert!(
            err.contains(&format!("Service \"{}\" is invalid: spec.ports[0].nodePort: Invalid value: {fixed}: provided port is already allocated", name("again"))),
            "{err}"
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "nodeport",
                &name("far"),
                "--tcp=80:80",
                "--node-port",
                "40000",
            ],
        );
        assert!(
            err.contains("spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"),
            "{err}"
        );
        let err = fails(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "clusterip",
                &name("out"),
                "--tcp=80:80",
                "--clusterip",
                "1.1.1.1",
            ],
        );
        assert!(
            err.contains("failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16"),
            "{err}"
        );

        ok(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "clusterip",
                &name("headless"),
                "--clusterip=None",
            ],
        );
        let h = get_json(&s, kubectl, &["service", &name("headless")]);
        assert_eq!(h["spec"]["clusterIP"], "None");
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));

        ok(
            &s,
            kubectl,
            &[
                "create",
                "service",
                "externalname",
                &name("ext"),
                "--external-name",
                "example.com",
            ],
        );
        let e = get_json(&s, kubectl, &["service", &name("ext")]);
        assert!(e["spec"]["clusterIP"].is_null(), "{e}");
        let table = ok(&s, kubectl, &["get", "service", &name("ext")]);
        assert!(table.contains("example.com"), "{table}");

        // The address is the Service's for good.
        let err = fails(
            &s,
            kubectl,
            &[
                "patch",
                "service",
                &name("web"),
                "-p",
                r#"{"spec":{"clusterIP":"10.96.7.7"}}"#,
            ],
        );
        assert!(
            err.contains(&format!("Service \"{}\" is invalid: spec.clusterIPs[0]: Invalid value: []string{{\"10.96.7.7\"}}: may not change once set", name("web"))),
            "{err}"
        );
    }
}

#[tokio::test]
async fn deleting_a_service_releases_its_address_and_node_port() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let spec = json!({"type": "NodePort", "clusterIP": "10.96.0.50",
        "ports": [{"port": 80, "nodePort": 30050}]});
    svcs.create(&PostParams::default(), &svc("first", spec.clone()))
        .await
        .unwrap();
    let e = svcs
        .create(&PostParams::default(), &svc("second", spec.clone()))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = e else {
        panic!("expected a Status, got {e:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    svcs.delete("first", &DeleteParams::default())
        .await
        .unwrap();
    let second = svcs
        .create(&PostParams::default(), &svc("second", spec))
        .await
        .unwrap();
    assert_eq!(
        second.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.50")
    );

    // Changing the type allocates and releases node ports.
    svcs.create(
        &PostParams::default(),
        &svc("flip", json!({"ports": [{"port": 8080}]})),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();
    let np = svcs
        .patch(
            "flip",
            &pp,
            &Patch::Merge(json!({"spec": {"type": "NodePort"}})),
        )
        .await
        .unwrap();
    let port = np.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    let back = svcs
        .patch(
            "flip",
            &pp,
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    assert_eq!(back.spec.unwrap().ports.unwrap()[0].node_port, None);
    // Released: someone else may now ask for it.
    svcs.create(
        &PostParams::default(),
        &svc(
            "taker",
            json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": port}]}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn concurrent_creates_never_share_an_address_or_a_node_port() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let client = s.client().await;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let svcs = svcs.clone();
            tokio::spawn(async move {
                svcs.create(
                    &PostParams::default(),
                    &svc(
                        &format!("s{i}"),
                        json!({"type": "NodePort", "ports": [{"port": 80}]}),
                    ),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let spec = t.await.unwrap().spec.unwrap();
        assert!(ips.insert(spec.cluster_ip.unwrap()));
        assert!(ports.insert(spec.ports.unwrap()[0].node_port.unwrap()));
    }
    // Racing for the same explicit address: exactly one wins.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let svcs = svcs.clone();
            tokio::spawn(async move {
                svcs.create(
                    &PostParams::default(),
                    &svc(
                        &format!("r{i}"),
                        json!({"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}),
                    ),
                )
                .await
                .is_ok()
            })
        })
        .collect();
    let mut won = 0;
    for r in racers {
        won += r.await.unwrap() as usize;
    }
    assert_eq!(won, 1);
}
