//! kube-apiserver: the Kubernetes API over TLS with client certificates, stored in etcd.

/// Command-line flags, named like upstream kube-apiserver's.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "kube-apiserver", about = "Kindling's Kubernetes API server")]
pub struct Args {
    /// etcd client URL (the JSON gateway of etcd v3 is used).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = crate::consts::API_SERVER_PORT)]
    pub secure_port: u16,
    /// Serving certificate (PEM).
    #[arg(long, default_value = "/etc/kubernetes/pki/apiserver.crt")]
    pub tls_cert_file: std::path::PathBuf,
    /// Serving key (PEM).
    #[arg(long, default_value = "/etc/kubernetes/pki/apiserver.key")]
    pub tls_private_key_file: std::path::PathBuf,
    /// CA whose client certificates are accepted (PEM).
    #[arg(long, default_value = "/etc/kubernetes/pki/ca.crt")]
    pub client_ca_file: std::path::PathBuf,
    /// Range ClusterIPs are allocated from.
    #[arg(long, default_value = crate::consts::DEFAULT_SERVICE_SUBNET)]
    pub service_cluster_ip_range: String,
    /// Address advertised to clients (endpoints of the `kubernetes` Service).
    #[arg(long)]
    pub advertise_address: Option<std::net::IpAddr>,
}

/// Serve until the process is stopped.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("kube-apiserver is not built yet")
}
