//! The kubelet's HTTPS endpoint on port 10250: `/containerLogs`, `/exec`, `/attach` and
//! `/portForward`, which the API server's `pods/log`, `pods/exec`, ... proxy to.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_rustls::rustls;

use super::cri::client::Cri;
use super::spec::POD_LOGS_DIR;
use super::stream::{self, Target};
use crate::node::apiserver::handlers::parse_query;

use crate::node::upgrade::Body;

/// How often a followed log is checked for appended lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not generate the kubelet's serving certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("could not build the kubelet's TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Serves until the process ends. The certificate is self-signed and made at startup, and any
/// client is accepted: the API server does not verify it (like kubeadm's default without
/// `--kubelet-certificate-authority`), and nobody's client certificate is checked here.
/// GAP: upstream authenticates and authorizes callers (webhook to the API server).
pub async fn serve(node_name: String, ip: String) -> Result<(), Error> {
    let cert = rcgen::generate_simple_self_signed(vec![node_name, ip])?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let addr = SocketAddr::from(([0, 0, 0, 0], crate::consts::KUBELET_PORT));
    let cri = Cri::new(crate::consts::CONTAINERD_SOCKET);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, cri) = (acceptor.clone(), cri.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let cri = cri.clone();
                async move { Ok::<_, Infallible>(handle(&cri, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await;
        });
    }
}

/// A plain-text answer, the way the kubelet words its errors.
pub(super) fn text(code: u16, body: impl Into<String>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.into())).boxed_unsync())
        .expect("static response parts are valid")
}

async fn handle(cri: &Cri, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let q = parse_query(req.uri().query());
    let streaming = matches!(*req.method(), hyper::Method::GET | hyper::Method::POST);
    match parts.as_slice() {
        ["containerLogs", ns, pod, container] if req.method() == hyper::Method::GET => {
            container_logs(ns, pod, container, &q).await
        }
        ["exec", ns, pod, container] if streaming => {
            stream::serve(cri, req, ns, pod, Target::Exec { container }).await
        }
        ["attach", ns, pod, container] if streaming => {
            stream::serve(cri, req, ns, pod, Target::Attach { container }).await
        }
        ["portForward", ns, pod] if streaming => {
            stream::serve(cri, req, ns, pod, Target::PortForward).await
        }
        _ => text(404, "404 page not found\n"),
    }
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("1" | "true" | "True"))
}

/// The log files of one container of the pod `ns/pod`, by restart count, oldest first. When the
/// name was reused, the most recently written pod directory is the one that counts.
fn log_files(ns: &str, pod: &str, container: &str) -> Vec<(u32, std::path::PathBuf)> {
    let prefix = format!("{ns}_{pod}_");
    let newest_dir = std::fs::read_dir(POD_LOGS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    let Some(dir) = newest_dir else {
        return Vec::new();
    };
    let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir.path().join(container))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    files
}

async fn container_logs(
    ns: &str,
    pod: &str,
    container: &str,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let mut files = log_files(ns, pod, container);
    let previous = flag(q, "previous");
    let path = match (files.pop(), previous) {
        (Some((_, p)), false) => p,
        (Some(_), true) => match files.pop() {
            Some((_, p)) => p,
            None => {
                return text(
                    400,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ),
                );
            }
        },
        (None, true) => {
            return text(
                400,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            );
        }
        (None, false) => {
            return text(
                404,
                format!("container \"{container}\" in pod \"{pod}\" is waiting to start"),
            );
        }
    };
    let opts = Options {
        timestamps: flag(q, "timestamps"),
        since: q
            .get("sinceSeconds")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| {
                jiff::Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs(s))
                    .ok()
            }),
    };
    let tail = q.get("tailLines").and_then(|s| s.parse::<usize>().ok());
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return text(500, format!("could not open {}: {e}", path.display())),
    };
    let mut data = Vec::new();
    if let Err(e) = file.read_to_end(&mut data).await {
        return text(500, format!("could not read {}: {e}", path.display()));
    }
    let mut parser = CriParser::default();
    let mut lines = parser.feed(&data);
    lines.retain(|l| opts.keep(l));
    if let Some(n) = tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    let first: String = lines.iter().map(|l| opts.render(l)).collect();
    if !flag(q, "follow") {
        return text(200, first);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut buf = Vec::new();
        // Ends when the reader is gone (the API server dropped the stream because its client
        // left). GAP: upstream also ends the stream once the container has exited.
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
            }
            buf.clear();
            if file.read_to_end(&mut buf).await.is_err() {
                return;
            }
            let out: String = parser
                .feed(&buf)
                .iter()
                .filter(|l| opts.keep(l))
                .map(|l| opts.render(l))
                .collect();
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
            // A truncated file (log rotation) is read again from its start.
            if let (Ok(pos), Ok(meta)) = (file.stream_position().await, file.metadata().await)
                && meta.len() < pos
            {
                let _ = file.rewind().await;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("static response parts are valid")
}

struct Options {
    timestamps: bool,
    since: Option<jiff::Timestamp>,
}

impl Options {
    fn keep(&self, l: &LogLine) -> bool {
        match (self.since, l.time.parse::<jiff::Timestamp>()) {
            (Some(since), Ok(t)) => t >= since,
            _ => true,
        }
    }
    fn render(&self, l: &LogLine) -> String {
        if self.timestamps {
            format!("{} {}", l.time, l.message)
        } else {
            l.message.clone()
        }
    }
}

/// One logged line: its RFC3339Nano time as containerd wrote it and the message (with its
/// newline, as the container printed it).
#[derive(Debug, PartialEq)]
struct LogLine {
    time: String,
    message: String,
}

/// Reads the CRI log format (`<time> <stream> <P|F> <message>`), joining partial (`P`) lines
/// that containerd splits long output into, and keeping bytes of an unfinished last line for
/// the next read.
#[derive(Default)]
struct CriParser {
    rest: Vec<u8>,
    partial: Option<LogLine>,
}

impl CriParser {
    fn feed(&mut self, data: &[u8]) -> Vec<LogLine> {
        self.rest.extend_from_slice(data);
        let Some(end) = self.rest.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.rest.drain(..=end).collect();
        let mut out = Vec::new();
        for raw in String::from_utf8_lossy(&complete).lines() {
            let mut fields = raw.splitn(4, ' ');
            let (Some(time), Some(_stream), Some(tag), msg) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let msg = msg.unwrap_or_default();
            let line = self.partial.get_or_insert_with(|| LogLine {
                time: time.to_string(),
                message: String::new(),
            });
            line.message.push_str(msg);
            if !tag.starts_with('P') {
                let mut line = self.partial.take().expect("just inserted");
                line.message.push('\n');
                out.push(line);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_are_parsed_and_partials_joined_across_reads() {
        let mut p = CriParser::default();
        let got = p.feed(
            b"2026-11-22T00:00:00.000000000Z stdout F hello\n2026-11-22T00:00:01Z stdout P ab",
        );
        assert_eq!(
            got,
            vec![LogLine {
                time: "2026-11-22T00:00:00.000000000Z".into(),
                message: "hello\n".into()
            }]
        );
        assert!(p.feed(b"c\n").is_empty());
        let got = p.feed(b"2026-11-22T00:00:02Z stderr F def\n2026-11-22T00:00:03Z stdout F \n");
        assert_eq!(got[0].message, "abcdef\n");
        assert_eq!(got[0].time, "2026-11-22T00:00:01Z");
        assert_eq!(got[1].message, "\n");
    }
}
