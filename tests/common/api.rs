//! Helpers for the API server tests: a real etcd and the real binary as kube-apiserver on free
//! ports, certificates from the cluster PKI, a kubeconfig, kubectl runs and raw TLS requests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kindling::cluster::kubeconfig::Entry;
use kindling::cluster::pki::{Ca, CertPair};
use std::os::unix::process::CommandExt;
use tokio_rustls::rustls::{
    self, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `Some(path)` when the tool exists; in CI a missing tool fails the test, elsewhere it skips.
pub fn require(what: &str, path: Option<PathBuf>) -> Option<PathBuf> {
    if path.is_none() {
        assert!(!in_ci(), "{what} is required in CI but missing");
        eprintln!("skipping: {what} is not available here");
    }
    path
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn tool(env: &str, in_target: &str, path_name: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools")
        .join(in_target);
    if local.is_file() {
        return Some(local);
    }
    path_name.and_then(on_path)
}

/// The current kubectl: `KINDLING_KUBECTL`, `target/tools/kubectl`, or `kubectl` on PATH.
pub fn kubectl_current() -> Option<PathBuf> {
    require(
        "kubectl",
        tool("KINDLING_KUBECTL", "kubectl", Some("kubectl")),
    )
}

/// Debian's kubectl 1.20 (what runs inside nodes): `KINDLING_KUBECTL_120` or `target/tools/kubectl-1.20`.
pub fn kubectl_120() -> Option<PathBuf> {
    require(
        "kubectl 1.20",
        tool("KINDLING_KUBECTL_120", "kubectl-1.20", None),
    )
}

pub fn etcd_binary() -> Option<PathBuf> {
    let found = std::env::var_os("KINDLING_ETCD")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/etcd")).filter(|p| p.is_file()))
        .or_else(|| on_path("etcd"));
    require("etcd", found)
}

/// The real binary as kube-apiserver on `port`, with the certificates in `dir`; its output is
/// appended to `dir/apiserver.{log,err}` so restarts keep the earlier runs' lines.
fn spawn_apiserver(dir: &Path, etcd_url: &str, port: u16) -> Child {
    let log = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap()
    };
    Command::new(env!("CARGO_BIN_EXE_kindling"))
        .arg0("kube-apiserver")
        .args(["--etcd-servers", etcd_url, "--bind-address", "127.0.0.1"])
        .args(["--secure-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(dir.join("apiserver.crt"))
        .arg("--tls-private-key-file")
        .arg(dir.join("apiserver.key"))
        .arg("--client-ca-file")
        .arg(dir.join("ca.crt"))
        .args(["--advertise-address", "127.0.0.1"])
        .stdout(log("apiserver.log"))
        .stderr(log("apiserver.err"))
        .spawn()
        .expect("kube-apiserver starts")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Starts etcd on fresh ports and waits until it listens. Ports picked by binding port 0 can
/// be taken by a parallel test before etcd binds them; then etcd exits and is started again on
/// other ports.
fn spawn_etcd(etcd_bin: &Path, dir: &Path) -> (Child, String) {
    for _ in 0..5 {
        let (client_port, peer_port) = (free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("etcd"));
        let mut etcd = Command::new(etcd_bin)
            .args(["--name", "default", "--data-dir"])
            .arg(dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(log("etcd.log"))
            .stderr(log("etcd.err"))
            .spawn()
            .expect("etcd starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", client_port)).is_ok() {
                return (etcd, etcd_url);
            }
            if etcd.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = etcd.kill();
        let _ = etcd.wait();
    }
    let err = std::fs::read_to_string(dir.join("etcd.err")).unwrap_or_default();
    panic!("etcd did not start after 5 tries; its log:\n{err}");
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running etcd + kube-apiserver pair, stopped and cleaned up on drop.
pub struct ApiServer {
    pub dir: PathBuf,
    pub port: u16,
    pub etcd_url: String,
    pub ca: Ca,
    pub admin: CertPair,
    pub kubeconfig: PathBuf,
    etcd: Child,
    apiserver: Child,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.etcd.kill();
        let _ = self.apiserver.wait();
        let _ = self.etcd.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ApiServer {
    /// Start etcd and the API server, or `None` (skip) when etcd is missing outside CI.
    pub async fn start() -> Option<ApiServer> {
        let etcd_bin = etcd_binary()?;
        let dir = std::env::temp_dir().join(format!(
            "kindling-api-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let (etcd, etcd_url) = spawn_etcd(&etcd_bin, &dir);

        let ca = Ca::generate("test").unwrap();
        let serving = ca
            .issue_serving(
                "kube-apiserver",
                &["localhost".into()],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        let admin = ca
            .issue_client("kubernetes-admin", &["system:masters"])
            .unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        write("ca.crt", &ca.pair.cert_pem);
        write("apiserver.crt", &serving.cert_pem);
        write("apiserver.key", &serving.key_pem);
        let apiserver = spawn_apiserver(&dir, &etcd_url, port);
        let kubeconfig = dir.join("kubeconfig");
        let server = ApiServer {
            port,
            etcd_url,
            kubeconfig: kubeconfig.clone(),
            admin: admin.clone(),
            ca,
            dir,
            etcd,
            apiserver,
        };
        std::fs::write(&kubeconfig, server.kubeconfig_for(&admin)).unwrap();
        server.wait_ready().await;
        Some(server)
    }

    /// Stop the API server; etcd keeps running (to test clients across a restart).
    pub fn stop_apiserver(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
    }

    /// Start the API server again on `port` (its old one or another) and wait until it is
    /// ready; `url()` and new clients then use that port.
    pub async fn start_apiserver_on(&mut self, port: u16) {
        self.stop_apiserver();
        self.port = port;
        self.apiserver = spawn_apiserver(&self.dir, &self.etcd_url, port);
        std::fs::write(&self.kubeconfig, self.kubeconfig_for(&self.admin)).unwrap();
        self.wait_ready().await;
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig that authenticates as the holder of `cert`.
    pub fn kubeconfig_for(&self, cert: &CertPair) -> String {
        Entry {
            name: "kindling-test".into(),
            server: self.url(),
            ca_pem: self.ca.pair.cert_pem.clone(),
            client_cert_pem: cert.cert_pem.clone(),
            client_key_pem: cert.key_pem.clone(),
        }
        .render()
    }

    /// A kubeconfig file for a user named `user` in `groups`.
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> PathBuf {
        let cert = self.ca.issue_client(user, groups).unwrap();
        let path = self
            .dir
            .join(format!("kubeconfig-{}", user.replace(':', "-")));
        std::fs::write(&path, self.kubeconfig_for(&cert)).unwrap();
        path
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self
                .request("GET", "/readyz", Some(&self.admin), None)
                .await
            {
                return;
            }
            if Instant::now() > deadline {
                let logs =
                    std::fs::read_to_string(self.dir.join("apiserver.err")).unwrap_or_default();
                panic!("the API server did not become ready in 30 s; its log:\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One HTTPS request, optionally with a client certificate; status and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        client: Option<&CertPair>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, String), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.pair.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
                tcp,
            )
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        let bytes = match body {
            Some((ct, b)) => {
                req = req.header("content-type", ct);
                b
            }
            None => Vec::new(),
        };
        let resp = send
            .send_request(req.body(Full::new(Bytes::from(bytes))).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Run kubectl against this server; (success, stdout, stderr).
    pub fn kubectl(&self, kubectl: &Path, args: &[&str]) -> (bool, String, String) {
        self.kubectl_with(kubectl, &self.kubeconfig, args)
    }

    pub fn kubectl_with(
        &self,
        kubectl: &Path,
        kubeconfig: &Path,
        args: &[&str],
    ) -> (bool, String, String) {
        let out = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join(format!(
                "cache-{}",
                kubectl.file_name().unwrap().to_string_lossy()
            )))
            .args(["--request-timeout", "20s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A kube-rs client as the admin.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}
