//! The components that run inside a node container, all from this one binary.

pub mod apiserver;
pub mod config;
pub mod controllers;
pub mod dns;
pub mod flannel;
pub mod insecure_tls;
pub mod kubelet;
pub mod net;
pub mod proxy;
pub mod scheduler;
pub mod supervisor;
pub mod upgrade;

/// `t` cut to whole seconds, as upstream writes a metav1.Time (Go's RFC 3339 format drops the
/// fraction). Rounding instead could date an effect (a Job's next pod) before its cause (the
/// exit of the last one).
pub fn whole_seconds(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// Now, as a metav1.Time is written.
pub fn now_seconds() -> jiff::Timestamp {
    whole_seconds(jiff::Timestamp::now())
}

/// A Kubernetes client authenticated by the kubeconfig file at `path` (a node's own credentials).
pub async fn client_from(path: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}
