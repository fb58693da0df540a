//! End-to-end: pods bound to a node run as real containers through CRI and containerd, as a
//! user sees them with kubectl (status, -o wide, CrashLoopBackOff, missing images, deletion).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The test's own image (Debian base running `sleep`), imported into the node's containerd.
/// It also stands in for the pause image until the bundled one is preloaded.
const TEST_IMAGE: &str = "kindling-test/pods:sleep";
const PAUSE: &str = "docker.io/kindling/pause:3.10";

/// A bridge + host-local network for pods, until flanneld writes the real conflist.
const TEST_CONFLIST: &str = r#"{"cniVersion":"0.4.0","name":"kindling-test","plugins":[
{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"hairpinMode":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.7.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
{"type":"portmap","capabilities":{"portMappings":true}}]}"#;

fn docker_and_kubectl() -> bool {
    docker_available() && require("kubectl", kubectl_path().is_some())
}

fn node_sh(node: &str, script: &str) -> Run {
    docker(&["exec", node, "sh", "-c", script])
}

/// Builds the test image on the host (once) and imports it into the node, also tagged as the
/// pause image when the node has none.
fn load_test_image(node: &str) {
    if docker(&["image", "inspect", TEST_IMAGE]).code != 0 {
        let dir = std::env::temp_dir().join(format!("kindling-pods-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM kindling/debian-base:bookworm\nCMD [\"sleep\", \"infinity\"]\n",
        )
        .unwrap();
        docker(&["build", "-q", "-t", TEST_IMAGE, &dir.to_string_lossy()]).ok("docker build");
    }
    let script =
        format!("docker save {TEST_IMAGE} | docker exec -i {node} ctr -n k8s.io images import -");
    run(std::process::Command::new("sh").args(["-c", &script])).ok("import the test image");
    let has_pause = node_sh(
        node,
        &format!("ctr -n k8s.io images ls -q | grep -qx {PAUSE}"),
    );
    if has_pause.code != 0 {
        node_sh(
            node,
            &format!("ctr -n k8s.io images tag docker.io/{TEST_IMAGE} {PAUSE}"),
        )
        .ok("tag the pause image");
    }
}

/// Writes the test network unless a CNI config (flannel's) is already there.
fn ensure_cni(node: &str) {
    let script = format!(
        "ls /etc/cni/net.d/*.conflist >/dev/null 2>&1 || \
         (mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-test.conflist <<'EOF'\n{TEST_CONFLIST}\nEOF\n)"
    );
    node_sh(node, &script).ok("write the CNI config");
}

fn apply(kc: &Path, name: &str, manifest: &str) {
    let path = kc.with_file_name(format!("{name}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    kubectl(kc, &["apply", "-f", &path.to_string_lossy()]).ok("kubectl apply");
}

fn pod_json(kc: &Path, name: &str) -> Option<Value> {
    let r = kubectl(kc, &["get", "pod", name, "-o", "json"]);
    (r.code == 0).then(|| serde_json::from_str(&r.stdout).unwrap())
}

/// Polls the pod until `done` holds, or fails showing the last state seen.
fn wait_pod(kc: &Path, name: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < timeout {
        if let Some(p) = pod_json(kc, name) {
            if done(&p) {
                return p;
            }
            last = p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pod {name} did not get there in {timeout:?}; last seen:\n{last:#}");
}

fn pod_manifest(
    name: &str,
    node: &str,
    image: &str,
    extra_container: &str,
    extra_spec: &str,
) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
{extra_spec}  containers:
  - name: app
    image: {image}
{extra_container}"
    )
}

#[test]
fn pods_run_crash_loop_miss_images_and_stop_on_delete() {
    if !docker_and_kubectl() {
        return;
    }
    let _lock = cluster_lock();
    let name = "pods-e2e";
    let (kc, _guard) = ClusterGuard::new(name);
    let kcs = kc.to_string_lossy().into_owned();
    kindling(&["create", "cluster", "--name", name, "--kubeconfig", &kcs]).ok("create cluster");
    let node = format!("{name}-control-plane");
    ensure_cni(&node);
    load_test_image(&node);

    // A pod with its node set reaches Running with an IP, and its env sees the downward API.
    let started = Instant::now();
    apply(
        &kc,
        "web",
        &pod_manifest(
            "web",
            &node,
            TEST_IMAGE,
            "    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo \"hello from $POD_NAME in $POD_NS at $POD_IP on $NODE\"; exec sleep infinity']
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
",
            "",
        ),
    );
    let web = wait_pod(&kc, "web", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string()
    });
    eprintln!(
        "pod start latency (kubectl apply → Running seen): {:?}",
        started.elapsed()
    );
    let ip = web["status"]["podIP"].as_str().unwrap().to_string();
    assert!(
        ip.starts_with("10.244."),
        "pod IP {ip} is in the pod network"
    );
    let cs = &web["status"]["containerStatuses"][0];
    assert_eq!(cs["name"], "app");
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["restartCount"], 0);
    assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
    assert_eq!(cs["image"], format!("docker.io/{TEST_IMAGE}"));
    let cid = cs["containerID"]
        .as_str()
        .unwrap()
        .strip_prefix("containerd://")
        .unwrap()
        .to_string();
    let ready = web["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert!(web["status"]["hostIP"].is_string());

    let wide = kubectl(&kc, &["get", "pods", "-o", "wide"])
        .ok("get pods -o wide")
        .stdout;
    let row = wide
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(
        row.contains("Running") && row.contains(&ip) && row.contains(&node),
        "{wide}"
    );

    // The container really runs in containerd, logging where kubectl logs will read it.
    let tasks = node_sh(&node, "ctr -n k8s.io tasks ls")
        .ok("tasks ls")
        .stdout;
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&cid) && l.contains("RUNNING")),
        "{tasks}"
    );
    let uid = web["metadata"]["uid"].as_str().unwrap();
    let log = node_sh(
        &node,
        &format!("cat /var/log/pods/default_web_{uid}/app/0.log"),
    )
    .ok("read log")
    .stdout;
    assert!(
        log.contains(&format!("hello from web in default at {ip} on {node}")),
        "{log}"
    );
    let describe = kubectl(&kc, &["describe", "pod", "web"])
        .ok("describe")
        .stdout;
    for reason in ["Pulled", "Created", "Started"] {
        assert!(
            describe.contains(reason),
            "describe shows {reason}:\n{describe}"
        );
    }

    // A restarted kubelet adopts the running pod instead of starting it again.
    node_sh(&node, "kill $(pidof kubelet)").ok("kill kubelet");
    std::thread::sleep(Duration::from_secs(4));
    let again = pod_json(&kc, "web").unwrap();
    assert_eq!(
        again["status"]["containerStatuses"][0]["containerID"],
        format!("containerd://{cid}")
    );
    assert_eq!(again["status"]["containerStatuses"][0]["restartCount"], 0);
    let sandboxes = node_sh(&node, "ctr -n k8s.io containers ls -q")
        .ok("containers ls")
        .stdout;
    assert_eq!(
        sandboxes.lines().count(),
        2,
        "one sandbox and one container:\n{sandboxes}"
    );

    // A container that keeps failing goes into CrashLoopBackOff with a growing restart count.
    apply(
        &kc,
        "crash",
        &pod_manifest(
            "crash",
            &node,
            TEST_IMAGE,
            "    imagePullPolicy: IfNotPresent\n    command: [sh, -c, 'exit 1']\n",
            "",
        ),
    );
    let crash = wait_pod(&kc, "crash", Duration::from_secs(60), |p| {
        let cs = &p["status"]["containerStatuses"][0];
        cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && cs["restartCount"].as_i64() >= Some(2)
    });
    let cs = &crash["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    let msg = cs["state"]["waiting"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("back-off 20s restarting failed container=app pod=crash_default("),
        "{msg}"
    );
    assert_eq!(crash["status"]["phase"], "Running");
    let get = kubectl(&kc, &["get", "pod", "crash"])
        .ok("get crash")
        .stdout;
    assert!(get.contains("CrashLoopBackOff"), "{get}");

    // Images the node lacks: the user is told how to load them.
    apply(
        &kc,
        "never",
        &pod_manifest(
            "never",
            &node,
            "example/missing:1",
            "    imagePullPolicy: Never\n",
            "",
        ),
    );
    apply(
        &kc,
        "absent",
        &pod_manifest("absent", &node, "example/missing:1", "", ""),
    );
    for (pod, reasons) in [
        ("never", &["ErrImageNeverPull"][..]),
        ("absent", &["ErrImagePull", "ImagePullBackOff"][..]),
    ] {
        let p = wait_pod(&kc, pod, Duration::from_secs(30), |p| {
            let r = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
            reasons.iter().any(|x| r == *x)
        });
        let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap();
        assert!(
            msg.contains("kindling load docker-image example/missing:1"),
            "{msg}"
        );
        assert_eq!(p["status"]["phase"], "Pending");
    }
    wait_pod(&kc, "absent", Duration::from_secs(10), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });

    // Deleting a pod stops and removes its containers and sandbox.
    kubectl(&kc, &["delete", "pod", "web", "crash", "never", "absent"]).ok("delete pods");
    let start = Instant::now();
    loop {
        let containers = node_sh(&node, "ctr -n k8s.io containers ls -q")
            .ok("containers ls")
            .stdout;
        let tasks = node_sh(&node, "ctr -n k8s.io tasks ls -q")
            .ok("tasks ls")
            .stdout;
        if containers.trim().is_empty() && tasks.trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "containers left after delete:\n{containers}\ntasks:\n{tasks}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let left = kubectl(&kc, &["get", "pods", "--no-headers"]).ok("get pods");
    assert!(left.stdout.trim().is_empty(), "{}", left.stdout);
}

/// A one-node cluster (pods run on the control plane) with flannel and the bundled images.
fn one_node_cluster(name: &str) -> (std::path::PathBuf, ClusterGuard) {
    let (kc, guard) = ClusterGuard::new(name);
    create_cluster(name, &kc, None).ok("create cluster");
    (kc, guard)
}

/// The events about one pod, as `reason: message` lines.
fn pod_events(kc: &Path, pod: &str) -> Vec<String> {
    let r = kubectl(
        kc,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
            "-o",
            "json",
        ],
    )
    .ok("get events");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn wait_event(kc: &Path, pod: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let events = pod_events(kc, pod);
        if let Some(e) = events.iter().find(|e| want(e)) {
            return e.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "no such event for {pod}; events:\n{}",
            events.join("\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn condition(pod: &Value, ty: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == ty)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

const PROBE_PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: liveness-exec}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: web-probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: kindling/whoami
    imagePullPolicy: IfNotPresent
    ports: [{name: http, containerPort: 80}]
    readinessProbe:
      httpGet: {path: /, port: http}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {port: 80}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: never-ready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: kindling/whoami
    imagePullPolicy: IfNotPresent
    readinessProbe:
      httpGet: {path: /missing.html, port: 80}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: slow-start}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'sleep 6; touch /tmp/started; sleep 600']
    startupProbe:
      exec: {command: [test, -f, /tmp/started]}
      periodSeconds: 1
      failureThreshold: 20
    livenessProbe:
      exec: {command: [test, -f, /tmp/started]}
      periodSeconds: 1
      failureThreshold: 1
";

#[test]
fn probes_restart_unhealthy_containers_gate_readiness_and_wait_for_startup() {
    if !docker_and_kubectl() {
        return;
    }
    let _lock = cluster_lock();
    let (kc, _guard) = one_node_cluster("pods-probes");
    apply(&kc, "probes", PROBE_PODS);
    // Caught early, the slow starter runs but has not started (its startup probe fails).
    let p = wait_pod(&kc, "slow-start", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(
        (&cs["started"], &cs["ready"]),
        (&false.into(), &false.into()),
        "{cs}"
    );

    // A failing liveness probe kills the container and the kubelet starts it again.
    let p = wait_pod(&kc, "liveness-exec", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
    });
    assert_eq!(p["status"]["phase"], "Running");
    let killing = wait_event(&kc, "liveness-exec", Duration::from_secs(10), |e| {
        e.starts_with("Killing: ")
    });
    assert_eq!(
        killing,
        "Killing: Container app failed liveness probe, will be restarted"
    );
    let unhealthy = wait_event(&kc, "liveness-exec", Duration::from_secs(10), |e| {
        e.starts_with("Unhealthy: ")
    });
    assert!(
        unhealthy.starts_with(
            "Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file"
        ),
        "{unhealthy}"
    );

    // An httpGet readiness probe (named port) that succeeds makes the pod Ready; a tcpSocket
    // liveness probe against a listening port never restarts it.
    let p = wait_pod(&kc, "web-probed", Duration::from_secs(30), |p| {
        condition(p, "Ready") == "True"
    });
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);

    // One that gets 404 keeps the pod Running but not Ready, with upstream's wording.
    let p = wait_pod(&kc, "never-ready", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    // (The first probes may come before the server listens: connection refused.)
    let msg = wait_event(&kc, "never-ready", Duration::from_secs(10), |e| {
        e.starts_with("Unhealthy: ") && e.contains("statuscode")
    });
    assert_eq!(
        msg,
        "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404"
    );
    let p = pod_json(&kc, "never-ready").unwrap_or(p);
    assert_eq!(condition(&p, "Ready"), "False");
    assert_eq!(condition(&p, "ContainersReady"), "False");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["started"], true);
    assert!(cs["state"]["running"].is_object(), "{cs}");
    let get = kubectl(&kc, &["get", "pod", "never-ready", "--no-headers"])
        .ok("get")
        .stdout;
    assert!(get.contains("0/1") && get.contains("Running"), "{get}");

    // The startup probe holds the liveness probe back until it succeeds: not started at
    // first, then started and ready without a restart.
    let p = wait_pod(&kc, "slow-start", Duration::from_secs(30), |p| {
        p["status"]["containerStatuses"][0]["started"] == true && condition(p, "Ready") == "True"
    });
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    for pod in ["web-probed", "slow-start"] {
        let p = pod_json(&kc, pod).unwrap();
        assert_eq!(
            p["status"]["containerStatuses"][0]["restartCount"], 0,
            "{pod}"
        );
    }
}

const CONFIGURED: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast, greeting.txt: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: czNjcmV0}
---
apiVersion: v1
kind: Pod
metadata: {name: configured, labels: {app: configured}}
spec:
  terminationGracePeriodSeconds: 1
  hostAliases: [{ip: 10.1.2.3, hostnames: [db.local, cache.local]}]
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    command: [sh, -c, 'echo "MODE=$MODE PASS=$PASS MEM=$MEM_MI CPU=$CPU_M CFG=$CFG_mode";
      echo "cfg=$(cat /etc/cfg/greeting.txt) sec=$(cat /etc/sec/password)";
      echo "labels=$(cat /etc/info/labels | tr "\n" ,) name=$(cat /etc/info/name)";
      echo "proj=$(cat /etc/proj/mode) $(cat /etc/proj/password) $(cat /etc/proj/namespace) $(tr . "\n" < /etc/proj/token | wc -l)";
      echo "sa=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace) $(head -1 /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)";
      echo "data=$(readlink /etc/cfg/mode)";
      cat /etc/hosts; sleep 600']
    env:
    - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
    - {name: PASS, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
    - {name: proj, mountPath: /etc/proj}
  volumes:
  - {name: cfg, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
  - name: proj
    projected:
      sources:
      - configMap: {name: settings, items: [{key: mode, path: mode}]}
      - secret: {name: creds}
      - downwardAPI: {items: [{path: namespace, fieldRef: {fieldPath: metadata.namespace}}]}
      - serviceAccountToken: {path: token, audience: vault}
---
apiVersion: v1
kind: Pod
metadata: {name: missing-cm}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sleep, '600']
    env: [{name: X, valueFrom: {configMapKeyRef: {name: later, key: k}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: missing-key}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sleep, '600']
    env: [{name: X, valueFrom: {configMapKeyRef: {name: settings, key: nokey}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: missing-vol}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sleep, '600']
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes: [{name: cfg, configMap: {name: later}}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  containers:
  - name: app
    image: kindling/toolbox
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'head -1 /etc/hosts; sleep 600']
"#;

#[test]
fn config_maps_secrets_and_the_downward_api_reach_env_volumes_and_hosts() {
    if !docker_and_kubectl() {
        return;
    }
    let _lock = cluster_lock();
    let (kc, _guard) = one_node_cluster("pods-config");
    apply(&kc, "configured", CONFIGURED);

    let p = wait_pod(&kc, "configured", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    let mut logs = String::new();
    let start = Instant::now();
    while !logs.contains("ip6-allrouters") && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(300));
        logs = kubectl(&kc, &["logs", "configured"]).stdout;
    }
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "MODE=fast PASS=s3cret MEM=64 CPU=500 CFG=fast",
            "cfg=hello sec=s3cret",
            "labels=app=\"configured\" name=configured",
            // A JWT: three dot-separated parts.
            "proj=fast s3cret default 2",
            "sa=default -----BEGIN CERTIFICATE-----",
            "data=..data/mode",
        ],
        "{logs}"
    );
    // /etc/hosts as upstream's kubelet writes it.
    assert_eq!(
        lines[6..].join("\n"),
        format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {ip}\tconfigured\n\n# Entries added by HostAliases.\n10.1.2.3\tdb.local\tcache.local"
        ),
        "{logs}"
    );

    // Missing sources: upstream's reasons and messages.
    for (pod, msg) in [
        ("missing-cm", "configmap \"later\" not found"),
        (
            "missing-key",
            "couldn't find key nokey in ConfigMap default/settings",
        ),
    ] {
        let p = wait_pod(&kc, pod, Duration::from_secs(30), |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CreateContainerConfigError"
        });
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
            msg
        );
        wait_event(&kc, pod, Duration::from_secs(10), |e| {
            e == format!("Failed: Error: {msg}")
        });
    }
    wait_event(&kc, "missing-vol", Duration::from_secs(30), |e| {
        e == "FailedMount: MountVolume.SetUp failed for volume \"cfg\" : configmap \"later\" not found"
    });
    assert_eq!(
        pod_json(&kc, "missing-vol").unwrap()["status"]["phase"],
        "Pending"
    );
    // Once the ConfigMap exists, both start.
    kubectl(&kc, &["create", "configmap", "later", "--from-literal=k=v"]).ok("create cm");
    for pod in ["missing-cm", "missing-vol"] {
        wait_pod(&kc, pod, Duration::from_secs(30), |p| {
            p["status"]["phase"] == "Running"
        });
    }

    // Host-network pods see the node's own hosts file.
    wait_pod(&kc, "hostnet", Duration::from_secs(30), |p| {
        p["status"]["phase"] == "Running"
    });
    std::thread::sleep(Duration::from_secs(1));
    let first = kubectl(&kc, &["logs", "hostnet"]).ok("logs").stdout;
    assert!(!first.contains("Kubernetes-managed"), "{first}");
}

#[test]
fn mirror_pods_show_the_nodes_components_and_come_back_when_deleted() {
    if !docker_and_kubectl() {
        return;
    }
    let _lock = cluster_lock();
    let name = "pods-mirror";
    let (kc, _guard) = one_node_cluster(name);
    let node = format!("{name}-control-plane");

    // The first pod on a brand-new node waits for the bundled pause image instead of failing.
    apply(
        &kc,
        "first",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: first}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: app, image: kindling/whoami}\n",
    );
    wait_pod(&kc, "first", Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Running"
    });
    let events = pod_events(&kc, "first");
    assert!(
        !events
            .iter()
            .any(|e| e.starts_with("FailedCreatePodSandBox")),
        "{events:?}"
    );

    let node_ip = kubectl(
        &kc,
        &[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
        ],
    )
    .ok("node ip")
    .stdout;
    let wanted = [
        format!("etcd-{node}"),
        format!("kube-apiserver-{node}"),
        format!("kube-controller-manager-{node}"),
        format!("kube-scheduler-{node}"),
    ];
    let start = Instant::now();
    loop {
        let out = kubectl(&kc, &["get", "pods", "-n", "kube-system", "--no-headers"])
            .ok("get pods")
            .stdout;
        let all_running = wanted.iter().all(|w| {
            out.lines().any(|l| {
                l.starts_with(&format!("{w} ")) && l.contains("1/1") && l.contains("Running")
            })
        });
        if all_running {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "kube-system pods:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // flannel's mirror pod lives in kube-flannel, which the controller-manager creates with
    // the flannel ConfigMap: it may come a moment after the kube-system ones.
    let start = Instant::now();
    loop {
        let flannel = kubectl(&kc, &["get", "pods", "-n", "kube-flannel", "--no-headers"]).stdout;
        if flannel.starts_with(&format!("kube-flannel-{node} ")) && flannel.contains("Running") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "kube-flannel pods:\n{flannel}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let get = |pod: &str| -> Value {
        let r = kubectl(&kc, &["get", "pod", "-n", "kube-system", pod, "-o", "json"]);
        serde_json::from_str(&r.ok("get mirror pod").stdout).unwrap()
    };
    let etcd = get(&wanted[0]);
    assert_eq!(etcd["status"]["podIP"], node_ip.as_str());
    assert_eq!(etcd["spec"]["hostNetwork"], true);
    assert_eq!(etcd["spec"]["nodeName"], node.as_str());
    assert_eq!(etcd["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(
        etcd["metadata"]["ownerReferences"][0]["name"],
        node.as_str()
    );
    assert!(etcd["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string());
    assert_eq!(etcd["metadata"]["labels"]["component"], "etcd");

    // Deleted, it comes back (a new object) and keeps running: the component never stopped.
    let old_uid = etcd["metadata"]["uid"].as_str().unwrap().to_string();
    // --wait=false: kubectl's wait for the old UID to vanish sometimes misses the DELETED event
    // when the replacement comes within milliseconds (an API server watch issue, not the test's).
    kubectl(
        &kc,
        &[
            "delete",
            "pod",
            "-n",
            "kube-system",
            &wanted[0],
            "--wait=false",
        ],
    )
    .ok("delete mirror pod");
    let start = Instant::now();
    loop {
        let r = kubectl(
            &kc,
            &["get", "pod", "-n", "kube-system", &wanted[0], "-o", "json"],
        );
        if r.code == 0 {
            let p: Value = serde_json::from_str(&r.stdout).unwrap();
            if p["metadata"]["uid"] != old_uid.as_str() && p["status"]["phase"] == "Running" {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "etcd's mirror pod did not come back"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    kubectl(&kc, &["get", "--raw", "/readyz"]).ok("the API server still answers");
}
