//! Kindling: a teaching sandbox that runs Kubernetes-style clusters in Docker containers.

pub mod book;
pub mod cluster;
pub mod consts;
pub mod grade;
pub mod lab;
pub mod learn;
pub mod node;
pub mod nodeimage;
pub mod progress;
pub mod yaml;
