//! Pod status from what the runtime reports: phase, conditions and container statuses, built
//! the way upstream's kubelet builds them (`kubelet_pods.go` getPhase, `status/generate.go`).

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::images;

/// What the runtime says about one container instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    pub id: String,
    pub attempt: u32,
    pub state: InstanceState,
    /// Nanoseconds since the epoch; 0 when not yet.
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    /// The runtime's reason (e.g. OOMKilled) and message, if any.
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InstanceState {
    #[default]
    Created,
    Running,
    Exited,
    Unknown,
}

/// Everything known about one container of the pod.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    pub name: String,
    /// The image as written in the pod spec.
    pub image: String,
    /// The newest instance and the one before it.
    pub current: Option<Instance>,
    pub previous: Option<Instance>,
    /// Why the container is waiting, when the kubelet knows better than the runtime
    /// (ErrImagePull, CrashLoopBackOff, CreateContainerError ...): reason and message.
    pub waiting: Option<(String, String)>,
    /// The running instance's probe results, (started, ready); None means no probes to wait
    /// for, so running is enough.
    pub probed: Option<(bool, bool)>,
}

impl ContainerView {
    fn running(&self) -> bool {
        self.waiting.is_none()
            && self
                .current
                .as_ref()
                .is_some_and(|i| i.state == InstanceState::Running)
    }
    fn started(&self) -> bool {
        self.running() && self.probed.is_none_or(|p| p.0)
    }
    fn ready(&self) -> bool {
        self.running() && self.probed.is_none_or(|p| p.1)
    }
    fn exited(&self) -> Option<&Instance> {
        self.current
            .as_ref()
            .filter(|i| i.state == InstanceState::Exited)
    }
}

/// The pod-level inputs.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub host_ip: String,
    pub pod_ip: String,
    pub sandbox_ready: bool,
    /// RFC 3339, when the kubelet first took the pod on.
    pub start_time: String,
    pub init: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
}

pub fn rfc3339_nanos(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(crate::node::whole_seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

fn terminated(i: &Instance) -> Value {
    let reason = if !i.reason.is_empty() {
        i.reason.clone()
    } else if i.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    let mut t = json!({"exitCode": i.exit_code, "reason": reason,
        "startedAt": rfc3339_nanos(i.started_at), "finishedAt": rfc3339_nanos(i.finished_at),
        "containerID": format!("containerd://{}", i.id)});
    if !i.message.is_empty() {
        t["message"] = json!(i.message);
    }
    json!({"terminated": t})
}

fn container_status(c: &ContainerView) -> Value {
    let (state, last) = match (&c.waiting, &c.current) {
        (Some((reason, message)), cur) => {
            let last = cur
                .as_ref()
                .filter(|i| i.state == InstanceState::Exited)
                .map(terminated);
            (
                json!({"waiting": {"reason": reason, "message": message}}),
                last,
            )
        }
        (None, Some(i)) => {
            let last = c
                .previous
                .as_ref()
                .filter(|p| p.state == InstanceState::Exited)
                .map(terminated);
            let state = match i.state {
                InstanceState::Running => {
                    json!({"running": {"startedAt": rfc3339_nanos(i.started_at)}})
                }
                InstanceState::Exited => terminated(i),
                _ => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            (state, last)
        }
        (None, None) => (json!({"waiting": {"reason": "ContainerCreating"}}), None),
    };
    let cur = c.current.as_ref();
    let image = cur
        .map(|i| i.image.clone())
        .filter(|s| !s.is_empty() && !s.starts_with("sha256:"))
        .unwrap_or_else(|| images::normalize(&c.image));
    let mut s = json!({
        "name": c.name,
        "state": state,
        "lastState": last.unwrap_or_else(|| json!({})),
        "ready": c.ready(),
        "restartCount": cur.map(|i| i.attempt).unwrap_or(0),
        "image": image,
        "imageID": cur.map(|i| i.image_ref.clone()).unwrap_or_default(),
        "started": c.started(),
    });
    if let Some(i) = cur {
        s["containerID"] = json!(format!("containerd://{}", i.id));
    }
    s
}

/// The pod's phase from its containers, as upstream's getPhase.
pub fn phase(restart_policy: &str, v: &PodView) -> &'static str {
    for c in &v.init {
        match c.exited() {
            Some(i) if i.exit_code == 0 && c.waiting.is_none() => continue,
            Some(_) if restart_policy == "Never" => return "Failed",
            _ => return "Pending",
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &v.containers {
        if c.running() {
            running += 1;
        } else if let Some(i) = c.exited() {
            stopped += 1;
            if i.exit_code == 0 {
                succeeded += 1;
            }
        } else if c.waiting.is_some()
            && c.current
                .as_ref()
                .is_some_and(|i| i.state == InstanceState::Exited)
        {
            // Waiting to restart after a crash counts as stopped, so the pod stays Running.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

/// The status merge patch for `pods/<name>/status`. Conditions keep their lastTransitionTime
/// from `pod`'s current status when their value is unchanged.
pub fn build(pod: &Pod, v: &PodView, now: &str) -> Value {
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = phase(restart_policy, v);
    let old = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let cond = |ty: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .and_then(|cs| cs.iter().find(|c| c.type_ == ty && c.status == status))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| now.to_string());
        let mut c = json!({"type": ty, "status": status, "lastProbeTime": null,
                           "lastTransitionTime": since});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let names = |cs: &[&ContainerView]| {
        format!(
            "[{}]",
            cs.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let init_pending: Vec<&ContainerView> = v
        .init
        .iter()
        .filter(|c| c.exited().is_none_or(|i| i.exit_code != 0) || c.waiting.is_some())
        .collect();
    let unready: Vec<&ContainerView> = v.containers.iter().filter(|c| !c.ready()).collect();
    let completed = phase == "Succeeded";
    let (ready_reason, ready_msg) = if completed {
        (Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        )
    };
    let (init_reason, init_msg) = if completed && init_pending.is_empty() {
        (Some("PodCompleted"), None)
    } else if init_pending.is_empty() {
        (None, None)
    } else {
        (
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(&init_pending)
            )),
        )
    };
    let ready = unready.is_empty() && !v.containers.is_empty();
    let mut conditions = vec![
        cond("PodReadyToStartContainers", v.sandbox_ready, None, None),
        cond(
            "Initialized",
            init_pending.is_empty(),
            init_reason,
            init_msg,
        ),
        cond("Ready", ready, ready_reason, ready_msg.clone()),
        cond("ContainersReady", ready, ready_reason, ready_msg),
        cond("PodScheduled", true, None, None),
    ];
    // kubectl describe shows them in upstream's order.
    conditions.sort_by_key(|c| {
        [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        .iter()
        .position(|t| c["type"] == *t)
    });
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": v.host_ip,
        "hostIPs": [{"ip": v.host_ip}],
        "startTime": v.start_time,
        "qosClass": super::spec::qos_class(pod),
        "containerStatuses": v.containers.iter().map(container_status).collect::<Vec<_>>(),
    });
    if !v.init.is_empty() {
        status["initContainerStatuses"] =
            json!(v.init.iter().map(container_status).collect::<Vec<_>>());
    }
    if !v.pod_ip.is_empty() {
        status["podIP"] = json!(v.pod_ip);
        status["podIPs"] = json!([{"ip": v.pod_ip}]);
    }
    json!({"status": status})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(attempt: u32) -> Instance {
        Instance {
            id: format!("c{attempt}"),
            attempt,
            state: InstanceState::Running,
            started_at: 1_700_000_000_000_000_000,
            image: "docker.io/kindling/whoami:latest".into(),
            image_ref: "sha256:aaa".into(),
            ..Default::default()
        }
    }

    fn exited(attempt: u32, code: i32) -> Instance {
        Instance {
            state: InstanceState::Exited,
            exit_code: code,
            finished_at: 1_700_000_005_000_000_000,
            ..running(attempt)
        }
    }

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "kindling/whoami"}]}}))
        .unwrap()
    }

    fn view(c: ContainerView) -> PodView {
        PodView {
            host_ip: "172.18.0.3".into(),
            pod_ip: "10.244.1.7".into(),
            sandbox_ready: true,
            start_time: "2026-01-01T00:00:00Z".into(),
            init: vec![],
            containers: vec![c],
        }
    }

    fn app(current: Option<Instance>) -> ContainerView {
        ContainerView {
            name: "app".into(),
            image: "kindling/whoami".into(),
            current,
            ..Default::default()
        }
    }

    #[test]
    fn a_running_container_makes_a_ready_running_pod() {
        let s = build(
            &pod("Always"),
            &view(app(Some(running(0)))),
            "2026-01-01T00:00:01Z",
        );
        let st = &s["status"];
        assert_eq!(st["phase"], "Running");
        assert_eq!(st["podIP"], "10.244.1.7");
        assert_eq!(st["podIPs"][0]["ip"], "10.244.1.7");
        let cs = &st["containerStatuses"][0];
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["containerID"], "containerd://c0");
        assert_eq!(cs["image"], "docker.io/kindling/whoami:latest");
        assert_eq!(cs["state"]["running"]["startedAt"], "2023-11-14T22:13:20Z");
        let ready = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(st["conditions"][4]["type"], "PodScheduled");
    }

    #[test]
    fn a_crash_looping_container_waits_with_its_last_termination() {
        let mut c = app(Some(exited(3, 1)));
        c.waiting = Some(("CrashLoopBackOff".into(), "back-off 40s ...".into()));
        let s = build(&pod("Always"), &view(c), "t");
        let cs = &s["status"]["containerStatuses"][0];
        assert_eq!(s["status"]["phase"], "Running");
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cs["restartCount"], 3);
        assert_eq!(cs["ready"], false);
        let ready = &s["status"]["conditions"][2];
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [app]");
    }

    #[test]
    fn phases_follow_the_restart_policy() {
        assert_eq!(phase("Never", &view(app(Some(exited(0, 0))))), "Succeeded");
        assert_eq!(phase("Never", &view(app(Some(exited(0, 2))))), "Failed");
        assert_eq!(
            phase("OnFailure", &view(app(Some(exited(0, 0))))),
            "Succeeded"
        );
        assert_eq!(phase("Always", &view(app(None))), "Pending");
        let mut missing = app(None);
        missing.waiting = Some(("ErrImageNeverPull".into(), "m".into()));
        assert_eq!(phase("Always", &view(missing)), "Pending");
        let mut v = view(app(None));
        v.init = vec![ContainerView {
            name: "setup".into(),
            current: Some(exited(0, 1)),
            ..Default::default()
        }];
        assert_eq!(phase("Never", &v), "Failed");
        assert_eq!(phase("Always", &v), "Pending");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let mut p = pod("Always");
        let first = build(&p, &view(app(Some(running(0)))), "2026-01-01T00:00:01Z");
        p.status = Some(serde_json::from_value(first["status"].clone()).unwrap());
        let second = build(&p, &view(app(Some(running(0)))), "2026-01-01T00:09:00Z");
        assert_eq!(
            second["status"]["conditions"][2]["lastTransitionTime"],
            "2026-01-01T00:00:01Z"
        );
    }
}
