//! Host-side cluster management: config, the Docker provider, PKI, kubeconfig, lifecycle.

pub mod config;
pub mod create;
pub mod delete;
pub mod docker;
pub mod info;
pub mod kubeconfig;
pub mod load;
pub mod pki;
