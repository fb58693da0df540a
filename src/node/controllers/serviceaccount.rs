//! The ServiceAccount controller and the root CA publisher: every active namespace gets a
//! `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap, made again if deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::{Error, Result};

pub const DEFAULT_ACCOUNT: &str = "default";
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The annotation upstream's publisher puts on the ConfigMap.
const ROOT_CA_DESCRIPTION: &str = "kubernetes.io/description";

pub struct Ctx {
    pub client: kube::Client,
    /// The cluster CA certificate (PEM), if the node has it.
    pub ca: Option<String>,
}

/// The ConfigMap upstream's root-ca-cert-publisher keeps in every namespace.
pub fn root_ca_config_map(ns: &str, ca: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIG_MAP.into()),
            namespace: Some(ns.into()),
            annotations: Some(BTreeMap::from([(
                ROOT_CA_DESCRIPTION.to_string(),
                "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("ca.crt".to_string(), ca.to_string())])),
        ..Default::default()
    }
}

async fn create_missing<K>(api: Api<K>, obj: &K, what: String) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    match api.get_opt(&name).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err(Error::Api(what, e)),
    }
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        // 409: made meanwhile; 403/404: the namespace is being deleted.
        Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 409) => Ok(()),
        Err(e) => Err(Error::Api(what, e)),
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_ACCOUNT.into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    create_missing(
        Api::namespaced(ctx.client.clone(), &name),
        &sa,
        format!("serviceaccount {name}/{DEFAULT_ACCOUNT}"),
    )
    .await?;
    if let Some(ca) = &ctx.ca {
        create_missing(
            Api::namespaced(ctx.client.clone(), &name),
            &root_ca_config_map(&name, ca),
            format!("configmap {name}/{ROOT_CA_CONFIG_MAP}"),
        )
        .await?;
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    super::common::retry_after("namespace", &ns.metadata, e, Duration::from_secs(2))
}

/// Run until the watches end: a namespace's change, or a change to (or deletion of) its
/// `default` ServiceAccount or root CA ConfigMap, wakes that namespace.
pub async fn run(client: kube::Client, ca: Option<String>) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        ca,
    });
    let by_name = |field: &str| watcher::Config::default().fields(field);
    Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(client.clone()),
        by_name(&format!("metadata.name={DEFAULT_ACCOUNT}")),
        |sa: ServiceAccount| {
            sa.metadata
                .namespace
                .map(|ns| ObjectRef::<Namespace>::new(&ns))
        },
    )
    .watches(
        Api::<ConfigMap>::all(client),
        by_name(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
        |cm: ConfigMap| {
            cm.metadata
                .namespace
                .map(|ns| ObjectRef::<Namespace>::new(&ns))
        },
    )
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_ca_config_map_carries_the_bundle_under_ca_crt() {
        let cm = root_ca_config_map("shop", "-----BEGIN CERTIFICATE-----\n");
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("shop"));
        assert!(cm.data.unwrap()["ca.crt"].starts_with("-----BEGIN"));
    }
}
