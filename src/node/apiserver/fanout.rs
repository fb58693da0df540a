//! One etcd watch per resource type, shared by every API watch of that type, as upstream's watch
//! cache does: each change is read from etcd and decoded once, kept in a short window for
//! watches that start a little behind (a client that has just listed), and handed to all.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::sync::broadcast;

use super::etcd::{self, Etcd, WatchItem};

/// Changes kept per type for watches that start behind the newest change. Older starts get a
/// watch of their own on etcd, as before.
const WINDOW: usize = 100;
/// How far a watcher may fall behind before it is cut off, as upstream's watch cache closes
/// unresponsive watchers; its client watches again from the last change it saw. The channel
/// keeps this many changes alive, so it also bounds the memory a busy type holds.
const LAG: usize = 256;

/// One change under a type's prefix, decoded once for every watcher.
#[derive(Debug)]
pub struct Change {
    pub revision: i64,
    pub key: String,
    pub deleted: bool,
    /// The object after the change (None for a delete, or when it is not valid JSON).
    pub object: Option<Value>,
    /// The object before it, when there was one.
    pub prev: Option<Value>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Change(Arc<Change>),
    /// etcd's sign of life, with its current revision.
    Progress(i64),
}

pub type Items = Pin<Box<dyn Stream<Item = Item> + Send>>;

struct Window {
    /// Every change after this revision is in `changes` (or still to come).
    since: i64,
    changes: VecDeque<Arc<Change>>,
    closed: bool,
}

struct Hub {
    window: Mutex<Window>,
    tx: broadcast::Sender<Item>,
}

impl Hub {
    fn new(since: i64) -> Self {
        Hub {
            window: Mutex::new(Window {
                since,
                changes: VecDeque::new(),
                closed: false,
            }),
            tx: broadcast::channel(LAG).0,
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps and hands out one batch of changes (one etcd watch message).
    fn publish(&self, changes: Vec<Change>) {
        let mut w = self.window();
        for c in changes {
            let c = Arc::new(c);
            w.changes.push_back(c.clone());
            if w.changes.len() > WINDOW
                && let Some(old) = w.changes.pop_front()
            {
                w.since = old.revision;
            }
            // No receiver is not an error: watchers come and go.
            let _ = self.tx.send(Item::Change(c));
        }
    }

    fn progress(&self, revision: i64) {
        let _ = self.tx.send(Item::Progress(revision));
    }

    fn close(&self) {
        self.window().closed = true;
    }

    /// The changes after `from`: the window's, then live ones. None when `from` is older than
    /// the window.
    fn subscribe(&self, from: i64) -> Option<Items> {
        let (replay, rx) = {
            let w = self.window();
            if w.closed || from < w.since {
                return None;
            }
            // Taken under the lock that publish holds, so nothing falls between the two.
            let replay: Vec<Item> = w
                .changes
                .iter()
                .filter(|c| c.revision > from)
                .map(|c| Item::Change(c.clone()))
                .collect();
            (replay, self.tx.subscribe())
        };
        // A watcher that lagged (or a hub that ended) ends the stream.
        let live = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.ok().map(|item| (item, rx))
        });
        let live = live.filter(move |item| {
            // A watcher may start ahead of the hub (it listed at a newer revision).
            futures::future::ready(!matches!(item, Item::Change(c) if c.revision <= from))
        });
        Some(Box::pin(futures::stream::iter(replay).chain(live)))
    }
}

/// The shared watches, one per type prefix, started by the first watch of a type.
#[derive(Clone, Default)]
pub struct Hubs(Arc<Mutex<HashMap<String, Arc<Hub>>>>);

impl Hubs {
    fn get(&self, prefix: &str) -> Option<Arc<Hub>> {
        let hubs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        hubs.get(prefix).cloned()
    }

    /// Changes under `prefix` after revision `from`, from the type's shared watch (started here
    /// at `from` if there is none). None when the shared watch started after `from`.
    pub async fn subscribe(
        &self,
        etcd: &Etcd,
        prefix: &str,
        from: i64,
        decode: fn(etcd::WatchEvent) -> Change,
    ) -> etcd::Result<Option<Items>> {
        if let Some(hub) = self.get(prefix) {
            return Ok(hub.subscribe(from));
        }
        let stream = etcd.watch(prefix, from + 1).await?;
        let hub = {
            let mut hubs = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(other) = hubs.get(prefix) {
                // Another watch started the hub meanwhile; this etcd watch is dropped.
                return Ok(other.subscribe(from));
            }
            let hub = Arc::new(Hub::new(from));
            hubs.insert(prefix.to_string(), hub.clone());
            hub
        };
        let items = hub.subscribe(from);
        let (hubs, prefix, feeding) = (self.clone(), prefix.to_string(), hub.clone());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(item)) = stream.next().await {
                match item {
                    WatchItem::Events(events) => {
                        feeding.publish(events.into_iter().map(decode).collect())
                    }
                    WatchItem::Progress(rev) => feeding.progress(rev),
                }
            }
            // etcd ended the watch: the next API watch of the type starts a new hub, and the
            // current ones end when `feeding` (and with it the sender) is dropped.
            feeding.close();
            let mut map = hubs.0.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&prefix).is_some_and(|h| Arc::ptr_eq(h, &feeding)) {
                map.remove(&prefix);
            }
        });
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(revision: i64) -> Change {
        Change {
            revision,
            key: format!("/registry/pods/default/p{revision}"),
            deleted: false,
            object: Some(serde_json::json!({"rev": revision})),
            prev: None,
        }
    }

    fn revisions(items: &[Item]) -> Vec<i64> {
        items
            .iter()
            .map(|i| match i {
                Item::Change(c) => c.revision,
                Item::Progress(r) => -r,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_late_watcher_gets_the_window_after_its_revision_then_live_changes() {
        let hub = Hub::new(4);
        hub.publish(vec![change(5), change(6)]);
        hub.publish(vec![change(7)]);
        let mut s = hub.subscribe(5).expect("inside the window");
        hub.publish(vec![change(8)]);
        hub.progress(9);
        let got: Vec<Item> = (&mut s).take(4).collect().await;
        assert_eq!(revisions(&got), [6, 7, 8, -9]);
    }

    #[tokio::test]
    async fn a_watcher_ahead_of_the_hub_skips_what_it_has_already_listed() {
        let hub = Hub::new(4);
        let mut s = hub.subscribe(6).expect("ahead of the hub");
        hub.publish(vec![change(5), change(6), change(7)]);
        let got: Vec<Item> = (&mut s).take(1).collect().await;
        assert_eq!(revisions(&got), [7]);
    }

    #[tokio::test]
    async fn starts_before_the_window_are_not_served() {
        let hub = Hub::new(4);
        assert!(hub.subscribe(3).is_none());
        let many: Vec<Change> = (5..5 + WINDOW as i64 + 10).map(change).collect();
        hub.publish(many);
        // The window moved on: revision 5..=14 fell out of it.
        assert!(hub.subscribe(10).is_none());
        let mut s = hub.subscribe(14).expect("at the window's start");
        let first = s.next().await.expect("a change");
        assert_eq!(revisions(&[first]), [15]);
        hub.close();
        assert!(hub.subscribe(20).is_none(), "a closed hub serves nobody");
    }

    #[tokio::test]
    async fn a_watcher_that_falls_too_far_behind_is_cut_off() {
        let hub = Hub::new(0);
        let s = hub.subscribe(0).expect("subscribed");
        for r in 1..=(LAG as i64 + 5) {
            hub.publish(vec![change(r)]);
        }
        drop(hub);
        let got: Vec<Item> = s.collect().await;
        assert!(got.is_empty(), "a lagging watcher ends at once");
    }
}
