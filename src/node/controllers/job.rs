//! The Job controller: runs pods from a Job's template until `completions` of them succeed,
//! `parallelism` at a time, failing the Job past `backoffLimit` or `activeDeadlineSeconds`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::common;
use super::{Error, Result};

pub const COMPONENT: &str = "job-controller";
/// Upstream's pod failure back-off: 10 s doubling per failure, at most 6 minutes.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// What one pass decided: pods to create and delete, the status to write, events to record.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: usize,
    /// Indices into the pods given to [`plan`].
    pub delete: Vec<usize>,
    pub status: Value,
    pub events: Vec<(&'static str, &'static str, String)>,
    pub requeue: Option<Duration>,
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// When a pod finished: its last container's finishedAt, else its last condition change.
fn finished_at(p: &Pod) -> Option<jiff::Timestamp> {
    let s = p.status.as_ref()?;
    let from_containers = s
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    from_containers.or_else(|| {
        s.conditions
            .iter()
            .flatten()
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max()
    })
}

fn restarts(p: &Pod) -> i64 {
    p.status
        .as_ref()
        .map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .map(|c| i64::from(c.restart_count))
                .sum()
        })
        .unwrap_or(0)
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastProbeTime": now, "lastTransitionTime": now})
}

fn has_condition(conditions: &[Value], type_: &str, status: &str) -> bool {
    conditions
        .iter()
        .any(|c| c["type"] == type_ && c["status"] == status)
}

/// Sets a condition, keeping its transition time when only reason or message changed.
fn set_condition(conditions: &mut Vec<Value>, new: Value) {
    match conditions.iter_mut().find(|c| c["type"] == new["type"]) {
        Some(c) if c["status"] == new["status"] => {
            c["reason"] = new["reason"].clone();
            c["message"] = new["message"].clone();
        }
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

/// The back-off before the next pod after `failures` failed ones (upstream's
/// `getRemainingTime`): 10 s, 20 s, 40 s, ... capped at 6 minutes.
pub fn backoff(failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16) as u32;
    (BACKOFF_BASE * 2u32.pow(shift)).min(BACKOFF_MAX)
}

/// One pass of upstream's `syncJob` over the Job's own pods, as a pure function of them and
/// the clock. Counts never go down: a finished pod deleted by hand stays counted, which is
/// what upstream's job-tracking finalizers guarantee.
pub fn plan(job: &Job, pods: &[Pod], now: jiff::Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = serde_json::to_value(job.status.clone().unwrap_or_default()).unwrap_or_default();
    let now_s = common::now_time();
    let now_str = serde_json::to_value(&now_s).unwrap_or_default();
    let now_str = now_str.as_str().unwrap_or_default().to_string();
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let mut p = Plan::default();

    let active: Vec<usize> = (0..pods.len())
        .filter(|&i| common::is_active(&pods[i]))
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && common::is_active_phase(p))
        .count();
    let count = |ph: &str| pods.iter().filter(|p| phase(p) == ph).count() as i64;
    let succeeded = count("Succeeded").max(old["succeeded"].as_i64().unwrap_or(0));
    let failed = count("Failed").max(old["failed"].as_i64().unwrap_or(0));
    let finished = has_condition(&conditions, "Complete", "True")
        || has_condition(&conditions, "Failed", "True");
    let suspended = spec.suspend.unwrap_or(false);
    let parallelism = i64::from(spec.parallelism.unwrap_or(1).max(0));
    let completions = spec.completions.map(i64::from);
    let backoff_limit = i64::from(spec.backoff_limit.unwrap_or(6));
    let mut start_time = old["startTime"].clone();
    let mut completion_time = old["completionTime"].clone();

    if finished {
        p.delete = active.clone();
    } else if suspended {
        p.delete = active.clone();
        if !has_condition(&conditions, "Suspended", "True") {
            set_condition(
                &mut conditions,
                condition(
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    &now_str,
                ),
            );
            p.events
                .push(("Normal", "Suspended", "Job suspended".into()));
        }
        // Upstream restarts the deadline clock on resume.
        start_time = Value::Null;
    } else {
        if has_condition(&conditions, "Suspended", "True") {
            set_condition(
                &mut conditions,
                condition("Suspended", "False", "JobResumed", "Job resumed", &now_str),
            );
            p.events.push(("Normal", "Resumed", "Job resumed".into()));
        }
        if start_time.is_null() {
            start_time = json!(now_str);
        }
        let started: Option<jiff::Timestamp> = start_time.as_str().and_then(|s| s.parse().ok());
        let on_failure_restarts: i64 = if spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure")
        {
            active.iter().map(|&i| restarts(&pods[i])).sum()
        } else {
            0
        };
        let past_on_failure = if backoff_limit == 0 {
            on_failure_restarts > 0
        } else {
            on_failure_restarts >= backoff_limit && on_failure_restarts > 0
        };
        let deadline = spec
            .active_deadline_seconds
            .and_then(|secs| started.map(|s| s.as_second() + secs - now.as_second()));
        let failure = if failed > backoff_limit || past_on_failure {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline.is_some_and(|left| left <= 0) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if let Some((reason, message)) = failure {
            p.delete = active.clone();
            // Upstream (1.31+) sets FailureTarget first, then Failed once the pods are gone;
            // both end up on the Job, as `kubectl get job -o yaml` shows there.
            set_condition(
                &mut conditions,
                condition("FailureTarget", "True", reason, message, &now_str),
            );
            set_condition(
                &mut conditions,
                condition("Failed", "True", reason, message, &now_str),
            );
            p.events.push(("Warning", reason, message.into()));
        } else if complete {
            p.delete = active.clone();
            let message = "Reached expected number of succeeded pods";
            set_condition(
                &mut conditions,
                condition(
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    message,
                    &now_str,
                ),
            );
            set_condition(
                &mut conditions,
                condition("Complete", "True", "CompletionsReached", message, &now_str),
            );
            completion_time = json!(now_str);
            p.events
                .push(("Normal", "Completed", "Job completed".into()));
        } else {
            let want = match completions {
                Some(c) => parallelism.min(c - succeeded).max(0),
                // A work queue: once one pod succeeded, the rest only finish.
                None if succeeded > 0 => 0,
                None => parallelism,
            };
            let have = active.len() as i64;
            if have < want {
                let last_failure = pods
                    .iter()
                    .filter(|p| phase(p) == "Failed")
                    .filter_map(finished_at)
                    .max();
                let wait = last_failure.map(|t| {
                    let due = t.as_millisecond() + backoff(failed).as_millis() as i64;
                    due - now.as_millisecond()
                });
                match wait {
                    Some(ms) if ms > 0 => {
                        p.requeue = Some(Duration::from_millis(ms as u64));
                    }
                    _ => p.create = (want - have) as usize,
                }
            } else if have > want {
                let mine: Vec<Pod> = active.iter().map(|&i| pods[i].clone()).collect();
                p.delete = super::replicaset::deletion_order(&mine, now)
                    .into_iter()
                    .take((have - want) as usize)
                    .map(|j| active[j])
                    .collect();
            }
            if let Some(left) = deadline {
                let left = Duration::from_secs(left.max(1) as u64);
                p.requeue = Some(p.requeue.map_or(left, |r| r.min(left)));
            }
        }
    }
    let ready = active
        .iter()
        .filter(|&&i| common::is_ready(&pods[i]))
        .count();
    let still_active = active.len() + p.create - p.delete.len().min(active.len());
    p.status = json!({
        "active": still_active,
        "ready": ready,
        "terminating": terminating + p.delete.len(),
        "succeeded": succeeded,
        "failed": failed,
        "startTime": start_time,
        "completionTime": completion_time,
        "conditions": conditions,
        "uncountedTerminatedPods": {},
    });
    p
}

/// The pod a Job creates (`<job>-<5 random characters>`), labelled from the template, whose
/// labels the API server already filled with `batch.kubernetes.io/job-name` and
/// `batch.kubernetes.io/controller-uid`.
pub fn pod_from_template(job: &Job) -> Pod {
    let template = job.spec.clone().unwrap_or_default().template;
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                job.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: job.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![common::controller_ref(
                "batch/v1",
                "Job",
                &job.metadata,
            )]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

async fn reconcile(job: Arc<Job>, ctx: Arc<super::replicaset::Ctx>) -> Result<Action> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = job
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let what = format!("pods of job {ns}/{name}");
    let mine = common::owned_pods(&pods, &selector, &uid, what).await?;
    let now = jiff::Timestamp::now();
    let plan = plan(&job, &mine, now);
    let job_ref = common::reference("batch/v1", "Job", &job.metadata);
    let mut failure = None;
    if plan.create > 0 {
        let pod = pod_from_template(&job);
        let pp = PostParams::default();
        let results =
            futures::future::join_all((0..plan.create).map(|_| pods.create(&pp, &pod))).await;
        for r in results {
            let (type_, reason, message) = match &r {
                Ok(p) => (
                    "Normal",
                    "SuccessfulCreate",
                    format!(
                        "Created pod: {}",
                        p.metadata.name.as_deref().unwrap_or_default()
                    ),
                ),
                Err(e) => (
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {}", common::api_message(e)),
                ),
            };
            common::record(
                &ctx.client,
                job_ref.clone(),
                COMPONENT,
                type_,
                reason,
                message,
            )
            .await;
            if let Err(e) = r {
                failure = Some(Error::Api(format!("job {ns}/{name}"), e));
            }
        }
    }
    for &i in &plan.delete {
        let p = &mine[i];
        let pname = p.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods.delete(&pname, &dp).await {
            Ok(_) => {
                common::record(
                    &ctx.client,
                    job_ref.clone(),
                    COMPONENT,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {pname}"),
                )
                .await
            }
            Err(e) if common::gone_or_conflict(&e) => {}
            Err(e) => failure = Some(Error::Api(format!("pod {ns}/{pname}"), e)),
        }
    }
    let current = serde_json::to_value(job.status.clone().unwrap_or_default()).unwrap_or_default();
    let differs = plan.status.as_object().into_iter().flatten().any(|(k, v)| {
        let cur = current.get(k).unwrap_or(&Value::Null);
        cur != v && !(v == &json!(0) && cur.is_null()) && !(v == &json!({}) && cur.is_null())
    });
    if differs {
        // Conditions keep their old transition times when unchanged, so comparing whole
        // values above does not rewrite the status on every pass.
        match jobs
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": plan.status})),
            )
            .await
        {
            Ok(_) => {
                for (type_, reason, message) in plan.events {
                    common::record(
                        &ctx.client,
                        job_ref.clone(),
                        COMPONENT,
                        type_,
                        reason,
                        message,
                    )
                    .await;
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::Api(format!("job {ns}/{name} status"), e)),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(plan
        .requeue
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

fn error_policy(job: Arc<Job>, e: &Error, _ctx: Arc<super::replicaset::Ctx>) -> Action {
    super::common::retry_after("job", &job.metadata, e, Duration::from_secs(2))
}

/// Run the controller until its watches end; a pod change wakes the Job that owns it.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(super::replicaset::Ctx {
        client: client.clone(),
    });
    Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value, status: Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
            "spec": spec, "status": status
        }))
        .unwrap()
    }

    fn template(policy: &str) -> Value {
        json!({"spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "i"}]}})
    }

    fn pod(phase: &str, finished: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p-{phase}-{finished}"), "uid": finished},
            "spec": {"nodeName": "w1", "containers": []},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "finishedAt": finished}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_new_job_starts_parallelism_pods_and_sets_its_start_time() {
        let j = job(
            json!({"completions": 3, "parallelism": 2, "template": template("Never")}),
            json!({}),
        );
        let p = plan(&j, &[], jiff::Timestamp::now());
        assert_eq!(p.create, 2);
        assert_eq!(p.status["active"], 2);
        assert!(p.status["startTime"].is_string());
    }

    #[test]
    fn the_last_completions_need_fewer_pods_and_the_job_completes_when_reached() {
        let now: jiff::Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let spec = json!({"completions": 3, "parallelism": 2, "template": template("Never")});
        let two = [
            pod("Succeeded", "2025-01-01T00:01:00Z"),
            pod("Succeeded", "2025-01-01T00:02:00Z"),
        ];
        let p = plan(
            &job(spec.clone(), json!({"startTime": "2025-01-01T00:00:00Z"})),
            &two,
            now,
        );
        assert_eq!((p.create, p.status["succeeded"].clone()), (1, json!(2)));
        let three = [
            two[0].clone(),
            two[1].clone(),
            pod("Succeeded", "2025-01-01T00:03:00Z"),
        ];
        let p = plan(
            &job(spec, json!({"startTime": "2025-01-01T00:00:00Z"})),
            &three,
            now,
        );
        assert_eq!(p.create, 0);
        let types: Vec<_> = p.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
        assert_eq!(p.status["conditions"][1]["reason"], "CompletionsReached");
        assert!(p.status["completionTime"].is_string());
        assert_eq!(p.events[0].1, "Completed");
    }

    #[test]
    fn failures_past_the_backoff_limit_fail_the_job_and_earlier_ones_back_off() {
        let now: jiff::Timestamp = "2025-01-01T00:00:15Z".parse().unwrap();
        let spec = json!({"backoffLimit": 1, "completions": 1, "parallelism": 1,
                          "template": template("Never")});
        let status = json!({"startTime": "2025-01-01T00:00:00Z"});
        // One failure 10 s ago: the next pod waits for the 10 s back-off to pass... just.
        let one = [pod("Failed", "2025-01-01T00:00:08Z")];
        let p = plan(&job(spec.clone(), status.clone()), &one, now);
        assert_eq!(p.create, 0);
        assert_eq!(p.requeue, Some(Duration::from_secs(3)));
        let one = [pod("Failed", "2025-01-01T00:00:04Z")];
        assert_eq!(
            plan(&job(spec.clone(), status.clone()), &one, now).create,
            1
        );
        // Two failures with backoffLimit 1: Failed, BackoffLimitExceeded.
        let two = [one[0].clone(), pod("Failed", "2025-01-01T00:00:14Z")];
        let p = plan(&job(spec, status), &two, now);
        let failed = p.status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .unwrap()
            .clone();
        assert_eq!(failed["reason"], "BackoffLimitExceeded");
        assert_eq!(p.status["failed"], 2);
        assert!(p.status["completionTime"].is_null());
    }

    #[test]
    fn an_active_deadline_fails_the_job_and_deletes_its_running_pods() {
        let now: jiff::Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let spec = json!({"activeDeadlineSeconds": 30, "completions": 1, "parallelism": 1,
                          "template": template("Never")});
        let running = [pod("Running", "2025-01-01T00:00:30Z")];
        let p = plan(
            &job(spec, json!({"startTime": "2025-01-01T00:00:00Z"})),
            &running,
            now,
        );
        assert_eq!(p.delete, [0]);
        assert!(
            p.status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Failed" && c["reason"] == "DeadlineExceeded")
        );
    }

    #[test]
    fn the_back_off_doubles_and_caps_at_six_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(20), Duration::from_secs(360));
    }
}
