//! `kindling node init`, PID 1 of every node: prepares the node, starts the role's components in
//! order under their real names, restarts crashed ones with back-off, reaps zombies, and stops
//! everything cleanly on SIGTERM.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::cluster::config::Role;
use crate::cluster::pki::Ca;
use crate::consts::{
    API_SERVER_PORT, ETCD_CLIENT_PORT, ETCD_DATA_DIR, ETCD_PEER_PORT, LOG_DIR, PKI_DIR,
};
use crate::node::config::NodeConfig;
use crate::node::net;
use crate::nodeimage::bundled::NODE_BUNDLE_PATH;

/// How a component is started.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// The name `ps` shows and the log file is named after.
    pub name: &'static str,
    pub program: String,
    pub args: Vec<String>,
}

/// The components of a node, in start order.
pub fn components(cfg: &NodeConfig, node_ip: Option<std::net::IpAddr>) -> Vec<Component> {
    let bin = |name: &str| format!("/usr/local/bin/{name}");
    let mut v = vec![Component {
        name: "containerd",
        program: "/usr/bin/containerd".into(),
        args: vec![],
    }];
    if cfg.role == Role::ControlPlane {
        let me = &cfg.node_name;
        let initial = cfg
            .control_planes
            .iter()
            .map(|cp| format!("{cp}=http://{cp}:{ETCD_PEER_PORT}"))
            .collect::<Vec<_>>()
            .join(",");
        v.push(Component {
            name: "etcd",
            program: "/usr/bin/etcd".into(),
            args: [
                "--name",
                me,
                "--data-dir",
                ETCD_DATA_DIR,
                "--listen-client-urls",
                &format!("http://0.0.0.0:{ETCD_CLIENT_PORT}"),
                "--advertise-client-urls",
                &format!("http://{me}:{ETCD_CLIENT_PORT}"),
                "--listen-peer-urls",
                &format!("http://0.0.0.0:{ETCD_PEER_PORT}"),
                "--initial-advertise-peer-urls",
                &format!("http://{me}:{ETCD_PEER_PORT}"),
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                &cfg.cluster,
                "--initial-cluster-state",
                "new",
                // Keeps etcd's memory small; the API server's history needs are modest.
                "--snapshot-count",
                "10000",
                "--auto-compaction-mode",
                "periodic",
                "--auto-compaction-retention",
                "5m",
            ]
            .map(String::from)
            .to_vec(),
        });
        let mut args = vec![
            "--etcd-servers".to_string(),
            format!("http://127.0.0.1:{ETCD_CLIENT_PORT}"),
            "--secure-port".into(),
            API_SERVER_PORT.to_string(),
            "--service-cluster-ip-range".into(),
            cfg.service_subnet.clone(),
            "--default-not-ready-toleration-seconds".into(),
            cfg.node_lifecycle.toleration_seconds.to_string(),
            "--default-unreachable-toleration-seconds".into(),
            cfg.node_lifecycle.toleration_seconds.to_string(),
        ];
        if let Some(ip) = node_ip {
            args.extend(["--advertise-address".into(), ip.to_string()]);
        }
        v.push(Component {
            name: "kube-apiserver",
            program: bin("kube-apiserver"),
            args,
        });
        // Cluster DNS runs in the node's network namespace, where Docker's resolver
        // (127.0.0.11) answers the names it forwards. Early in the list, so that its mirror
        // pod, and with it the kube-dns endpoints, come first.
        v.push(Component {
            name: "coredns",
            program: bin("coredns"),
            args: vec![],
        });
        v.push(Component {
            name: "kube-controller-manager",
            program: bin("kube-controller-manager"),
            args: vec![],
        });
        v.push(Component {
            name: "kube-scheduler",
            program: bin("kube-scheduler"),
            args: vec![],
        });
    }
    // Before the kubelet, so the CNI config exists by the time pods start.
    v.push(Component {
        name: "flanneld",
        program: bin("flanneld"),
        args: vec![],
    });
    // Services work as soon as pods do.
    v.push(Component {
        name: "kube-proxy",
        program: bin("kube-proxy"),
        args: vec![],
    });
    v.push(Component {
        name: "kubelet",
        program: bin("kubelet"),
        args: vec![],
    });
    v
}

/// Imports the images the host left in the node (pause, toolbox, whoami) into containerd's
/// `k8s.io` namespace once containerd answers, then removes the archive.
fn preload_images_job() -> Component {
    // The host copies the archive in while the node boots, so wait for it as well.
    let script = format!(
        "until [ -S {sock} ] && [ -f {tar} ]; do sleep 0.1; done; \
         ctr -n k8s.io images import --all-platforms {tar} && rm -f {tar} \
         && mkdir -p $(dirname {marker}) && touch {marker}",
        sock = crate::consts::CONTAINERD_SOCKET,
        tar = NODE_BUNDLE_PATH,
        marker = PRELOADED_MARKER,
    );
    Component {
        name: "image-preload",
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script],
    }
}

/// Present once the bundled images are in containerd (kept in the /var volume).
pub const PRELOADED_MARKER: &str = "/var/lib/kindling/images/preloaded";

/// One supervised process.
struct Supervised {
    spec: Component,
    /// A job that runs to completion once (restarted only if it fails), not a daemon.
    oneshot: bool,
    pid: Option<u32>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A component that ran this long before crashing restarts without waiting.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

fn spawn(c: &Component) -> std::io::Result<u32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(LOG_DIR).join(format!("{}.log", c.name)))?;
    let child = Command::new(&c.program)
        .arg0(c.name)
        .args(&c.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    Ok(child.id())
}

fn say(line: &str) {
    // PID 1's output is the container log (`docker logs <node>`).
    eprintln!("kindling-init: {line}");
}

/// Remount /proc/sys and /sys read-write: with capabilities instead of --privileged they start
/// read-only, and components write sysctls.
fn remount_writable() {
    for p in ["/proc/sys", "/sys"] {
        let _ = Command::new("mount").args(["-o", "remount,rw", p]).status();
    }
}

/// On a hybrid cgroup host (v1 hierarchies plus a cgroup2 mount at /sys/fs/cgroup/unified)
/// whose cgroup2 side holds controllers, crun refuses every container ("cgroups in hybrid mode
/// not supported"). Pods only need the v1 hierarchies, so the node drops its own view of the
/// cgroup2 mount; the host's stays as it is (Docker's mounts are private to the container).
fn legacy_cgroups_for_crun() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let controllers =
        std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
    if controllers.trim().is_empty() {
        return;
    }
    match Command::new("umount").arg(unified).status() {
        Ok(s) if s.success() => say(&format!(
            "hybrid cgroups with cgroup2 controllers ({}): using the v1 hierarchies only",
            controllers.trim()
        )),
        _ => say("could not unmount /sys/fs/cgroup/unified: crun may refuse to start pods"),
    }
}

/// (Re)issue the API server's serving certificate so it covers the node's current addresses,
/// which Docker may change across restarts.
fn ensure_apiserver_cert(cfg: &NodeConfig, ips: &[std::net::IpAddr]) -> anyhow::Result<()> {
    let pki = Path::new(PKI_DIR);
    let ca = Ca::load(
        &std::fs::read_to_string(pki.join("ca.crt"))?,
        &std::fs::read_to_string(pki.join("ca.key"))?,
    )?;
    let mut dns: Vec<String> = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ]
    .map(String::from)
    .to_vec();
    dns.extend(cfg.control_planes.iter().cloned());
    let mut all_ips: Vec<std::net::IpAddr> = vec!["127.0.0.1".parse()?];
    all_ips.extend_from_slice(ips);
    if let Some(first) = net::first_service_ip(&cfg.service_subnet) {
        all_ips.push(first.into());
    }
    let pair = ca.issue_serving("kube-apiserver", &dns, &all_ips)?;
    std::fs::write(pki.join("apiserver.crt"), pair.cert_pem)?;
    std::fs::write(pki.join("apiserver.key"), pair.key_pem)?;
    Ok(())
}

/// Run as PID 1 until SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    let cfg = NodeConfig::load()?;
    remount_writable();
    legacy_cgroups_for_crun();
    std::fs::create_dir_all(LOG_DIR)?;
    let ips = net::ipv4_addrs();
    if cfg.role == Role::ControlPlane {
        ensure_apiserver_cert(&cfg, &ips)?;
    }
    let mut procs: Vec<Supervised> = components(&cfg, ips.first().copied())
        .into_iter()
        .filter(|c| Path::new(&c.program).exists())
        .map(|spec| Supervised {
            spec,
            oneshot: false,
            pid: None,
            started: Instant::now(),
            backoff: MIN_BACKOFF,
            restart_at: Some(Instant::now()),
        })
        .collect();
    if !Path::new(PRELOADED_MARKER).exists() {
        procs.push(Supervised {
            spec: preload_images_job(),
            oneshot: true,
            pid: None,
            started: Instant::now(),
            backoff: MIN_BACKOFF,
            restart_at: Some(Instant::now()),
        });
    }

    let mut sigchld = signal(SignalKind::child())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    say(&format!(
        "node {} ({}) starting {}",
        cfg.node_name,
        cfg.role,
        procs
            .iter()
            .map(|p| p.spec.name)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    loop {
        let now = Instant::now();
        for p in procs.iter_mut() {
            if p.pid.is_none() && p.restart_at.is_some_and(|t| t <= now) {
                match spawn(&p.spec) {
                    Ok(pid) => {
                        p.pid = Some(pid);
                        p.started = now;
                        p.restart_at = None;
                    }
                    Err(e) => {
                        say(&format!("could not start {}: {e}", p.spec.name));
                        p.restart_at = Some(now + p.backoff);
                        p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        let next_restart = procs.iter().filter_map(|p| p.restart_at).min();
        let sleep = next_restart
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        for (pid, status) in reap() {
            if let Some(p) = procs.iter_mut().find(|p| p.pid == Some(pid)) {
                p.pid = None;
                if p.oneshot && status == "exit code 0" {
                    say(&format!("{} finished", p.spec.name));
                    continue;
                }
                if p.started.elapsed() >= HEALTHY_RUN {
                    p.backoff = MIN_BACKOFF;
                }
                say(&format!(
                    "{} exited ({status}); restarting in {}s",
                    p.spec.name,
                    p.backoff.as_secs()
                ));
                p.restart_at = Some(Instant::now() + p.backoff);
                p.backoff = (p.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    stop_all(&mut procs).await;
    Ok(())
}

/// Reap every exited child (PID 1 inherits orphans too); returns (pid, description).
fn reap() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to an int.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return out;
        }
        let what = if libc::WIFEXITED(status) {
            format!("exit code {}", libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            format!("signal {}", libc::WTERMSIG(status))
        } else {
            "stopped".into()
        };
        out.push((pid as u32, what));
    }
}

/// SIGTERM in reverse start order, then SIGKILL what is left after a grace period.
async fn stop_all(procs: &mut [Supervised]) {
    say("stopping components");
    for p in procs.iter().rev() {
        if let Some(pid) = p.pid {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while procs.iter().any(|p| p.pid.is_some()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (pid, _) in reap() {
            if let Some(p) = procs.iter_mut().find(|p| p.pid == Some(pid)) {
                p.pid = None;
            }
        }
    }
    for p in procs.iter() {
        if let Some(pid) = p.pid {
            say(&format!("{} did not stop in time; killing it", p.spec.name));
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(role: Role) -> NodeConfig {
        NodeConfig {
            control_planes: vec!["dev-control-plane".into(), "dev-control-plane2".into()],
            ..NodeConfig::example(role)
        }
    }

    #[test]
    fn control_planes_start_etcd_before_the_api_server_and_kubelet_last() {
        let names: Vec<_> = components(&cfg(Role::ControlPlane), None)
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "containerd",
                "etcd",
                "kube-apiserver",
                "coredns",
                "kube-controller-manager",
                "kube-scheduler",
                "flanneld",
                "kube-proxy",
                "kubelet"
            ]
        );
    }

    #[test]
    fn workers_run_no_etcd_or_api_server() {
        let names: Vec<_> = components(&cfg(Role::Worker), None)
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["containerd", "flanneld", "kube-proxy", "kubelet"]);
    }

    #[test]
    fn etcd_members_find_each_other_by_node_name() {
        let etcd = components(&cfg(Role::ControlPlane), None)
            .into_iter()
            .find(|c| c.name == "etcd")
            .unwrap();
        let i = etcd
            .args
            .iter()
            .position(|a| a == "--initial-cluster")
            .unwrap();
        assert_eq!(
            etcd.args[i + 1],
            "dev-control-plane=http://dev-control-plane:2380,dev-control-plane2=http://dev-control-plane2:2380"
        );
    }
}
