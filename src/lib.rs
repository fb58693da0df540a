//! Kindling: a teaching sandbox that runs Kubernetes-style clusters in Docker containers.

pub mod cluster;
pub mod consts;
pub mod node;
pub mod nodeimage;
pub mod progress;
