//! Host-side cluster management: config, the Docker provider, PKI, kubeconfig, lifecycle.

pub mod config;
pub mod docker;
pub mod kubeconfig;
pub mod pki;
