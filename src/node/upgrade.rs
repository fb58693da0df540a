//! Passing an HTTP/1.1 connection upgrade (SPDY or WebSocket) on, byte for byte: the API server
//! to the kubelet, and the kubelet to containerd's streaming server.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The headers an upgrade is negotiated with, passed on in both directions. Extensions are left
/// out on purpose: both ends must agree on them and the kubelet's own WebSocket speaks none.
const NEGOTIATED: &[&str] = &[
    "upgrade",
    "connection",
    "x-stream-protocol-version",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-accept",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// Whether the request asks to switch protocols.
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(hyper::header::UPGRADE)
}

/// Whether the request asks for a WebSocket.
pub fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The backend's answer: switched (with its 101 response headers and the raw connection), or
/// refused with a status and a body that say why.
pub enum Dialed {
    Switched(http::HeaderMap, Upgraded),
    Refused(http::StatusCode, http::HeaderMap, Bytes),
}

/// Sends one upgrade request with `headers` over `io` and waits for the answer.
pub async fn dial<S>(
    io: S,
    method: &http::Method,
    path_and_query: &str,
    host: &str,
    headers: &http::HeaderMap,
) -> Result<Dialed, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", host);
    for name in NEGOTIATED {
        for v in headers.get_all(*name) {
            req = req.header(*name, v);
        }
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new())?)
        .await?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(Dialed::Refused(parts.status, parts.headers, body));
    }
    let headers = resp.headers().clone();
    Ok(Dialed::Switched(headers, hyper::upgrade::on(resp).await?))
}

/// Passes the client's upgrade request on over `backend` and, once the backend switched, joins
/// the two connections. A refusal goes back to the client as the backend worded it, which is
/// what clients print after "unable to upgrade connection:".
pub async fn proxy<S>(
    mut req: Request<Incoming>,
    backend: S,
    path_and_query: &str,
    host: &str,
) -> Result<Response<Body>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = hyper::upgrade::on(&mut req);
    let dialed = dial(backend, req.method(), path_and_query, host, req.headers()).await?;
    let (headers, upstream) = match dialed {
        Dialed::Switched(h, u) => (h, u),
        Dialed::Refused(status, headers, body) => {
            let mut resp = Response::builder().status(status);
            if let Some(ct) = headers.get(hyper::header::CONTENT_TYPE) {
                resp = resp.header(hyper::header::CONTENT_TYPE, ct);
            }
            return Ok(resp.body(Full::new(body).boxed_unsync())?);
        }
    };
    tokio::spawn(async move {
        if let Ok(client) = client.await {
            let _ = tokio::io::copy_bidirectional(
                &mut TokioIo::new(client),
                &mut TokioIo::new(upstream),
            )
            .await;
        }
    });
    Ok(switched(&headers))
}

/// A 101 response carrying the negotiated headers.
pub fn switched(headers: &http::HeaderMap) -> Response<Body> {
    let mut resp = Response::builder().status(http::StatusCode::SWITCHING_PROTOCOLS);
    for name in NEGOTIATED {
        for v in headers.get_all(*name) {
            resp = resp.header(*name, v);
        }
    }
    resp.body(Empty::new().boxed_unsync())
        .expect("headers copied from a valid response are valid")
}
