//! The components that run inside a node container, all from this one binary.

pub mod apiserver;
pub mod config;
pub mod controllers;
pub mod flannel;
pub mod kubelet;
pub mod net;
pub mod supervisor;
