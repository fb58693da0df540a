//! The CronJob controller: creates a Job `<cronjob>-<scheduled minute>` at each scheduled
//! time, honouring suspend, concurrencyPolicy and startingDeadlineSeconds, tracks the active
//! Jobs and keeps only the last successful and failed ones (upstream's cronjob_controllerv2).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::common::{self, controller_of};
use super::cron::Schedule;
use super::{Error, Result};

pub const COMPONENT: &str = "cronjob-controller";
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream stops counting missed start times past this many and says so in an event.
const TOO_MANY_MISSED: usize = 100;

/// Upstream's `getJobName`: the CronJob's name and the scheduled time in minutes since the
/// epoch, so one schedule time can only ever make one Job.
pub fn job_name(cronjob: &str, scheduled: jiff::Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The last schedule time in `(earliest, now]`, and how many there were.
pub fn most_recent(
    schedule: &Schedule,
    earliest: jiff::Timestamp,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> (Option<jiff::Timestamp>, usize) {
    let (mut last, mut missed) = (None, 0);
    let mut t = earliest;
    while let Some(n) = schedule.next(t, tz) {
        if n > now {
            break;
        }
        last = Some(n);
        missed += 1;
        t = n;
        // A schedule of every minute since years ago: the latest time is all that matters.
        if missed > 10 * TOO_MANY_MISSED {
            let skip = now.as_second() - 3600;
            if skip > t.as_second() {
                t = jiff::Timestamp::from_second(skip).unwrap_or(t);
            }
        }
    }
    (last, missed)
}

/// The Job for schedule time `scheduled` (upstream's `getJobFromTemplate2`).
pub fn job_for(cj: &CronJob, scheduled: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Job {
    let template = cj.spec.clone().unwrap_or_default().job_template;
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        scheduled
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
            .replace("+00:00", "Z"),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or_default(),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![common::controller_ref(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `Complete` or `Failed` when the Job has finished.
fn finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|t| conds.iter().any(|c| c.type_ == *t && c.status == "True"))
}

fn job_ref(job: &Job) -> Value {
    json!({"kind": "Job", "namespace": job.metadata.namespace, "name": job.metadata.name,
           "uid": job.metadata.uid, "apiVersion": "batch/v1",
           "resourceVersion": job.metadata.resource_version})
}

/// The finished Jobs past the history limits, oldest first (upstream's
/// `cleanupFinishedJobs`: each kind sorted by start time, the oldest beyond the limit go).
pub fn beyond_history(jobs: &[Job], successful: i32, failed: i32) -> Vec<String> {
    let mut doomed = Vec::new();
    for (kind, limit) in [("Complete", successful), ("Failed", failed)] {
        let mut these: Vec<&Job> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
        these.sort_by_key(|j| {
            (
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0),
                j.metadata.name.clone(),
            )
        });
        let extra = these.len().saturating_sub(limit.max(0) as usize);
        doomed.extend(
            these
                .iter()
                .take(extra)
                .map(|j| j.metadata.name.clone().unwrap_or_default()),
        );
    }
    doomed
}

struct Pass {
    client: kube::Client,
    cj_ref: k8s_openapi::api::core::v1::ObjectReference,
}

impl Pass {
    async fn event(&self, type_: &str, reason: &str, message: String) {
        common::record(
            &self.client,
            self.cj_ref.clone(),
            COMPONENT,
            type_,
            reason,
            message,
        )
        .await;
    }
}

async fn delete_job(pass: &Pass, jobs: &Api<Job>, name: &str) -> Result<()> {
    let dp = DeleteParams::background();
    match jobs.delete(name, &dp).await {
        Ok(_) => {
            pass.event("Normal", "SuccessfulDelete", format!("Deleted job {name}"))
                .await;
            Ok(())
        }
        Err(e) if common::gone_or_conflict(&e) => Ok(()),
        Err(e) => Err(Error::Api(format!("job {name}"), e)),
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<super::replicaset::Ctx>) -> Result<Action> {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let ns = cj.metadata.namespace.clone().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = cj.spec.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let cjs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let pass = Pass {
        client: ctx.client.clone(),
        cj_ref: common::reference("batch/v1", "CronJob", &cj.metadata),
    };
    let mine: Vec<Job> = jobs
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Api(format!("jobs in {ns}"), e))?
        .items
        .into_iter()
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    let old_status =
        serde_json::to_value(cj.status.clone().unwrap_or_default()).unwrap_or_default();
    let was_active: Vec<String> = old_status["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_string))
        .collect();
    let mut last_successful = old_status["lastSuccessfulTime"].clone();
    for j in &mine {
        let juid = j.metadata.uid.clone().unwrap_or_default();
        if let Some(cond) = finished(j)
            && was_active.contains(&juid)
        {
            let jname = j.metadata.name.clone().unwrap_or_default();
            pass.event(
                "Normal",
                "SawCompletedJob",
                format!("Saw completed job: {jname}, condition: {cond}"),
            )
            .await;
            if cond == "Complete"
                && let Some(t) = j.status.as_ref().and_then(|s| s.completion_time.as_ref())
            {
                last_successful = json!(t);
            }
        }
    }
    let mut active: Vec<&Job> = mine
        .iter()
        .filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .collect();

    let tz = match spec.time_zone.as_deref() {
        None => jiff::tz::TimeZone::UTC,
        Some(z) => match jiff::tz::TimeZone::get(z) {
            Ok(tz) => tz,
            Err(e) => {
                pass.event(
                    "Warning",
                    "UnknownTimeZone",
                    format!("invalid timeZone: {z:?}: {e}"),
                )
                .await;
                return Ok(Action::await_change());
            }
        },
    };
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            pass.event(
                "Warning",
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let now = jiff::Timestamp::now();
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(created);
    if let Some(sds) = spec.starting_deadline_seconds {
        let floor = jiff::Timestamp::from_second(now.as_second() - sds).unwrap_or(now);
        earliest = earliest.max(floor);
    }
    let mut last_schedule = old_status["lastScheduleTime"].clone();
    let mut created_job = None;
    let (recent, missed) = most_recent(&schedule, earliest, now, &tz);
    if !spec.suspend.unwrap_or(false)
        && let Some(t) = recent
    {
        if missed > TOO_MANY_MISSED {
            pass.event(
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
            )
            .await;
        }
        let job_name = job_name(&name, t);
        let already = mine
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some(&job_name));
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if already {
            // Made on an earlier pass whose status write was lost.
            last_schedule = json!(common::now_time_at(t));
        } else if policy == "Forbid" && !active.is_empty() {
            pass.event(
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            )
            .await;
        } else {
            if policy == "Replace" {
                for j in std::mem::take(&mut active) {
                    delete_job(&pass, &jobs, j.metadata.name.as_deref().unwrap_or_default())
                        .await?;
                }
            }
            match jobs
                .create(&PostParams::default(), &job_for(&cj, t, &tz))
                .await
            {
                Ok(j) => {
                    pass.event(
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created job {job_name}"),
                    )
                    .await;
                    created_job = Some(j);
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    pass.event(
                        "Warning",
                        "FailedCreate",
                        format!("Error creating job: {}", common::api_message(&e)),
                    )
                    .await;
                    return Err(Error::Api(format!("job {ns}/{job_name}"), e));
                }
            }
            last_schedule = json!(common::now_time_at(t));
        }
    }
    let mut active_refs: Vec<Value> = active.iter().map(|j| job_ref(j)).collect();
    if let Some(j) = &created_job {
        active_refs.push(job_ref(j));
    }
    let status = json!({
        "active": if active_refs.is_empty() { Value::Null } else { json!(active_refs) },
        "lastScheduleTime": last_schedule,
        "lastSuccessfulTime": last_successful,
    });
    let same_active = {
        let uids = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        };
        uids(&status["active"]) == uids(&old_status["active"])
    };
    if !same_active
        || status["lastScheduleTime"] != old_status["lastScheduleTime"]
        || status["lastSuccessfulTime"] != old_status["lastSuccessfulTime"]
    {
        match cjs
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(Error::Api(format!("cronjob {ns}/{name} status"), e)),
        }
    }
    for doomed in beyond_history(
        &mine,
        spec.successful_jobs_history_limit.unwrap_or(3),
        spec.failed_jobs_history_limit.unwrap_or(1),
    ) {
        delete_job(&pass, &jobs, &doomed).await?;
    }
    // Wake at the next schedule time; a Job's change wakes us sooner.
    let next = schedule.next(now, &tz).map(|n| {
        let ms = (n.as_millisecond() - jiff::Timestamp::now().as_millisecond()).max(0) as u64;
        Duration::from_millis(ms + 100)
    });
    Ok(next
        .map(Action::requeue)
        .unwrap_or_else(Action::await_change))
}

fn error_policy(cj: Arc<CronJob>, e: &Error, _ctx: Arc<super::replicaset::Ctx>) -> Action {
    super::common::retry_after("cronjob", &cj.metadata, e, Duration::from_secs(2))
}

/// Run the controller until its watches end; a Job's change wakes the CronJob that owns it.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(super::replicaset::Ctx {
        client: client.clone(),
    });
    Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client), watcher::Config::default())
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {})
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn job_names_carry_the_scheduled_minute_since_the_epoch() {
        assert_eq!(
            job_name("hello", ts("2025-01-01T00:01:00Z")),
            "hello-28928161"
        );
    }

    #[test]
    fn the_most_recent_missed_time_is_the_one_started() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let utc = jiff::tz::TimeZone::UTC;
        let (t, n) = most_recent(
            &s,
            ts("2025-01-01T00:01:00Z"),
            ts("2025-01-01T00:17:00Z"),
            &utc,
        );
        assert_eq!((t, n), (Some(ts("2025-01-01T00:15:00Z")), 3));
        let (t, n) = most_recent(
            &s,
            ts("2025-01-01T00:15:00Z"),
            ts("2025-01-01T00:19:59Z"),
            &utc,
        );
        assert_eq!((t, n), (None, 0));
        // Years of every-minute misses stay quick and still give the latest time.
        let every = Schedule::parse("* * * * *").unwrap();
        let (t, _) = most_recent(
            &every,
            ts("2020-01-01T00:00:00Z"),
            ts("2025-01-01T00:00:30Z"),
            &utc,
        );
        assert_eq!(t, Some(ts("2025-01-01T00:00:00Z")));
    }

    #[test]
    fn jobs_from_the_template_are_owned_and_stamped_with_their_time() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "default", "uid": "u1"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "i"}]}}}}}
        }))
        .unwrap();
        let j = job_for(&cj, ts("2025-01-01T00:01:00Z"), &jiff::tz::TimeZone::UTC);
        assert_eq!(j.metadata.name.as_deref(), Some("hello-28928161"));
        assert_eq!(j.metadata.labels.unwrap()["team"], "a");
        assert_eq!(
            j.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2025-01-01T00:01:00Z"
        );
        let owner = &j.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CronJob", Some(true))
        );
    }

    #[test]
    fn history_keeps_the_newest_successes_and_failures_within_their_limits() {
        let job = |name: &str, cond: &str, start: &str| -> Job {
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {"startTime": start,
                           "conditions": [{"type": cond, "status": "True"}]}
            }))
            .unwrap()
        };
        let jobs = [
            job("ok-1", "Complete", "2025-01-01T00:01:00Z"),
            job("ok-3", "Complete", "2025-01-01T00:03:00Z"),
            job("ok-2", "Complete", "2025-01-01T00:02:00Z"),
            job("bad-1", "Failed", "2025-01-01T00:01:30Z"),
            job("bad-2", "Failed", "2025-01-01T00:02:30Z"),
        ];
        assert_eq!(beyond_history(&jobs, 2, 1), ["ok-1", "bad-1"]);
        assert_eq!(beyond_history(&jobs, 3, 0), ["bad-1", "bad-2"]);
    }
}
