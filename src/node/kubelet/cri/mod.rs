//! The kubelet's side of the Container Runtime Interface: gRPC to containerd's CRI plugin.

pub mod api;
pub mod client;
