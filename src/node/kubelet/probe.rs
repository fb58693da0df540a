//! Liveness, readiness and startup probes, one worker per container instance and probe kind as
//! upstream's prober manager: exec through CRI ExecSync, httpGet and tcpSocket from the node to
//! the pod IP, with upstream's delays, periods, thresholds and `Unhealthy` event wording.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::mpsc;

use super::cri::client::Cri;
use super::events::{Kind as EventKind, Recorder};

/// Upstream's User-Agent for HTTP probes (`kube-probe/<major>.<minor>`).
const USER_AGENT: &str = "kube-probe/1.33";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// As upstream capitalises it in events ("Liveness probe failed: ...").
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
    fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Startup => c.startup_probe.as_ref(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// A probe's settings with upstream's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Counts consecutive results and says when the reported result changes, as upstream's worker.
#[derive(Debug, Default)]
pub struct Run {
    last: Option<Outcome>,
    count: u32,
}

impl Run {
    /// Adds one probe result; returns the result to report once its threshold is reached.
    pub fn add(&mut self, o: Outcome, t: &Timing) -> Option<Outcome> {
        if self.last == Some(o) {
            self.count += 1;
        } else {
            self.last = Some(o);
            self.count = 1;
        }
        let threshold = match o {
            Outcome::Success => t.success_threshold,
            Outcome::Failure => t.failure_threshold,
        };
        (self.count >= threshold).then_some(o)
    }
}

/// One running container the prober looks after.
pub struct Target {
    pub pod: Arc<Pod>,
    pub container: Container,
    pub container_id: String,
    pub pod_ip: String,
    /// When the container started, nanoseconds since the epoch.
    pub started_at: i64,
}

type Key = (String, ProbeKind);

/// The probe workers and their latest results, shared by every pod worker.
pub struct Prober {
    cri: Cri,
    events: Recorder,
    results: Mutex<HashMap<Key, Outcome>>,
    /// Worker per (container id, kind), with the pod uid it belongs to.
    workers: Mutex<HashMap<Key, (String, tokio::task::AbortHandle)>>,
    /// Pod uids whose probe results changed, so their pod workers sync again.
    changed: mpsc::UnboundedSender<String>,
}

impl Prober {
    pub fn new(cri: Cri, events: Recorder) -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let p = Prober {
            cri,
            events,
            results: Mutex::default(),
            workers: Mutex::default(),
            changed: tx,
        };
        (p, rx)
    }

    fn result(&self, id: &str, kind: ProbeKind) -> Option<Outcome> {
        self.results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(id.to_string(), kind))
            .copied()
    }

    /// Whether the container has started: its startup probe succeeded, or it has none.
    pub fn started(&self, c: &Container, id: &str) -> bool {
        c.startup_probe.is_none() || self.result(id, ProbeKind::Startup) == Some(Outcome::Success)
    }

    /// Whether a started container is ready: its readiness probe succeeded, or it has none.
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (c.readiness_probe.is_none()
                || self.result(id, ProbeKind::Readiness) == Some(Outcome::Success))
    }

    /// The probe (liveness or startup) whose failure means the container must be restarted.
    pub fn must_restart(&self, id: &str) -> Option<ProbeKind> {
        [ProbeKind::Startup, ProbeKind::Liveness]
            .into_iter()
            .find(|k| self.result(id, *k) == Some(Outcome::Failure))
    }

    /// Starts the workers for a running container's probes, unless they run already.
    pub fn ensure(self: &Arc<Self>, t: Target) {
        let uid = super::spec::pod_ref(&t.pod).uid.to_string();
        let t = Arc::new(t);
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            let Some(probe) = kind.of(&t.container) else {
                continue;
            };
            let key = (t.container_id.clone(), kind);
            if workers.contains_key(&key) {
                continue;
            }
            let task = tokio::spawn(self.clone().worker(t.clone(), kind, probe.clone()));
            workers.insert(key, (uid.clone(), task.abort_handle()));
        }
    }

    /// Stops the workers (and forgets the results) of `uid`'s containers not in `keep`.
    pub fn retain(&self, uid: &str, keep: &HashSet<String>) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<Key> = workers
            .iter()
            .filter(|(k, (u, _))| u == uid && !keep.contains(&k.0))
            .map(|(k, _)| k.clone())
            .collect();
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        for k in gone {
            if let Some((_, h)) = workers.remove(&k) {
                h.abort();
            }
            results.remove(&k);
        }
    }

    fn set(&self, uid: &str, id: &str, kind: ProbeKind, o: Outcome) {
        let old = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((id.to_string(), kind), o);
        if old != Some(o) {
            let _ = self.changed.send(uid.to_string());
        }
    }

    async fn worker(self: Arc<Self>, t: Arc<Target>, kind: ProbeKind, probe: Probe) {
        let timing = Timing::of(&probe);
        let uid = super::spec::pod_ref(&t.pod).uid.to_string();
        let id = t.container_id.as_str();
        // Until it first succeeds a readiness probe reports not ready, as upstream's does.
        if kind == ProbeKind::Readiness {
            self.set(&uid, id, kind, Outcome::Failure);
        }
        let started = jiff::Timestamp::from_nanosecond(t.started_at as i128)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let first = started + timing.initial_delay;
        let wait = first
            .duration_since(jiff::Timestamp::now())
            .try_into()
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        let mut run = Run::default();
        let mut ticker = tokio::time::interval(timing.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if kind == ProbeKind::Startup && self.started(&t.container, id) {
                return;
            }
            // Liveness and readiness wait for the startup probe, as upstream's workers do.
            if kind != ProbeKind::Startup && !self.started(&t.container, id) {
                continue;
            }
            let Some((outcome, output)) = self.probe_once(&t, &probe, &timing).await else {
                continue;
            };
            if outcome == Outcome::Failure {
                self.events.record(
                    &t.pod,
                    Some(&t.container.name),
                    EventKind::Warning,
                    "Unhealthy",
                    format!("{} probe failed: {output}", kind.label()),
                );
            }
            if let Some(o) = run.add(outcome, &timing) {
                self.set(&uid, id, kind, o);
                // The container will be killed; the next instance gets a new worker.
                if o == Outcome::Failure && kind != ProbeKind::Readiness {
                    return;
                }
            }
        }
    }

    /// Runs the probe once: its outcome and output, or None when the probe itself errored
    /// (upstream throws such results away).
    async fn probe_once(
        &self,
        t: &Target,
        probe: &Probe,
        timing: &Timing,
    ) -> Option<(Outcome, String)> {
        if let Some(exec) = &probe.exec {
            let cmd = exec.command.clone().unwrap_or_default();
            let secs = timing.timeout.as_secs() as i64;
            let call = self.cri.exec_sync(&t.container_id, cmd.clone(), secs);
            let timed_out = || {
                Some((
                    Outcome::Failure,
                    format!("command \"{}\" timed out", cmd.join(" ")),
                ))
            };
            return match tokio::time::timeout(timing.timeout + Duration::from_secs(5), call).await {
                Err(_) => timed_out(),
                Ok(Ok(r)) => {
                    let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                    out.push_str(&String::from_utf8_lossy(&r.stderr));
                    let o = if r.exit_code == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    };
                    Some((o, out))
                }
                Ok(Err(e)) if e.to_string().contains("timeout") => timed_out(),
                Ok(Err(e)) => {
                    eprintln!("kubelet: exec probe of {}: {e}", t.container.name);
                    None
                }
            };
        }
        if let Some(h) = &probe.http_get {
            let host = h
                .host
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| t.pod_ip.clone());
            let port = resolve_port(&h.port, &t.container)?;
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            let https = h.scheme.as_deref() == Some("HTTPS");
            let path = h.path.clone().filter(|p| !p.is_empty());
            return Some(
                http_get(
                    &host,
                    port,
                    path.as_deref(),
                    https,
                    &headers,
                    timing.timeout,
                )
                .await,
            );
        }
        if let Some(s) = &probe.tcp_socket {
            let host = s
                .host
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| t.pod_ip.clone());
            let port = resolve_port(&s.port, &t.container)?;
            return Some(tcp_socket(&host, port, timing.timeout).await);
        }
        // grpc probes: not supported yet; never report a result.
        None
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, c: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(s) => match s.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        },
    }
}

/// The way Go's net package words a failed dial, which is what upstream's messages show.
fn dial_error(addr: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => {
            let text = e.to_string();
            // "No route to host (os error 113)" → "connect: no route to host"
            let text = text.split(" (os error").next().unwrap_or(&text);
            format!("connect: {}", text.to_lowercase())
        }
    };
    format!("dial tcp {addr}: {why}")
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub async fn tcp_socket(host: &str, port: u16, timeout: Duration) -> (Outcome, String) {
    let addr = join_host_port(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => (Outcome::Success, String::new()),
        Ok(Err(e)) => (Outcome::Failure, dial_error(&addr, &e)),
        Err(_) => (Outcome::Failure, format!("dial tcp {addr}: i/o timeout")),
    }
}

/// One GET; 200-399 succeed, as upstream's HTTP prober.
pub async fn http_get(
    host: &str,
    port: u16,
    path: Option<&str>,
    https: bool,
    headers: &[(String, String)],
    timeout: Duration,
) -> (Outcome, String) {
    let addr = join_host_port(host, port);
    let path = match path {
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => format!("/{p}"),
        None => "/".to_string(),
    };
    let url = format!("{}://{addr}{path}", if https { "https" } else { "http" });
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| dial_error(&addr, &e))?;
        let mut req = hyper::Request::get(path.as_str())
            .header("host", &addr)
            .header("user-agent", USER_AGENT)
            .header("accept", "*/*");
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = if https {
            let tls = crate::node::insecure_tls::connect(host, tcp)
                .await
                .map_err(|e| e.to_string())?;
            send(TokioIo::new(tls), req).await?
        } else {
            send(TokioIo::new(tcp), req).await?
        };
        Ok::<_, String>(resp)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => (
            Outcome::Failure,
            format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ),
        ),
        Ok(Err(e)) => (Outcome::Failure, format!("Get \"{url}\": {e}")),
        Ok(Ok(code)) if (200..400).contains(&code) => (Outcome::Success, String::new()),
        Ok(Ok(code)) => (
            Outcome::Failure,
            format!("HTTP probe failed with statuscode: {code}"),
        ),
    }
}

async fn send<T>(
    io: T,
    req: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<u16, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    // Upstream reads (a bounded part of) the body; draining it lets the server finish cleanly.
    let _ = resp.into_body().collect().await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn timing_defaults_are_upstreams() {
        let t = Timing::of(&probe(json!({"exec": {"command": ["true"]}})));
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        assert_eq!(t.initial_delay, Duration::ZERO);
    }

    #[test]
    fn results_change_only_after_their_threshold_in_a_row() {
        let t = Timing::of(&probe(
            json!({"successThreshold": 2, "failureThreshold": 3}),
        ));
        let mut r = Run::default();
        assert_eq!(r.add(Outcome::Failure, &t), None);
        assert_eq!(r.add(Outcome::Failure, &t), None);
        assert_eq!(r.add(Outcome::Success, &t), None);
        assert_eq!(r.add(Outcome::Failure, &t), None);
        assert_eq!(r.add(Outcome::Failure, &t), None);
        assert_eq!(r.add(Outcome::Failure, &t), Some(Outcome::Failure));
        assert_eq!(r.add(Outcome::Success, &t), None);
        assert_eq!(r.add(Outcome::Success, &t), Some(Outcome::Success));
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let c: Container = serde_json::from_value(json!({"name": "c",
            "ports": [{"name": "http", "containerPort": 8080}]}))
        .unwrap();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Some(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Some(80));
        assert_eq!(resolve_port(&IntOrString::String("nope".into()), &c), None);
    }

    #[tokio::test]
    async fn tcp_and_http_probes_word_failures_like_upstream() {
        // A port nothing listens on: bind, learn the port, close.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let (o, msg) = tcp_socket("127.0.0.1", port, Duration::from_secs(1)).await;
        assert_eq!(o, Outcome::Failure);
        assert_eq!(
            msg,
            format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
        );
        let (o, msg) = http_get(
            "127.0.0.1",
            port,
            Some("healthz"),
            false,
            &[],
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(o, Outcome::Failure);
        assert_eq!(
            msg,
            format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );

        // A server answering 503, then 200.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in ["503 Service Unavailable", "200 OK"] {
                let (mut s, _) = l.accept().await.unwrap();
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let req = String::from_utf8_lossy(&buf).to_string();
                assert!(req.contains("user-agent: kube-probe/1.33"), "{req}");
                let body = format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n");
                s.write_all(body.as_bytes()).await.unwrap();
            }
        });
        let get = || http_get("127.0.0.1", port, None, false, &[], Duration::from_secs(2));
        assert_eq!(
            get().await,
            (
                Outcome::Failure,
                "HTTP probe failed with statuscode: 503".into()
            )
        );
        assert_eq!(get().await, (Outcome::Success, String::new()));
    }
}
