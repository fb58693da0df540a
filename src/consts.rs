//! Names, ports, paths and default ranges shared by the host CLI and the node components.

/// Label naming the cluster a Docker object belongs to: the only state Kindling keeps.
pub const LABEL_CLUSTER: &str = "dev.kindling.cluster";
/// Label naming a node container's role (`control-plane` or `worker`).
pub const LABEL_ROLE: &str = "dev.kindling.role";
/// The user-defined bridge network every node joins.
pub const NETWORK_NAME: &str = "kindling";
/// Cluster name used when `--name` is not given.
pub const DEFAULT_CLUSTER_NAME: &str = "kindling";
/// Repository of the node image; the tag is derived from its content.
pub const NODE_IMAGE_REPO: &str = "kindling/node";
/// Base image the node image's Dockerfile starts from.
pub const DEFAULT_BASE_IMAGE: &str = "debian:bookworm-slim";
/// Tag given to a base image bootstrapped from a Debian mirror.
pub const BOOTSTRAPPED_BASE_IMAGE: &str = "kindling/debian-base:bookworm";
/// Debian suite the node image is built on.
pub const DEBIAN_SUITE: &str = "bookworm";

/// The Kubernetes version whose API Kindling speaks.
pub const KUBE_VERSION: &str = "v1.33.0+kindling";
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub const API_SERVER_PORT: u16 = 6443;
pub const KUBELET_PORT: u16 = 10250;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

pub const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/16";

/// Where node components find their configuration and credentials (kubeadm's paths).
pub const NODE_CONFIG_PATH: &str = "/etc/kindling/node.json";
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
pub const ADMIN_KUBECONFIG_PATH: &str = "/etc/kubernetes/admin.conf";
pub const KUBELET_KUBECONFIG_PATH: &str = "/etc/kubernetes/kubelet.conf";
pub const KUBELET_PKI_DIR: &str = "/var/lib/kubelet/pki";
pub const ETCD_DATA_DIR: &str = "/var/lib/etcd";
pub const LOG_DIR: &str = "/var/log/kindling";
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// Taint that keeps ordinary pods off control-plane nodes when workers exist.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often the kubelet reports its node's status and renews its Lease.
pub const NODE_HEARTBEAT_SECONDS: u32 = 10;
