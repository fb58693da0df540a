//! A small client for etcd's v3 JSON gateway (plain HTTP), enough for the API server's storage.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not reach etcd at {url}: {message}; is etcd running?")]
    Unreachable { url: String, message: String },
    #[error("etcd answered {status} to {path}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("etcd revision {0} has been compacted")]
    Compacted(i64),
    #[error("etcd sent an answer that is not valid JSON: {0}")]
    Decode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One key/value as etcd returns it, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub deleted: bool,
    pub kv: Kv,
    pub prev: Option<Kv>,
}

/// What a watch stream yields: changes, or a sign of life carrying the current revision.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    Events(Vec<WatchEvent>),
    Progress(i64),
}

/// The outcome of a compare-and-swap transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnOutcome {
    /// The compare held; the write happened at this revision.
    Written(i64),
    /// The compare failed; the key's current value (if any).
    Failed(Option<Kv>),
}

/// A condition of [`Etcd::txn_all`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cmp {
    /// The key does not exist.
    Absent(String),
    /// The key exists, last written at this revision.
    ModRevision(String, i64),
}

/// A write of [`Etcd::txn_all`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A cheap-to-clone handle on one etcd endpoint.
#[derive(Clone)]
pub struct Etcd {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn enc(s: &[u8]) -> String {
    B64.encode(s)
}

/// The end of the key range that holds every key starting with `prefix` (etcd's prefix idiom).
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    "\0".to_string()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn decode_kv(v: &Value) -> Kv {
    let b = |f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .and_then(|s| B64.decode(s).ok())
            .unwrap_or_default()
    };
    Kv {
        key: String::from_utf8_lossy(&b("key")).into_owned(),
        value: b("value"),
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
    }
}

fn revision(v: &Value) -> i64 {
    int(&v["header"]["revision"])
}

impl Etcd {
    /// A client for the first URL of a comma-separated `--etcd-servers` list.
    pub fn new(servers: &str) -> Self {
        let base = servers
            .split(',')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Etcd { base, client }
    }

    async fn send(
        &self,
        path: &str,
        body: Value,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let req = hyper::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Error::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        self.client
            .request(req)
            .await
            .map_err(|e| Error::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let resp = self.send(path, body).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
        if status != 200 {
            // gRPC code 11 (OutOfRange) is how etcd says "compacted".
            if v["code"].as_i64() == Some(11) {
                return Err(Error::Compacted(0));
            }
            return Err(Error::Status {
                path: path.to_string(),
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(v)
    }

    /// The current revision of the store (cheap: a range that returns only a count).
    pub async fn current_revision(&self) -> Result<i64> {
        let v = self
            .call(
                "/v3/kv/range",
                json!({"key": enc(b"\0"), "count_only": true}),
            )
            .await?;
        Ok(revision(&v))
    }

    /// One key, if present.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let v = self
            .call("/v3/kv/range", json!({"key": enc(key.as_bytes())}))
            .await?;
        Ok(v["kvs"].as_array().and_then(|a| a.first()).map(decode_kv))
    }

    /// Keys in `[start, end)` as of `revision` (0 = now), with the revision read at.
    pub async fn range(&self, start: &str, end: &str, revision_at: i64) -> Result<(Vec<Kv>, i64)> {
        let mut req = json!({"key": enc(start.as_bytes()), "range_end": enc(end.as_bytes())});
        if revision_at > 0 {
            req["revision"] = json!(revision_at.to_string());
        }
        let v = self.call("/v3/kv/range", req).await?;
        let kvs = v["kvs"]
            .as_array()
            .map(|a| a.iter().map(decode_kv).collect())
            .unwrap_or_default();
        Ok((kvs, revision(&v)))
    }

    /// Write `value` at `key` only if the key's `target` revision equals `expected`
    /// (`"CREATE"`/0 means "does not exist yet", `"MOD"`/n means "unchanged since n").
    pub async fn put_if(
        &self,
        key: &str,
        value: &[u8],
        target: &str,
        expected: i64,
    ) -> Result<TxnOutcome> {
        let field = if target == "CREATE" {
            "create_revision"
        } else {
            "mod_revision"
        };
        let k = enc(key.as_bytes());
        let compare =
            json!({"key": k, "result": "EQUAL", "target": target, field: expected.to_string()});
        let success = json!({"request_put": {"key": k, "value": enc(value)}});
        self.txn(&k, compare, success).await
    }

    /// Delete `key` if its mod revision is `expected`; the deleted value and the revision.
    pub async fn delete_if(&self, key: &str, expected: i64) -> Result<TxnOutcome> {
        let k = enc(key.as_bytes());
        let compare = json!({"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": expected.to_string()});
        let success = json!({"request_delete_range": {"key": k}});
        self.txn(&k, compare, success).await
    }

    /// One compare-and-act transaction on the (encoded) key `k`; on a failed compare, the key's
    /// current value comes back so callers can report a conflict or a missing object.
    async fn txn(&self, k: &str, compare: Value, success: Value) -> Result<TxnOutcome> {
        let req = json!({
            "compare": [compare],
            "success": [success],
            "failure": [{"request_range": {"key": k}}],
        });
        let v = self.call("/v3/kv/txn", req).await?;
        if v["succeeded"].as_bool() == Some(true) {
            return Ok(TxnOutcome::Written(revision(&v)));
        }
        let current = v["responses"][0]["response_range"]["kvs"]
            .as_array()
            .and_then(|a| a.first())
            .map(decode_kv);
        Ok(TxnOutcome::Failed(current))
    }

    /// Every op of `ops` if every condition of `cmps` holds, in one transaction: the write's
    /// revision, or (a condition failed) the current value of each key in `check`, in order.
    pub async fn txn_all(
        &self,
        cmps: &[Cmp],
        ops: &[Op],
        check: &[String],
    ) -> Result<std::result::Result<i64, Vec<Option<Kv>>>> {
        let compare: Vec<Value> = cmps
            .iter()
            .map(|c| match c {
                Cmp::Absent(k) => json!({"key": enc(k.as_bytes()), "result": "EQUAL",
                    "target": "CREATE", "create_revision": "0"}),
                Cmp::ModRevision(k, rev) => json!({"key": enc(k.as_bytes()), "result": "EQUAL",
                    "target": "MOD", "mod_revision": rev.to_string()}),
            })
            .collect();
        let success: Vec<Value> = ops
            .iter()
            .map(|o| match o {
                Op::Put(k, v) => {
                    json!({"request_put": {"key": enc(k.as_bytes()), "value": enc(v)}})
                }
                Op::Delete(k) => json!({"request_delete_range": {"key": enc(k.as_bytes())}}),
            })
            .collect();
        let failure: Vec<Value> = check
            .iter()
            .map(|k| json!({"request_range": {"key": enc(k.as_bytes())}}))
            .collect();
        let req = json!({"compare": compare, "success": success, "failure": failure});
        let v = self.call("/v3/kv/txn", req).await?;
        if v["succeeded"].as_bool() == Some(true) {
            return Ok(Ok(revision(&v)));
        }
        let current = (0..check.len())
            .map(|i| {
                v["responses"][i]["response_range"]["kvs"]
                    .as_array()
                    .and_then(|a| a.first())
                    .map(decode_kv)
            })
            .collect();
        Ok(Err(current))
    }

    /// Changes to keys under `prefix` from revision `start` on, as a stream that ends when etcd
    /// closes it. A compacted start revision yields `Error::Compacted`.
    pub async fn watch(
        &self,
        prefix: &str,
        start: i64,
    ) -> Result<impl Stream<Item = Result<WatchItem>> + Send + 'static + use<>> {
        let req = json!({"create_request": {
            "key": enc(prefix.as_bytes()),
            "range_end": enc(prefix_end(prefix).as_bytes()),
            "start_revision": start.to_string(),
            "prev_kv": true,
            "progress_notify": true,
        }});
        let resp = self.send("/v3/watch", req).await?;
        if resp.status() != 200 {
            return Err(Error::Status {
                path: "/v3/watch".into(),
                status: resp.status().as_u16(),
                body: String::new(),
            });
        }
        let body = resp.into_body().into_data_stream();
        let state = (body, Vec::<u8>::new());
        // The gateway writes one JSON message per line; a chunk may hold part of one or several.
        let lines = futures::stream::unfold(state, |(mut body, mut buf)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    return Some((Ok(line), (body, buf)));
                }
                match body.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        return Some((
                            Err(Error::Unreachable {
                                url: "watch".into(),
                                message: e.to_string(),
                            }),
                            (body, Vec::new()),
                        ));
                    }
                    None if buf.iter().any(|b| !b.is_ascii_whitespace()) => {
                        let line = std::mem::take(&mut buf);
                        return Some((Ok(line), (body, buf)));
                    }
                    None => return None,
                }
            }
        });
        Ok(lines.filter_map(|line| async move {
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            let v: Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(e) => return Some(Err(Error::Decode(e.to_string()))),
            };
            Some(parse_watch_message(&v))
        }))
    }
}

/// Turn one gateway watch message into an item (or the compaction error).
fn parse_watch_message(v: &Value) -> Result<WatchItem> {
    let r = &v["result"];
    let compact = int(&r["compact_revision"]);
    if compact > 0 {
        return Err(Error::Compacted(compact));
    }
    if r.is_null() {
        return Err(Error::Decode(v.to_string()));
    }
    let events: Vec<WatchEvent> = r["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| WatchEvent {
                    deleted: e["type"].as_str() == Some("DELETE"),
                    kv: decode_kv(&e["kv"]),
                    prev: e.get("prev_kv").map(decode_kv),
                })
                .collect()
        })
        .unwrap_or_default();
    if events.is_empty() {
        Ok(WatchItem::Progress(revision(r)))
    } else {
        Ok(WatchItem::Events(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
    }

    #[test]
    fn watch_message_with_delete_carries_the_previous_value() {
        let v: Value = serde_json::from_str(r#"{"result":{"header":{"revision":"3"},"events":[{"type":"DELETE","kv":{"key":"L3IvYQ==","mod_revision":"3"},"prev_kv":{"key":"L3IvYQ==","create_revision":"2","mod_revision":"2","version":"1","value":"eyJ4IjoxfQ=="}}]}}"#).unwrap();
        let WatchItem::Events(ev) = parse_watch_message(&v).unwrap() else {
            panic!("expected events")
        };
        assert!(ev[0].deleted);
        assert_eq!(ev[0].kv.mod_revision, 3);
        assert_eq!(ev[0].prev.as_ref().unwrap().value, br#"{"x":1}"#);
    }

    #[test]
    fn watch_message_with_compact_revision_is_an_error() {
        let v: Value = serde_json::from_str(
            r#"{"result":{"header":{},"canceled":true,"compact_revision":"3"}}"#,
        )
        .unwrap();
        assert!(matches!(parse_watch_message(&v), Err(Error::Compacted(3))));
    }
}
