//! Upstream's container restart back-off: 10 s doubling to 300 s per container, forgotten
//! after a container has run (or waited) long enough (`client-go/util/flowcontrol/backoff.go`).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// Back-off per key (for containers `<pod uid>/<container>`).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// The current delay when `key` is still backing off from an event at `since` (for a crash,
    /// when the container finished), or None when it may be retried now.
    pub fn in_backoff_since(
        &self,
        key: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Option<Duration> {
        let e = self.entries.get(key)?;
        let elapsed = now.duration_since(since).unsigned_abs();
        (elapsed < e.delay).then_some(e.delay)
    }

    /// Records a retry at `now`: the first, or one after a long quiet spell, waits INITIAL next
    /// time; later ones double up to MAX.
    pub fn next(&mut self, key: &str, now: Timestamp) {
        let delay = match self.entries.get(key) {
            Some(e) if now.duration_since(e.last_update).unsigned_abs() <= 2 * MAX => {
                (e.delay * 2).min(MAX)
            }
            _ => INITIAL,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// Forgets every key that starts with `prefix` (a pod's containers when it goes away).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

/// The waiting message upstream shows for a container in CrashLoopBackOff; the pod is written
/// as upstream's `format.Pod`: `<name>_<namespace>(<uid>)`.
pub fn crash_loop_message(
    delay: Duration,
    container: &str,
    pod: &str,
    ns: &str,
    uid: &str,
) -> String {
    format!(
        "back-off {}s restarting failed container={container} pod={pod}_{ns}({uid})",
        delay.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn the_first_crash_restarts_at_once_then_the_delay_doubles_to_the_cap() {
        let mut b = Backoff::default();
        assert_eq!(b.in_backoff_since("p/c", t(0), t(0)), None);
        let mut now = 0;
        let mut seen = vec![];
        for _ in 0..8 {
            b.next("p/c", t(now));
            // The container crashes again right after its restart.
            let delay = b.in_backoff_since("p/c", t(now), t(now + 1)).unwrap();
            seen.push(delay.as_secs());
            now += delay.as_secs() as i64;
            assert_eq!(
                b.in_backoff_since("p/c", t(now - delay.as_secs() as i64), t(now)),
                None
            );
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn the_back_off_is_forgotten_after_ten_quiet_minutes() {
        let mut b = Backoff::default();
        b.next("p/c", t(0));
        b.next("p/c", t(10));
        assert_eq!(
            b.in_backoff_since("p/c", t(10), t(11)),
            Some(Duration::from_secs(20))
        );
        b.next("p/c", t(10 + 601));
        assert_eq!(b.in_backoff_since("p/c", t(611), t(612)), Some(INITIAL));
        b.forget_prefix("p/");
        assert_eq!(b.in_backoff_since("p/c", t(611), t(612)), None);
    }

    #[test]
    fn the_crash_loop_message_reads_like_upstream() {
        assert_eq!(
            crash_loop_message(Duration::from_secs(40), "app", "web", "default", "u1"),
            "back-off 40s restarting failed container=app pod=web_default(u1)"
        );
    }
}
