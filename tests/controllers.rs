//! End-to-end: the workload and node controllers on one shared three-node cluster with real
//! kubectl: Jobs, CronJobs, DaemonSets, StatefulSets, ServiceAccounts, and a worker whose
//! container is stopped.
//!
//! The tests share one cluster (created by the first, deleted by the last to finish); the
//! node-failure test takes it alone, the others may run two at a time in their own namespaces.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CLUSTER: &str = "e2e-ctl";
/// How many tests use the shared cluster: the last of them to finish deletes it.
const TESTS: usize = 5;

struct Shared {
    kubeconfig: PathBuf,
    guard: Option<ClusterGuard>,
    finished: usize,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);
/// Readers share the cluster; the node-failure test writes (stops a node) alone.
static TURN: RwLock<()> = RwLock::new(());

enum Turn {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A test's hold on the shared cluster; dropping the last one deletes the cluster.
struct Use {
    kubeconfig: PathBuf,
    _turn: Turn,
}

impl Drop for Use {
    fn drop(&mut self) {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = shared.as_mut() {
            s.finished += 1;
            if s.finished == TESTS {
                drop(s.guard.take());
            }
        }
    }
}

/// The shared cluster's node lifecycle timings (its config's `nodeLifecycle`): a stopped node is
/// NotReady after GRACE_SECONDS, and its pods are evicted TOLERATION_SECONDS later.
const GRACE_SECONDS: u64 = 20;
const TOLERATION_SECONDS: u64 = 10;

/// The shared cluster (one control plane, two workers), made on first use. None when Docker
/// or kubectl is missing outside CI.
fn cluster(alone: bool) -> Option<Use> {
    if !docker_available() || !require("kubectl", kubectl_path().is_some()) {
        return None;
    }
    let turn = if alone {
        Turn::Alone(TURN.write().unwrap_or_else(|p| p.into_inner()))
    } else {
        Turn::Shared(TURN.read().unwrap_or_else(|p| p.into_inner()))
    };
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if shared.is_none() {
        let _other_files = cluster_lock();
        let (kc, guard) = ClusterGuard::new(CLUSTER);
        // A cluster left by an interrupted earlier run would make create fail.
        kindling(&[
            "delete",
            "cluster",
            "--name",
            CLUSTER,
            "--kubeconfig",
            &kc.to_string_lossy(),
        ]);
        let start = Instant::now();
        create_cluster(
            CLUSTER,
            &kc,
            Some(&format!(
                "kind: Cluster\napiVersion: kindling.dev/v1alpha1\nnodeLifecycle:\n  nodeMonitorGracePeriodSeconds: {GRACE_SECONDS}\n  tolerationSeconds: {TOLERATION_SECONDS}\nnodes:\n- role: control-plane\n- role: worker\n- role: worker\n"
            )),
        )
        .ok("create cluster");
        println!("cluster created in {:.1} s", start.elapsed().as_secs_f64());
        *shared = Some(Shared {
            kubeconfig: kc,
            guard: Some(guard),
            finished: 0,
        });
    }
    let kubeconfig = shared.as_ref().unwrap().kubeconfig.clone();
    Some(Use {
        kubeconfig,
        _turn: turn,
    })
}

fn apply(kc: &Path, manifest: &str) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = kc.with_file_name(format!("manifest-{n}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    kubectl(kc, &["apply", "-f", &path.to_string_lossy()]).ok("apply");
}

fn get_json(kc: &Path, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend(["-o", "json"]);
    serde_json::from_str(&kubectl(kc, &a).ok("get").stdout).expect("kubectl prints JSON")
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a timestamp, not {v}"))
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

fn namespace(kc: &Path, ns: &str) {
    kubectl(kc, &["create", "namespace", ns]).ok("create namespace");
}

#[test]
fn jobs_complete_in_parallel_and_fail_past_their_backoff_limit() {
    let Some(c) = cluster(false) else { return };
    let kc = &c.kubeconfig;
    namespace(kc, "jobs");
    apply(
        kc,
        r#"apiVersion: batch/v1
kind: Job
metadata: {name: count, namespace: jobs}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: kindling/toolbox, command: ["sh", "-c", "sleep 2; echo counted"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: broken, namespace: jobs}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: kindling/toolbox, command: ["sh", "-c", "exit 3"]}
"#,
    );
    let start = Instant::now();
    kubectl(
        kc,
        &[
            "wait",
            "-n",
            "jobs",
            "--for=condition=complete",
            "job/count",
            "--timeout=120s",
        ],
    )
    .ok("kubectl wait for the job to complete");
    println!(
        "job of 3 completions, 2 in parallel, complete in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let job = get_json(kc, &["-n", "jobs", "job/count"]);
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert!(job["status"]["startTime"].is_string() && job["status"]["completionTime"].is_string());
    assert_eq!(condition(&job, "Complete").unwrap()["status"], "True");
    let table = kubectl(kc, &["get", "job", "count", "-n", "jobs"])
        .ok("get job")
        .stdout;
    assert!(
        table.contains("Complete") && table.contains("3/3"),
        "{table}"
    );

    // Pods are labelled and owned like upstream's, and never more than two ran at once.
    let pods = items(&get_json(
        kc,
        &[
            "pods",
            "-n",
            "jobs",
            "-l",
            "batch.kubernetes.io/job-name=count",
        ],
    ));
    assert_eq!(pods.len(), 3, "{pods:?}");
    let uid = job["metadata"]["uid"].as_str().unwrap();
    let mut spans = Vec::new();
    for p in &pods {
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["status"]["phase"], "Succeeded");
        let term = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        spans.push((
            ts(&p["metadata"]["creationTimestamp"]),
            ts(&term["finishedAt"]),
        ));
    }
    for (created, _) in &spans {
        let overlapping = spans
            .iter()
            .filter(|(c, f)| c <= created && created < f)
            .count();
        assert!(overlapping <= 2, "more than 2 pods at once: {spans:?}");
    }

    // A job that keeps failing: two failed pods with backoffLimit 1, then Failed.
    let start = Instant::now();
    kubectl(
        kc,
        &[
            "wait",
            "-n",
            "jobs",
            "--for=condition=failed",
            "job/broken",
            "--timeout=120s",
        ],
    )
    .ok("kubectl wait for the job to fail");
    println!(
        "failing job reached its backoff limit in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let job = get_json(kc, &["-n", "jobs", "job/broken"]);
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(job["status"]["failed"], 2, "{job}");
    assert!(job["status"]["completionTime"].is_null());
    let events = kubectl(
        kc,
        &[
            "get",
            "events",
            "-n",
            "jobs",
            "--field-selector",
            "involvedObject.name=broken",
        ],
    )
    .ok("events")
    .stdout;
    assert!(events.contains("BackoffLimitExceeded"), "{events}");

    // kubectl create job, as the course types it.
    kubectl(
        kc,
        &[
            "create",
            "job",
            "hello",
            "-n",
            "jobs",
            "--image=kindling/toolbox",
            "--",
            "echo",
            "hi",
        ],
    )
    .ok("create job");
    kubectl(
        kc,
        &[
            "wait",
            "-n",
            "jobs",
            "--for=condition=complete",
            "job/hello",
            "--timeout=90s",
        ],
    )
    .ok("wait for job hello");
    kubectl(kc, &["delete", "namespace", "jobs", "--wait=false"]).ok("delete namespace");
}

#[test]
fn cronjobs_start_jobs_each_minute_and_on_demand() {
    let Some(c) = cluster(false) else { return };
    let kc = &c.kubeconfig;
    namespace(kc, "cron");
    kubectl(
        kc,
        &[
            "create",
            "cronjob",
            "tick",
            "-n",
            "cron",
            "--image=kindling/toolbox",
            "--schedule=*/1 * * * *",
            "--",
            "echo",
            "tick",
        ],
    )
    .ok("create cronjob");
    kubectl(
        kc,
        &[
            "create",
            "job",
            "manual",
            "-n",
            "cron",
            "--from=cronjob/tick",
        ],
    )
    .ok("create job --from=cronjob");
    kubectl(
        kc,
        &[
            "wait",
            "-n",
            "cron",
            "--for=condition=complete",
            "job/manual",
            "--timeout=90s",
        ],
    )
    .ok("wait for the manual job");
    let manual = get_json(kc, &["-n", "cron", "job/manual"]);
    assert_eq!(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");

    // The scheduled one, named after its minute, within the next minute or so.
    let start = Instant::now();
    let job = wait_for(
        "a scheduled job of cronjob tick",
        Duration::from_secs(80),
        || {
            items(&get_json(kc, &["jobs", "-n", "cron"]))
                .into_iter()
                .find(|j| j["metadata"]["name"] != "manual")
        },
    );
    println!(
        "scheduled job appeared after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    let minute: i64 = name
        .strip_prefix("tick-")
        .expect("named tick-<minute>")
        .parse()
        .unwrap();
    let stamp =
        ts(&job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]);
    assert_eq!(stamp.as_second(), minute * 60, "{name} vs {stamp}");
    let cj = wait_for("lastScheduleTime", Duration::from_secs(20), || {
        let cj = get_json(kc, &["-n", "cron", "cronjob/tick"]);
        cj["status"]["lastScheduleTime"].is_string().then_some(cj)
    });
    assert_eq!(ts(&cj["status"]["lastScheduleTime"]), stamp);
    kubectl(
        kc,
        &[
            "wait",
            "-n",
            "cron",
            "--for=condition=complete",
            &format!("job/{name}"),
            "--timeout=60s",
        ],
    )
    .ok("wait for the scheduled job");
    // Suspended: no more jobs are started.
    kubectl(
        kc,
        &[
            "patch",
            "cronjob",
            "tick",
            "-n",
            "cron",
            "-p",
            r#"{"spec":{"suspend":true}}"#,
        ],
    )
    .ok("suspend");
    let table = kubectl(kc, &["get", "cronjob", "tick", "-n", "cron"])
        .ok("get cronjob")
        .stdout;
    assert!(
        table.contains("*/1 * * * *") && table.contains("True"),
        "{table}"
    );
    kubectl(kc, &["delete", "namespace", "cron", "--wait=false"]).ok("delete namespace");
}

#[test]
fn daemonsets_run_on_every_worker_and_roll_out_changes() {
    let Some(c) = cluster(false) else { return };
    let kc = &c.kubeconfig;
    namespace(kc, "ds");
    apply(
        kc,
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: ds}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      # busybox httpd ignores SIGTERM as PID 1: without this each replaced pod takes 30 s.
      terminationGracePeriodSeconds: 1
      containers:
      - {name: whoami, image: kindling/whoami}
"#,
    );
    let start = Instant::now();
    let out = kubectl(
        kc,
        &[
            "rollout",
            "status",
            "ds/agent",
            "-n",
            "ds",
            "--timeout=120s",
        ],
    )
    .ok("rollout status");
    println!(
        "daemonset on both workers in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        out.stdout
            .contains("daemon set \"agent\" successfully rolled out"),
        "{}",
        out.stdout
    );
    let nodes_of = |hash: Option<&str>| -> Vec<String> {
        let mut n: Vec<String> = items(&get_json(kc, &["pods", "-n", "ds", "-l", "app=agent"]))
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                hash.is_none_or(|h| p["metadata"]["labels"]["controller-revision-hash"] == h)
            })
            .map(|p| {
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        n.sort();
        n
    };
    // Every worker, not the tainted control plane, each pinned by node affinity.
    assert_eq!(
        nodes_of(None),
        [format!("{CLUSTER}-worker"), format!("{CLUSTER}-worker2")]
    );
    let pod = &items(&get_json(kc, &["pods", "-n", "ds", "-l", "app=agent"]))[0];
    let term = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0];
    assert_eq!(term["matchFields"][0]["key"], "metadata.name");
    let ds = get_json(kc, &["-n", "ds", "ds/agent"]);
    for f in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ] {
        assert_eq!(ds["status"][f], 2, "{f}: {}", ds["status"]);
    }

    // A change rolls every pod to the new revision; history has both.
    let start = Instant::now();
    kubectl(kc, &["set", "env", "ds/agent", "-n", "ds", "COLOUR=blue"]).ok("set env");
    kubectl(
        kc,
        &[
            "rollout",
            "status",
            "ds/agent",
            "-n",
            "ds",
            "--timeout=120s",
        ],
    )
    .ok("rollout status after set env");
    println!(
        "daemonset rolled to a new template in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let revs = items(&get_json(kc, &["controllerrevisions", "-n", "ds"]));
    assert_eq!(revs.len(), 2, "{revs:?}");
    let newest = revs.iter().max_by_key(|r| r["revision"].as_i64()).unwrap();
    assert_eq!(newest["revision"], 2);
    let hash = newest["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap();
    assert_eq!(nodes_of(Some(hash)).len(), 2);
    let history = kubectl(kc, &["rollout", "history", "ds/agent", "-n", "ds"])
        .ok("history")
        .stdout;
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // --cascade=orphan leaves the pods running, no longer owned.
    kubectl(
        kc,
        &["delete", "ds", "agent", "-n", "ds", "--cascade=orphan"],
    )
    .ok("delete orphan");
    let orphans = wait_for("orphaned pods", Duration::from_secs(30), || {
        let pods = items(&get_json(kc, &["pods", "-n", "ds", "-l", "app=agent"]));
        pods.iter()
            .all(|p| p["metadata"]["ownerReferences"].is_null())
            .then_some(pods)
    });
    assert_eq!(orphans.len(), 2);
    kubectl(kc, &["delete", "namespace", "ds", "--wait=false"]).ok("delete namespace");
}

#[test]
fn statefulsets_start_in_order_and_scale_down_in_reverse() {
    let Some(c) = cluster(false) else { return };
    let kc = &c.kubeconfig;
    namespace(kc, "sts");
    apply(
        kc,
        r#"apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: sts}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: sts}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: whoami
        image: kindling/whoami
        readinessProbe: {httpGet: {path: /, port: 80}, initialDelaySeconds: 2, periodSeconds: 1}
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
    );
    let start = Instant::now();
    let out = kubectl(
        kc,
        &[
            "rollout",
            "status",
            "sts/web",
            "-n",
            "sts",
            "--timeout=180s",
        ],
    )
    .ok("rollout status");
    println!(
        "statefulset of 3 ready in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(out.stdout.contains("roll out complete"), "{}", out.stdout);
    let pods =
        |()| -> Vec<Value> { items(&get_json(kc, &["pods", "-n", "sts", "-l", "app=nginx"])) };
    let mut all = pods(());
    all.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap().to_string());
    let names: Vec<&str> = all
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    // Each pod was created only after the one before it was Ready (at least two seconds,
    // the probe's initial delay, after it); times are whole seconds, hence the slack.
    for pair in all.windows(2) {
        let (prev, next) = (&pair[0]["metadata"]["name"], &pair[1]["metadata"]["name"]);
        let ready = ts(&condition(&pair[0], "Ready").unwrap()["lastTransitionTime"]);
        let created = ts(&pair[1]["metadata"]["creationTimestamp"]);
        let prev_created = ts(&pair[0]["metadata"]["creationTimestamp"]);
        assert!(
            ready.as_second() <= created.as_second() + 1,
            "{next} created at {created} before {prev} was ready at {ready}"
        );
        assert!(
            created.as_second() - prev_created.as_second() >= 1,
            "{next} created at {created}, with {prev} at {prev_created}"
        );
    }
    for p in &all {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(p["spec"]["hostname"], name);
        assert_eq!(p["spec"]["subdomain"], "nginx");
        assert_eq!(
            p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            name
        );
    }
    // Each pod resolves by its stable name under the headless Service, from a pod beside them
    // (the pods' search path makes `web-0.nginx` enough).
    kubectl(
        kc,
        &[
            "run",
            "client",
            "-n",
            "sts",
            "--image=kindling/toolbox",
            "--restart=Never",
            "--command",
            "--",
            "sleep",
            "600",
        ],
    )
    .ok("run client");
    kubectl(
        kc,
        &[
            "wait",
            "-n",
            "sts",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=60s",
        ],
    )
    .ok("client ready");
    for p in &all {
        let name = p["metadata"]["name"].as_str().unwrap();
        let ip = p["status"]["podIP"].as_str().unwrap();
        let out = kubectl(
            kc,
            &[
                "exec",
                "-n",
                "sts",
                "client",
                "--",
                "nslookup",
                &format!("{name}.nginx"),
            ],
        )
        .ok("nslookup");
        let fqdn = format!("{name}.nginx.sts.svc.cluster.local");
        assert!(
            out.stdout.contains(&format!("Name:\t{fqdn}"))
                && out.stdout.contains(&format!("Address: {ip}")),
            "{name}.nginx did not resolve to {ip}:\n{}",
            out.stdout
        );
    }
    let claims: Vec<String> = items(&get_json(kc, &["pvc", "-n", "sts"]))
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for want in ["www-web-0", "www-web-1", "www-web-2"] {
        assert!(claims.iter().any(|c| c == want), "{claims:?}");
    }
    let sts = get_json(kc, &["-n", "sts", "sts/web"]);
    assert_eq!(sts["status"]["readyReplicas"], 3);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert!(
        sts["status"]["currentRevision"]
            .as_str()
            .unwrap()
            .starts_with("web-")
    );

    // A template change rolls the pods from the highest ordinal down, one at a time.
    kubectl(kc, &["set", "env", "sts/web", "-n", "sts", "COLOUR=blue"]).ok("set env");
    let start = Instant::now();
    kubectl(
        kc,
        &[
            "rollout",
            "status",
            "sts/web",
            "-n",
            "sts",
            "--timeout=180s",
        ],
    )
    .ok("rollout status after set env");
    println!(
        "statefulset rolled in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let sts = wait_for(
        "currentRevision to catch up",
        Duration::from_secs(30),
        || {
            let sts = get_json(kc, &["-n", "sts", "sts/web"]);
            (sts["status"]["currentRevision"] == sts["status"]["updateRevision"]).then_some(sts)
        },
    );
    let update = sts["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rolled = pods(());
    rolled.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap().to_string());
    for p in &rolled {
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"],
            update.as_str()
        );
    }
    let created: Vec<jiff::Timestamp> = rolled
        .iter()
        .map(|p| ts(&p["metadata"]["creationTimestamp"]))
        .collect();
    assert!(
        created[2] < created[1] && created[1] < created[0],
        "not rolled from web-2 down: {created:?}"
    );

    // Scale down to one: web-2 goes before web-1, never the other way round.
    kubectl(kc, &["scale", "sts/web", "-n", "sts", "--replicas=1"]).ok("scale");
    let mut order = Vec::new();
    wait_for(
        "scale down to web-0 alone",
        Duration::from_secs(120),
        || {
            let names: Vec<String> = pods(())
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            for gone in ["web-2", "web-1"] {
                if !names.iter().any(|n| n == gone) && !order.contains(&gone) {
                    order.push(gone);
                }
            }
            (names == ["web-0"]).then_some(())
        },
    );
    assert_eq!(order, ["web-2", "web-1"]);
    kubectl(kc, &["delete", "namespace", "sts", "--wait=false"]).ok("delete namespace");
}

#[test]
fn a_stopped_worker_goes_not_ready_and_its_pods_come_back_on_other_nodes() {
    let Some(c) = cluster(true) else { return };
    let kc = &c.kubeconfig;
    namespace(kc, "fail");
    // New namespaces get their default ServiceAccount and root CA from the controllers.
    wait_for(
        "the default service account",
        Duration::from_secs(20),
        || {
            (kubectl(kc, &["get", "serviceaccount", "default", "-n", "fail"]).code == 0)
                .then_some(())
        },
    );
    wait_for("kube-root-ca.crt", Duration::from_secs(20), || {
        (kubectl(kc, &["get", "configmap", "kube-root-ca.crt", "-n", "fail"]).code == 0)
            .then_some(())
    });
    kubectl(
        kc,
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "fail",
            "--image=kindling/whoami",
            "--replicas=3",
        ],
    )
    .ok("create deployment");
    kubectl(
        kc,
        &["expose", "deployment", "web", "-n", "fail", "--port=80"],
    )
    .ok("expose");
    kubectl(
        kc,
        &[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "fail",
            "--timeout=120s",
        ],
    )
    .ok("rollout status");
    let pods = || -> Vec<(String, String)> {
        items(&get_json(kc, &["pods", "-n", "fail", "-l", "app=web"]))
            .iter()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running"
            })
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_string(),
                    p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    let before = pods();
    // The cluster config's toleration reached every new pod, as the API server's default.
    let spec = get_json(kc, &["pod", &before[0].0, "-n", "fail"]);
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let t = spec["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == key)
            .unwrap_or_else(|| panic!("no {key} toleration: {spec:#}"));
        assert_eq!(t["tolerationSeconds"], TOLERATION_SECONDS, "{t}");
    }
    // A worker with pods, the fewer the better: the others keep the Service answering.
    let victim = [format!("{CLUSTER}-worker"), format!("{CLUSTER}-worker2")]
        .into_iter()
        .map(|w| (before.iter().filter(|(_, n)| *n == w).count(), w))
        .filter(|(n, _)| *n > 0)
        .min()
        .unwrap()
        .1;
    let moved: Vec<String> = before
        .iter()
        .filter(|(_, n)| *n == victim)
        .map(|(p, _)| p.clone())
        .collect();
    // The scheduler spreads a Deployment's pods, so the other worker has some too.
    assert!(
        !moved.is_empty() && moved.len() < before.len(),
        "{before:?}"
    );
    let ip = get_json(kc, &["service", "web", "-n", "fail"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let cp = format!("{CLUSTER}-control-plane");
    let answers = |n: usize| -> usize {
        let script = format!(
            "ok=0; for i in $(seq {n}); do curl -s -m 2 -o /dev/null http://{ip}/ && ok=$((ok+1)); done; echo $ok"
        );
        docker(&["exec", &cp, "sh", "-c", &script])
            .ok("curl")
            .stdout
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(answers(5), 5);

    // A client asks all along, retrying a request twice as clients do (each try a new
    // connection, so kube-proxy picks an endpoint again).
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (probing, cp, ip) = (probing.clone(), cp.clone(), ip.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut log = Vec::new();
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                let curl =
                    format!("curl -sf -m 1 --retry 2 --retry-delay 0 -o /dev/null http://{ip}/");
                let ok = docker(&["exec", &cp, "sh", "-c", &curl]).code == 0;
                log.push((start.elapsed(), ok));
                std::thread::sleep(Duration::from_millis(300));
            }
            log
        })
    };

    let stopped = Instant::now();
    docker(&["stop", &victim]).ok("docker stop");
    let node = wait_for(
        "the stopped node to be NotReady",
        Duration::from_secs(90),
        || {
            let n = get_json(kc, &["node", &victim]);
            (condition(&n, "Ready")?["status"] == "Unknown").then_some(n)
        },
    );
    let not_ready = stopped.elapsed();
    assert!(
        not_ready <= Duration::from_secs(GRACE_SECONDS + 10 + 10),
        "NotReady only {not_ready:?} after the stop, with a {GRACE_SECONDS} s grace"
    );
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let table = kubectl(kc, &["get", "node", &victim]).ok("get node").stdout;
    assert!(table.contains("NotReady"), "{table}");
    let tainted = wait_for("unreachable taints", Duration::from_secs(20), || {
        let n = get_json(kc, &["node", &victim]);
        let taints: Vec<String> = n["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{}:{}",
                    t["key"].as_str().unwrap(),
                    t["effect"].as_str().unwrap()
                )
            })
            .collect();
        (taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
            && taints.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()))
        .then_some(taints)
    });
    println!(
        "worker NotReady {:.1} s after docker stop, taints {tainted:?}",
        not_ready.as_secs_f64()
    );
    // Its pods are no longer Ready, so the Service answers from the others meanwhile.
    wait_for(
        "the service to answer every request",
        Duration::from_secs(30),
        || (answers(10) == 10).then_some(()),
    );

    let back = wait_for(
        "3 running pods on the other nodes",
        Duration::from_secs(150),
        || {
            let now = pods();
            (now.len() == 3 && now.iter().all(|(_, n)| *n != victim)).then_some(now)
        },
    );
    let recovered = stopped.elapsed();
    println!(
        "{} pod(s) of the stopped worker running elsewhere {:.1} s after docker stop",
        moved.len(),
        recovered.as_secs_f64()
    );
    assert!(back.iter().all(|(p, _)| !moved.contains(p)));
    // Within the configured time: the grace (plus the heartbeat that may have just gone out
    // before the stop), the toleration, and the replacements' start.
    let budget = Duration::from_secs(GRACE_SECONDS + 10 + TOLERATION_SECONDS + 30);
    assert!(
        recovered <= budget,
        "pods came back {recovered:?} after the stop, over the configured {budget:?}"
    );
    wait_for(
        "the service to answer every request",
        Duration::from_secs(30),
        || (answers(10) == 10).then_some(()),
    );
    probing.store(false, std::sync::atomic::Ordering::Relaxed);
    let log = prober.join().unwrap();
    let answered = log.iter().filter(|(_, ok)| *ok).count();
    let mut longest = Duration::ZERO;
    let mut last_ok = Duration::ZERO;
    for (at, ok) in &log {
        longest = longest.max(*at - last_ok);
        if *ok {
            last_ok = *at;
        }
    }
    println!(
        "while the worker was down: {answered} of {} requests answered, longest time without an answer {:.1} s",
        log.len(),
        longest.as_secs_f64()
    );
    assert!(
        longest <= Duration::from_secs(15),
        "the Service went {longest:?} without answering while a worker was down"
    );
    let events = kubectl(kc, &["get", "events", "-n", "fail"])
        .ok("events")
        .stdout;
    assert!(events.contains("TaintManagerEviction"), "{events}");

    // The worker comes back: Ready again, taints gone.
    docker(&["start", &victim]).ok("docker start");
    wait_for(
        "the worker to be Ready and untainted",
        Duration::from_secs(120),
        || {
            let n = get_json(kc, &["node", &victim]);
            let untainted = n["spec"]["taints"].as_array().is_none_or(|t| {
                t.iter().all(|t| {
                    !t["key"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("node.kubernetes.io/")
                })
            });
            (condition(&n, "Ready")?["status"] == "True" && untainted).then_some(())
        },
    );
    kubectl(kc, &["delete", "namespace", "fail", "--wait=false"]).ok("delete namespace");
}
