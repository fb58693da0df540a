//! Leader election on a `coordination.k8s.io` Lease in kube-system, as upstream's
//! controller-manager does it, so several control planes never run two allocators at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

use super::{Error, Result};

/// Upstream's defaults: lease 15 s, retry every 2 s.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether `identity` may take a lease held by `holder`, last renewed at `renewed`.
pub fn may_take(
    identity: &str,
    holder: Option<&str>,
    renewed: Option<jiff::Timestamp>,
    duration_s: i32,
    now: jiff::Timestamp,
) -> bool {
    match (holder, renewed) {
        (Some(h), _) if h == identity => true,
        (None, _) | (Some(""), _) | (_, None) => true,
        (Some(_), Some(t)) => {
            now.as_millisecond() > t.as_millisecond() + i64::from(duration_s) * 1000
        }
    }
}

/// Try once to acquire or renew; true while we hold the lease. Conflicts (another replica
/// won the race) are a plain `false`.
pub async fn try_acquire(api: &Api<Lease>, name: &str, identity: &str) -> Result<bool> {
    let now = jiff::Timestamp::now();
    let secs = LEASE_DURATION.as_secs() as i32;
    let api_err = |e| Error::Api(format!("lease {name}"), e);
    match api.get_opt(name).await.map_err(api_err)? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.into()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(api_err(e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            let holder = spec.holder_identity.clone();
            if !may_take(
                identity,
                holder.as_deref(),
                spec.renew_time.as_ref().map(|t| t.0),
                spec.lease_duration_seconds.unwrap_or(secs),
                now,
            ) {
                return Ok(false);
            }
            if holder.as_deref() != Some(identity) {
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.holder_identity = Some(identity.into());
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(secs);
            // The resourceVersion from the read makes this a compare-and-swap.
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(api_err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_lease_held_by_another_replica_is_not_taken() {
        let now: jiff::Timestamp = "2025-01-01T00:00:20Z".parse().unwrap();
        let fresh: jiff::Timestamp = "2025-01-01T00:00:10Z".parse().unwrap();
        let stale: jiff::Timestamp = "2025-01-01T00:00:01Z".parse().unwrap();
        assert!(!may_take("cp1", Some("cp2"), Some(fresh), 15, now));
        assert!(may_take("cp1", Some("cp2"), Some(stale), 15, now));
        assert!(may_take("cp1", Some("cp1"), Some(fresh), 15, now));
        assert!(may_take("cp1", None, None, 15, now));
    }
}
