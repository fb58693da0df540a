//! The pod manager: a watch of the pods bound to this node feeds one worker per pod, and each
//! worker reconciles its pod against the runtime through CRI (sandbox, init containers,
//! containers, restarts with back-off, termination), then reports the pod's status. A
//! relist of the runtime every second (upstream's PLEG) wakes the workers whose containers
//! changed, and removes sandboxes whose pods are gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::watch;

use super::backoff::{self, Backoff};
use super::cri::api::{ContainerState, DnsConfig, PodSandboxState};
use super::cri::client::{self, Cri, POD_UID_LABEL};
use super::events::{Kind, Recorder};
use super::images::{self, PullPolicy};
use super::probe::{self, ProbeKind, Prober};
use super::spec::{self, Downward};
use super::status::{self, ContainerView, Instance, InstanceState, PodView};
use super::volumes;

/// How often the runtime is relisted for container changes (upstream's generic PLEG period).
const RELIST: Duration = Duration::from_secs(1);
/// Retry delay after a failed sync.
const RETRY: Duration = Duration::from_secs(2);
/// Upstream's default terminationGracePeriodSeconds.
const DEFAULT_GRACE: i64 = 30;
/// A sync slower than this is logged with where its time went.
const SLOW_SYNC: Duration = Duration::from_millis(300);
/// How often volume files are rewritten from their sources (upstream syncs about every minute).
const VOLUME_REFRESH: Duration = Duration::from_secs(60);
/// Retry delay after a volume could not be set up.
const MOUNT_RETRY: Duration = Duration::from_secs(5);
/// How long a new node's first sandbox waits for the bundled images to be imported.
const PRELOAD_WAIT: Duration = Duration::from_secs(30);
/// The longest a new pod waits for its turn to start, so one slow start (a hung CNI call)
/// cannot hold the node's other pods back.
const START_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Grace for containers of a pod the API no longer knows (its own grace period is lost with it).
const ORPHAN_GRACE: i64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cri(#[from] client::Error),
    #[error("could not update pod {pod}")]
    Api {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("could not prepare the pod's folders")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Spec(#[from] spec::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every worker shares.
pub struct Ctx {
    pub cri: Cri,
    pub client: kube::Client,
    pub node: String,
    pub host_ip: String,
    /// The node's own resolver configuration (`Default` pods start from it).
    pub dns: DnsConfig,
    /// The kube-dns Service's address, which cluster-first pods resolve through.
    pub cluster_dns: Option<std::net::Ipv4Addr>,
    /// The node's allocatable CPUs, memory and storage (bytes), for resourceFieldRef.
    pub allocatable: [f64; 3],
    pub events: Recorder,
    pub prober: Arc<Prober>,
    /// Wakes the mirror-pod loop (a mirror pod was deleted).
    pub mirror_wake: Arc<tokio::sync::Notify>,
    /// Signs the service-account tokens the kubelet writes (see `volumes`).
    token_key: Vec<u8>,
    /// Pod uids whose probe results changed; taken by `run`.
    probe_changes: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    backoff: Mutex<Backoff>,
    /// New pods start one at a time: on a few shared cores, starts that share the CPU all finish
    /// late, while starts in turn finish one after another (see `START_QUEUE_WAIT`).
    starts: tokio::sync::Semaphore,
}

impl Ctx {
    pub fn new(
        cri: Cri,
        client: kube::Client,
        node: String,
        host_ip: String,
        dns: DnsConfig,
        allocatable: [f64; 3],
    ) -> Self {
        let events = Recorder::new(client.clone(), &node);
        let (prober, probe_changes) = Prober::new(cri.clone(), events.clone());
        Ctx {
            cri,
            client,
            node,
            host_ip,
            dns,
            cluster_dns: None,
            allocatable,
            events,
            prober: Arc::new(prober),
            token_key: uuid::Uuid::new_v4().as_bytes().to_vec(),
            mirror_wake: Arc::default(),
            probe_changes: Mutex::new(Some(probe_changes)),
            backoff: Mutex::default(),
            starts: tokio::sync::Semaphore::new(1),
        }
    }
    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The latest pod object a worker should converge to; None once the pod left the API.
type Desired = Option<Arc<Pod>>;
type Workers = Arc<Mutex<HashMap<String, watch::Sender<Desired>>>>;

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Runs the watch and the relist until the process ends.
pub async fn run(ctx: Arc<Ctx>) {
    let workers: Workers = Arc::default();
    let synced = Arc::new(AtomicBool::new(false));
    tokio::spawn(relist(ctx.clone(), workers.clone(), synced.clone()));
    let changes = ctx
        .probe_changes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(mut changes) = changes {
        let workers = workers.clone();
        tokio::spawn(async move {
            while let Some(uid) = changes.recv().await {
                if let Some(tx) = workers.lock().unwrap_or_else(|p| p.into_inner()).get(&uid) {
                    tx.send_modify(|_| {});
                }
            }
        });
    }
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node));
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            // Mirror pods stand for the node's own components; the kubelet runs nothing for
            // them, and replaces them when they are deleted.
            Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod))
                if is_mirror(&pod) =>
            {
                if pod.metadata.deletion_timestamp.is_some() {
                    ctx.mirror_wake.notify_one();
                }
            }
            Ok(watcher::Event::Delete(pod)) if is_mirror(&pod) => ctx.mirror_wake.notify_one(),
            Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                listed.insert(uid_of(&pod));
                dispatch(&ctx, &workers, Some(Arc::new(pod)));
            }
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(tx) = workers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&uid_of(&pod))
                {
                    let _ = tx.send(None);
                }
            }
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitDone) => {
                // Pods deleted while the watch was down never get a Delete event.
                for (uid, tx) in workers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    if !listed.contains(uid) {
                        let _ = tx.send(None);
                    }
                }
                synced.store(true, Ordering::SeqCst);
            }
            Err(e) => eprintln!("kubelet: pod watch: {e}"),
        }
    }
}

fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(super::mirror::MIRROR_ANNOTATION))
}

fn dispatch(ctx: &Arc<Ctx>, workers: &Workers, pod: Desired) {
    let Some(p) = &pod else { return };
    let uid = uid_of(p);
    let mut map = workers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(tx) = map.get(&uid) {
        let _ = tx.send(pod);
        return;
    }
    let (tx, rx) = watch::channel(pod);
    map.insert(uid.clone(), tx);
    tokio::spawn(worker(ctx.clone(), workers.clone(), uid, rx));
}

/// One pod's worker: syncs whenever the pod or its containers change, or a timer is due.
async fn worker(ctx: Arc<Ctx>, workers: Workers, uid: String, mut rx: watch::Receiver<Desired>) {
    let mut state = PodState::default();
    loop {
        let desired = rx.borrow_and_update().clone();
        let deleting = desired
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        if desired.is_none() || deleting {
            let pod = desired.or_else(|| state.last_pod.clone());
            if let Err(e) = terminate(&ctx, &uid, pod.as_deref(), deleting).await {
                eprintln!("kubelet: could not stop pod {uid}: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            break;
        }
        let pod = desired.expect("checked above");
        state.last_pod = Some(pod.clone());
        let wait = match sync(&ctx, &mut state, &pod).await {
            Ok(next) => next,
            Err(e) => {
                eprintln!("kubelet: pod {}: {e:#}", spec::pod_ref(&pod).name);
                Some(RETRY)
            }
        };
        let changed = match wait {
            Some(d) => tokio::select! {
                c = rx.changed() => c,
                _ = tokio::time::sleep(d) => Ok(()),
            },
            None => rx.changed().await,
        };
        if changed.is_err() {
            break;
        }
    }
    workers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&uid);
    ctx.backoff().forget_prefix(&format!("{uid}/"));
}

/// What a worker remembers between syncs.
#[derive(Default)]
struct PodState {
    last_pod: Option<Arc<Pod>>,
    start_time: Option<String>,
    last_status: Option<Value>,
    /// When pulling each container's image last failed.
    image_failed_at: HashMap<String, Timestamp>,
    /// When the pod's volume files were last written (they follow their sources).
    volumes_at: Option<std::time::Instant>,
}

fn instance(s: &super::cri::api::ContainerStatus) -> Instance {
    Instance {
        id: s.id.clone(),
        attempt: s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
        state: match ContainerState::try_from(s.state) {
            Ok(ContainerState::ContainerRunning) => InstanceState::Running,
            Ok(ContainerState::ContainerExited) => InstanceState::Exited,
            Ok(ContainerState::ContainerCreated) => InstanceState::Created,
            _ => InstanceState::Unknown,
        },
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        reason: s.reason.clone(),
        message: s.message.clone(),
        image: s
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default(),
        image_ref: s.image_ref.clone(),
    }
}

fn nanos_to_ts(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(ns as i128).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn now_rfc3339() -> String {
    crate::node::now_seconds().to_string()
}

/// Brings the runtime in line with `pod`, reports its status, and says when to look again
/// (None: when something changes).
async fn sync(ctx: &Ctx, state: &mut PodState, pod: &Pod) -> Result<Option<Duration>> {
    let p = spec::pod_ref(pod);
    let began = std::time::Instant::now();
    let pod_spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = pod_spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let start_time = state
        .start_time
        .get_or_insert_with(|| {
            pod.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(now_rfc3339)
        })
        .clone();
    let terminal = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");

    // 1. The sandbox: adopt a ready one (a restarted kubelet finds its pods by the uid label).
    let mut turn = None;
    let mut sandboxes = ctx
        .cri
        .list_pod_sandboxes([(POD_UID_LABEL.to_string(), p.uid.to_string())].into())
        .await?;
    sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let ready = sandboxes
        .iter()
        .find(|s| s.state == PodSandboxState::SandboxReady as i32);
    let (sandbox_id, attempt) = match ready {
        Some(s) => (
            s.id.clone(),
            s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
        ),
        None if terminal => {
            // A finished pod gets no new sandbox; report what is known.
            return Ok(None);
        }
        None => {
            let attempt = sandboxes
                .iter()
                .filter_map(|s| s.metadata.as_ref())
                .map(|m| m.attempt + 1)
                .max()
                .unwrap_or(0);
            spec::prepare_volumes(pod)?;
            // Volumes come before the sandbox, as upstream's WaitForAttachAndMount.
            if let Err(wait) = write_volumes(ctx, state, pod).await {
                return Ok(Some(wait));
            }
            std::fs::create_dir_all(spec::log_directory(&p))?;
            wait_for_preloaded_images().await;
            // Held while the sandbox and the containers start (the CPU-heavy part).
            turn = tokio::time::timeout(START_QUEUE_WAIT, ctx.starts.acquire())
                .await
                .ok();
            let config =
                spec::sandbox_config(pod, attempt, &spec::pod_dns(pod, &ctx.dns, ctx.cluster_dns));
            let id = match ctx.cri.run_pod_sandbox(config).await {
                Ok(id) => id,
                Err(e) => {
                    ctx.events.record(
                        pod,
                        None,
                        Kind::Warning,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    return Err(e.into());
                }
            };
            // The old sandbox died: its containers go with it, and all start again.
            for old in &sandboxes {
                let _ = ctx.cri.stop_pod_sandbox(&old.id).await;
                let _ = ctx.cri.remove_pod_sandbox(&old.id).await;
            }
            (id, attempt)
        }
    };
    let sandbox_config =
        spec::sandbox_config(pod, attempt, &spec::pod_dns(pod, &ctx.dns, ctx.cluster_dns));
    let sb = ctx.cri.pod_sandbox_status(&sandbox_id).await?;
    let pod_ip = sb
        .as_ref()
        .and_then(|s| s.network.as_ref())
        .map(|n| n.ip.clone())
        .unwrap_or_default();
    let sandbox_ready = sb
        .as_ref()
        .is_some_and(|s| s.state == PodSandboxState::SandboxReady as i32);
    if let Err(e) = volumes::write_hosts(pod, &pod_ip) {
        eprintln!(
            "kubelet: could not write the hosts file of pod {}: {e}",
            p.name
        );
    }
    let refresh_due = state
        .volumes_at
        .is_none_or(|t| t.elapsed() >= VOLUME_REFRESH);
    if refresh_due && volumes::has_file_volumes(pod) {
        // Sources changed meanwhile (a ConfigMap edit, new labels) show up in the files.
        let _ = write_volumes(ctx, state, pod).await;
    }

    let sandbox_done = began.elapsed();
    // 2. The containers in it, newest instance first per name.
    let mut by_name: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for c in ctx.cri.list_containers(&sandbox_id).await? {
        let name = c
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        by_name.entry(name).or_default().push(Instance {
            id: c.id,
            attempt: c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            ..Default::default()
        });
    }
    let mut views = HashMap::new();
    for (name, mut list) in by_name {
        list.sort_by_key(|i| std::cmp::Reverse(i.attempt));
        // Keep the newest two (the previous one serves lastState and `logs --previous`).
        for old in list.iter().skip(2) {
            let _ = ctx.cri.remove_container(&old.id).await;
        }
        let mut v = ContainerView {
            name: name.clone(),
            ..Default::default()
        };
        if let Some(cur) = list.first() {
            v.current = ctx
                .cri
                .container_status(&cur.id)
                .await?
                .as_ref()
                .map(instance);
        }
        if let Some(prev) = list.get(1) {
            v.previous = ctx
                .cri
                .container_status(&prev.id)
                .await?
                .as_ref()
                .map(instance);
        }
        views.insert(name, v);
    }
    let view_for = |c: &Container, views: &mut HashMap<String, ContainerView>| {
        let mut v = views.remove(&c.name).unwrap_or_default();
        v.name = c.name.clone();
        v.image = c.image.clone().unwrap_or_default();
        v
    };
    let d = Downward {
        node: &ctx.node,
        host_ip: &ctx.host_ip,
        pod_ip: &pod_ip,
        allocatable_cpu: ctx.allocatable[0],
        allocatable_memory: ctx.allocatable[1],
        allocatable_storage: ctx.allocatable[2],
    };
    let starter = Starter {
        ctx,
        pod,
        sandbox_id: &sandbox_id,
        sandbox_config: &sandbox_config,
        d: &d,
    };
    let mut next: Option<Duration> = None;
    let mut soonest = |w: Option<Duration>| {
        if let Some(w) = w {
            next = Some(next.map_or(w, |n| n.min(w)));
        }
    };

    // 3. Init containers, one at a time and in order.
    let mut init_views = vec![];
    let mut initialized = true;
    for c in pod_spec.init_containers.iter().flatten() {
        let mut v = view_for(c, &mut views);
        if initialized && !terminal {
            let exited = v
                .current
                .as_ref()
                .filter(|i| i.state == InstanceState::Exited)
                .cloned();
            match (&v.current, exited) {
                (_, Some(i)) if i.exit_code == 0 => {}
                (_, Some(i)) => {
                    initialized = false;
                    if restart_policy != "Never" {
                        soonest(starter.restart(state, c, &mut v, &i).await);
                    }
                }
                (Some(_), None) => initialized = false,
                (None, None) => {
                    initialized = false;
                    soonest(starter.start(state, c, &mut v, 0).await);
                }
            }
        }
        init_views.push(v);
    }

    // 4. App containers, once the pod is initialized.
    let mut app_views = vec![];
    let mut probed_ids = HashSet::new();
    for c in &pod_spec.containers {
        let mut v = view_for(c, &mut views);
        if initialized && !terminal {
            kill_if_unhealthy(ctx, pod, c, &mut v).await;
            match v.current.clone() {
                None => soonest(starter.start(state, c, &mut v, 0).await),
                Some(i) if i.state == InstanceState::Exited => {
                    let again = match restart_policy.as_str() {
                        "Never" => false,
                        "OnFailure" => i.exit_code != 0,
                        _ => true,
                    };
                    if again {
                        soonest(starter.restart(state, c, &mut v, &i).await);
                    }
                }
                Some(_) => {}
            }
            if let Some(i) = v.current.as_ref().filter(|i| {
                i.state == InstanceState::Running && has_probes(c) && v.waiting.is_none()
            }) {
                probed_ids.insert(i.id.clone());
                ctx.prober.ensure(probe::Target {
                    pod: Arc::new(pod.clone()),
                    container: c.clone(),
                    container_id: i.id.clone(),
                    pod_ip: pod_ip.clone(),
                    started_at: i.started_at,
                });
                v.probed = Some((ctx.prober.started(c, &i.id), ctx.prober.ready(c, &i.id)));
            }
        }
        app_views.push(v);
    }
    ctx.prober.retain(p.uid, &probed_ids);

    let containers_done = began.elapsed();
    // The next pod's start can use this node's CPU while the API server takes the status.
    drop(turn);
    // 5. Status, written only when it changed.
    let view = PodView {
        host_ip: ctx.host_ip.clone(),
        pod_ip,
        sandbox_ready,
        start_time,
        init: init_views,
        containers: app_views,
    };
    let status = status::build(pod, &view, &now_rfc3339());
    if state.last_status.as_ref() != Some(&status) {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), p.namespace);
        match api
            .patch_status(p.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => state.last_status = Some(status),
            // Deleted meanwhile: the watch will say so.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::Api {
                    pod: p.name.into(),
                    source,
                });
            }
        }
    }
    let took = began.elapsed();
    if took > SLOW_SYNC {
        // As upstream's "SyncPod took long" warnings: where a slow start spent its time.
        eprintln!(
            "kubelet: pod {}/{} synced in {took:.2?} (sandbox {sandbox_done:.2?}, containers {:.2?}, status {:.2?})",
            p.namespace,
            p.name,
            containers_done - sandbox_done,
            took - containers_done
        );
    }
    if volumes::has_file_volumes(pod) && !terminal {
        next = Some(next.map_or(VOLUME_REFRESH, |n| n.min(VOLUME_REFRESH)));
    }
    Ok(next)
}

/// Writes the pod's volume files. When a source is missing, says so with upstream's
/// FailedMount event and returns when to try again.
async fn write_volumes(ctx: &Ctx, state: &mut PodState, pod: &Pod) -> Result<(), Duration> {
    let d = Downward {
        node: &ctx.node,
        host_ip: &ctx.host_ip,
        pod_ip: "",
        allocatable_cpu: ctx.allocatable[0],
        allocatable_memory: ctx.allocatable[1],
        allocatable_storage: ctx.allocatable[2],
    };
    let fetched = match volumes::fetch(&ctx.client, pod, &ctx.token_key).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kubelet: volumes of pod {}: {e}", spec::pod_ref(pod).name);
            return Err(RETRY);
        }
    };
    match volumes::write_all(pod, &ctx.node, &d, &fetched) {
        Ok(()) => {
            state.volumes_at = Some(std::time::Instant::now());
            Ok(())
        }
        Err((volume, e)) => {
            ctx.events.record(
                pod,
                None,
                Kind::Warning,
                "FailedMount",
                format!("MountVolume.SetUp failed for volume \"{volume}\" : {e}"),
            );
            Err(MOUNT_RETRY)
        }
    }
}

/// Waits (bounded) until the node's bundled images, the pause image among them, are in
/// containerd, so the first sandbox on a new node does not fail for want of it.
async fn wait_for_preloaded_images() {
    static SEEN: AtomicBool = AtomicBool::new(false);
    if SEEN.load(Ordering::Relaxed) {
        return;
    }
    let marker = std::path::Path::new(crate::node::supervisor::PRELOADED_MARKER);
    let start = std::time::Instant::now();
    while !marker.exists() && start.elapsed() < PRELOAD_WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    SEEN.store(true, Ordering::Relaxed);
}

fn has_probes(c: &Container) -> bool {
    c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
}

/// Kills a running container whose liveness or startup probe failed, as upstream does, so the
/// restart logic starts it again.
async fn kill_if_unhealthy(ctx: &Ctx, pod: &Pod, c: &Container, v: &mut ContainerView) {
    let Some(cur) = v
        .current
        .as_ref()
        .filter(|i| i.state == InstanceState::Running)
    else {
        return;
    };
    let Some(kind) = ctx.prober.must_restart(&cur.id) else {
        return;
    };
    let probe = match kind {
        ProbeKind::Startup => c.startup_probe.as_ref(),
        _ => c.liveness_probe.as_ref(),
    };
    // A probe's own terminationGracePeriodSeconds wins over the pod's.
    let grace = probe
        .and_then(|p| p.termination_grace_period_seconds)
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(DEFAULT_GRACE);
    ctx.events.record(
        pod,
        Some(&c.name),
        Kind::Normal,
        "Killing",
        format!(
            "Container {} failed {} probe, will be restarted",
            c.name,
            kind.label().to_lowercase()
        ),
    );
    if let Err(e) = ctx.cri.stop_container(&cur.id, grace).await
        && !e.is_not_found()
    {
        eprintln!("kubelet: could not stop container {}: {e}", c.name);
        return;
    }
    if let Ok(Some(s)) = ctx.cri.container_status(&cur.id).await {
        v.current = Some(instance(&s));
    }
}

/// Starts containers of one pod and says how they fared in their views.
struct Starter<'a> {
    ctx: &'a Ctx,
    pod: &'a Pod,
    sandbox_id: &'a str,
    sandbox_config: &'a super::cri::api::PodSandboxConfig,
    d: &'a Downward<'a>,
}

impl Starter<'_> {
    /// Restarts an exited container unless it is backing off; returns when to look again.
    async fn restart(
        &self,
        state: &mut PodState,
        c: &Container,
        v: &mut ContainerView,
        last: &Instance,
    ) -> Option<Duration> {
        let p = spec::pod_ref(self.pod);
        let key = format!("{}/{}", p.uid, c.name);
        let now = Timestamp::now();
        let finished = nanos_to_ts(last.finished_at);
        let in_backoff = self.ctx.backoff().in_backoff_since(&key, finished, now);
        if let Some(delay) = in_backoff {
            let msg = backoff::crash_loop_message(delay, &c.name, p.name, p.namespace, p.uid);
            v.waiting = Some(("CrashLoopBackOff".into(), msg));
            self.ctx.events.record(
                self.pod,
                Some(&c.name),
                Kind::Warning,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {}_{}({})",
                    c.name, p.name, p.namespace, p.uid
                ),
            );
            let left = (finished + delay).duration_since(now).unsigned_abs();
            return Some(left + Duration::from_millis(50));
        }
        self.ctx.backoff().next(&key, now);
        self.start(state, c, v, last.attempt + 1).await
    }

    /// A container that could not be created waits with `reason`, as upstream reports it, and
    /// is tried again in 10 s.
    fn create_failed(
        &self,
        c: &Container,
        v: &mut ContainerView,
        reason: &str,
        e: &dyn std::fmt::Display,
    ) -> Option<Duration> {
        self.ctx.events.record(
            self.pod,
            Some(&c.name),
            Kind::Warning,
            "Failed",
            format!("Error: {e}"),
        );
        v.waiting = Some((reason.into(), e.to_string()));
        Some(Duration::from_secs(10))
    }

    /// Checks the image, then creates and starts instance `attempt` of `c`.
    async fn start(
        &self,
        state: &mut PodState,
        c: &Container,
        v: &mut ContainerView,
        attempt: u32,
    ) -> Option<Duration> {
        let ctx = self.ctx;
        let pod = self.pod;
        let p = spec::pod_ref(pod);
        let image = c.image.clone().unwrap_or_default();
        let reference = images::normalize(&image);
        let policy = images::effective_policy(&image, c.image_pull_policy.as_deref());
        let found = match ctx.cri.image_status(&reference).await {
            Ok(found) => found,
            Err(e) => {
                v.waiting = Some(("ErrImagePull".into(), e.to_string()));
                return Some(RETRY);
            }
        };
        let Some(found) = found else {
            let key = format!("{}/{}/image", p.uid, c.name);
            let now = Timestamp::now();
            if let Some(since) = state.image_failed_at.get(&c.name).copied()
                && let Some(delay) = ctx.backoff().in_backoff_since(&key, since, now)
            {
                let reason = if policy == PullPolicy::Never {
                    "ErrImageNeverPull"
                } else {
                    "ImagePullBackOff"
                };
                let msg = if policy == PullPolicy::Never {
                    images::missing_image(&image, policy, &ctx.node).1
                } else {
                    images::pull_backoff_message(&image)
                };
                ctx.events.record(
                    pod,
                    Some(&c.name),
                    Kind::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                );
                v.waiting = Some((reason.into(), msg));
                return Some(
                    (since + delay).duration_since(now).unsigned_abs() + Duration::from_millis(50),
                );
            }
            let (reason, msg) = images::missing_image(&image, policy, &ctx.node);
            ctx.events
                .record(pod, Some(&c.name), Kind::Warning, reason, msg.clone());
            if policy != PullPolicy::Never {
                ctx.events.record(
                    pod,
                    Some(&c.name),
                    Kind::Warning,
                    "Failed",
                    format!("Error: {reason}"),
                );
            }
            ctx.backoff().next(&key, now);
            state.image_failed_at.insert(c.name.clone(), now);
            v.waiting = Some((reason.into(), msg));
            // Look again soon, so the status moves on to the back-off state as upstream's does.
            return Some(Duration::from_secs(1));
        };
        state.image_failed_at.remove(&c.name);
        ctx.events.record(
            pod,
            Some(&c.name),
            Kind::Normal,
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        );
        let src = match fetch_sources(ctx, p.namespace, c).await {
            Ok(src) => src,
            Err(e) => return self.create_failed(c, v, "CreateContainerConfigError", &e),
        };
        let config = match spec::container_config(pod, c, attempt, &found.id, self.d, &src) {
            Ok(config) => config,
            Err(e) => return self.create_failed(c, v, "CreateContainerConfigError", &e),
        };
        let id = match ctx
            .cri
            .create_container(self.sandbox_id, config, self.sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => return self.create_failed(c, v, "CreateContainerError", &e),
        };
        ctx.events.record(
            pod,
            Some(&c.name),
            Kind::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = ctx.cri.start_container(&id).await {
            ctx.events.record(
                pod,
                Some(&c.name),
                Kind::Warning,
                "Failed",
                format!("Error: {e}"),
            );
            // The runtime reports the failed instance as exited; the back-off handles it.
        } else {
            ctx.events.record(
                pod,
                Some(&c.name),
                Kind::Normal,
                "Started",
                format!("Started container {}", c.name),
            );
        }
        match ctx.cri.container_status(&id).await {
            Ok(Some(s)) => {
                v.previous = v.current.take();
                v.current = Some(instance(&s));
                v.waiting = None;
                None
            }
            _ => Some(RETRY),
        }
    }
}

/// Fetches the ConfigMaps and Secrets the container's environment refers to.
async fn fetch_sources(ctx: &Ctx, ns: &str, c: &Container) -> Result<spec::Sources, kube::Error> {
    let (cms, secrets) = spec::Sources::wanted(c);
    let mut src = spec::Sources::default();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for name in cms {
        let data = api
            .get_opt(&name)
            .await?
            .map(|cm| cm.data.unwrap_or_default());
        src.config_maps.insert(name, data);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for name in secrets {
        let data = api.get_opt(&name).await?.map(|s| volumes::secret_data(&s));
        src.secrets.insert(name, data);
    }
    Ok(src)
}

/// Stops the pod's containers within its grace period, removes its sandboxes and folders and,
/// when the API server is waiting on the kubelet (deletionTimestamp set), completes the delete.
async fn terminate(ctx: &Ctx, uid: &str, pod: Option<&Pod>, complete_delete: bool) -> Result<()> {
    let grace = pod
        .and_then(|p| {
            p.metadata.deletion_grace_period_seconds.or(p
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
        })
        .unwrap_or(if pod.is_some() {
            DEFAULT_GRACE
        } else {
            ORPHAN_GRACE
        });
    let sandboxes = ctx
        .cri
        .list_pod_sandboxes([(POD_UID_LABEL.to_string(), uid.to_string())].into())
        .await?;
    for sb in &sandboxes {
        let containers = ctx.cri.list_containers(&sb.id).await?;
        let stops = containers
            .iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .map(|c| {
                let name = c
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default();
                if let Some(pod) = pod {
                    ctx.events.record(
                        pod,
                        Some(&name),
                        Kind::Normal,
                        "Killing",
                        format!("Stopping container {name}"),
                    );
                }
                ctx.cri.stop_container(&c.id, grace)
            });
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r
                && !e.is_not_found()
            {
                return Err(e.into());
            }
        }
        ctx.cri.stop_pod_sandbox(&sb.id).await?;
        ctx.cri.remove_pod_sandbox(&sb.id).await?;
    }
    ctx.prober.retain(uid, &HashSet::new());
    let _ = std::fs::remove_dir_all(format!("{}/{uid}", spec::PODS_DIR));
    if let Some(pod) = pod {
        let _ = std::fs::remove_dir_all(spec::log_directory(&spec::pod_ref(pod)));
    }
    if complete_delete && let Some(pod) = pod {
        let p = spec::pod_ref(pod);
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), p.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(p.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(source) => {
                return Err(Error::Api {
                    pod: p.name.into(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Upstream's PLEG: relists the runtime, wakes the workers of pods whose containers changed,
/// and removes sandboxes no pod owns (deleted while the kubelet was down).
async fn relist(ctx: Arc<Ctx>, workers: Workers, synced: Arc<AtomicBool>) {
    let mut before: HashMap<String, (i32, String)> = HashMap::new();
    loop {
        tokio::time::sleep(RELIST).await;
        let Ok(containers) = ctx.cri.list_containers("").await else {
            continue;
        };
        let now: HashMap<String, (i32, String)> = containers
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    (
                        c.state,
                        c.labels.get(POD_UID_LABEL).cloned().unwrap_or_default(),
                    ),
                )
            })
            .collect();
        let mut changed: HashSet<&str> = HashSet::new();
        for (id, (st, uid)) in &now {
            if before.get(id).map(|b| b.0) != Some(*st) {
                changed.insert(uid);
            }
        }
        for (id, (_, uid)) in &before {
            if !now.contains_key(id) {
                changed.insert(uid);
            }
        }
        {
            let map = workers.lock().unwrap_or_else(|p| p.into_inner());
            for uid in &changed {
                if let Some(tx) = map.get(*uid) {
                    tx.send_modify(|_| {});
                }
            }
        }
        before = now;
        if !synced.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(sandboxes) = ctx.cri.list_pod_sandboxes(HashMap::new()).await else {
            continue;
        };
        let orphans: Vec<String> = {
            let map = workers.lock().unwrap_or_else(|p| p.into_inner());
            sandboxes
                .iter()
                .filter_map(|s| s.labels.get(POD_UID_LABEL))
                .filter(|uid| !map.contains_key(*uid))
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        for uid in orphans {
            eprintln!(
                "kubelet: removing the sandbox of pod {uid}, which is no longer bound to this node"
            );
            if let Err(e) = terminate(&ctx, &uid, None, false).await {
                eprintln!("kubelet: {e}");
            }
        }
    }
}
