//! WebSocket callers: exec and attach speak the channel protocol (one byte of stream number,
//! then data), translated here to SPDY streams towards containerd; port forwarding tunnels
//! SPDY itself in binary messages, which only needs unwrapping.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

use super::{PORT_FORWARD_TUNNEL, spdy, text};
use crate::node::upgrade::{self, Body, Dialed};

/// The channel numbers of the `channel.k8s.io` protocols.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5's CLOSE signal: `[255, channel]` half-closes that channel.
const CLOSE: u8 = 255;

/// One WebSocket session and where containerd waits for it.
pub struct Session {
    pub protocol: String,
    pub host: String,
    pub path: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The subprotocols the client offers, in its order.
pub fn protocols(req: &Request<Incoming>) -> Vec<String> {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Connects to containerd first (so that a refusal still reaches the caller as an HTTP error),
/// then switches the caller to WebSocket and relays until either side ends.
pub async fn accept(
    mut req: Request<Incoming>,
    backend: tokio::net::TcpStream,
    s: Session,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return text(400, "missing Sec-WebSocket-Key header");
    };
    let tunnel = s.protocol == PORT_FORWARD_TUNNEL;
    let mut headers = HeaderMap::new();
    headers.insert("upgrade", "SPDY/3.1".parse().expect("valid header value"));
    headers.insert("connection", "Upgrade".parse().expect("valid header value"));
    let version = if tunnel {
        "portforward.k8s.io"
    } else {
        super::CHANNEL_V4
    };
    headers.insert(
        "x-stream-protocol-version",
        version.parse().expect("valid header value"),
    );
    let upstream =
        match upgrade::dial(backend, &http::Method::POST, &s.path, &s.host, &headers).await {
            Ok(Dialed::Switched(_, u)) => u,
            Ok(Dialed::Refused(status, _, body)) => {
                return text(status.as_u16(), String::from_utf8_lossy(&body).into_owned());
            }
            Err(e) => {
                return text(
                    500,
                    format!("could not reach the runtime's streaming server: {e}"),
                );
            }
        };
    let client = hyper::upgrade::on(&mut req);
    let protocol = s.protocol.clone();
    tokio::spawn(async move {
        let Ok(client) = client.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
        let upstream = TokioIo::new(upstream);
        if tunnel {
            relay_tunnel(ws, upstream).await;
        } else {
            relay_channels(ws, upstream, s).await;
        }
    });
    Response::builder()
        .status(http::StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .header("sec-websocket-protocol", protocol)
        .body(http_body_util::BodyExt::boxed_unsync(
            http_body_util::Empty::new(),
        ))
        .expect("static response parts are valid")
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type Upstream = TokioIo<hyper::upgrade::Upgraded>;

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Port forwarding: binary messages carry the caller's SPDY bytes, which containerd reads as
/// they are.
async fn relay_tunnel(ws: Ws, upstream: Upstream) {
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(upstream);
    let inbound = async {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let outbound = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
    };
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}

/// Exec and attach: opens containerd's SPDY streams the way kubectl would (error first), then
/// moves data between channel numbers and streams.
async fn relay_channels(ws: Ws, upstream: Upstream, s: Session) {
    let (mut sink, mut source) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(upstream);
    let mut headers = spdy::Headers::default();
    let mut next = 1u32;
    let mut opening = Vec::new();
    let mut open = |kind: &str| {
        let id = next;
        next += 2;
        opening.push(headers.syn_stream(id, &[("streamType", kind)]));
        id
    };
    let error = open("error");
    let stdin = s.stdin.then(|| open("stdin"));
    let stdout = s.stdout.then(|| open("stdout"));
    let stderr = s.stderr.then(|| open("stderr"));
    let resize = s.tty.then(|| open("resize"));
    for frame in opening {
        if wr.write_all(&frame).await.is_err() {
            return;
        }
    }
    // One writer towards containerd, fed by the caller's messages and by PING answers.
    let (to_runtime, mut queued) = mpsc::channel::<Bytes>(64);
    let writer = async move {
        while let Some(frame) = queued.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    };
    let pings = to_runtime.clone();
    let outbound = async {
        while let Ok(Some(frame)) = spdy::read_frame(&mut rd).await {
            match frame {
                spdy::Frame::Data { stream, data, .. } if !data.is_empty() => {
                    let channel = match Some(stream) {
                        s if s == Some(error) => ERROR,
                        s if s == stdout => STDOUT,
                        s if s == stderr => STDERR,
                        _ => continue,
                    };
                    let mut msg = BytesMut::with_capacity(data.len() + 1);
                    msg.extend_from_slice(&[channel]);
                    msg.extend_from_slice(&data);
                    if sink.send(Message::Binary(msg.freeze())).await.is_err() {
                        return;
                    }
                }
                spdy::Frame::Control { kind, body, .. } if kind == spdy::PING => {
                    let _ = pings.send(spdy::pong(&body)).await;
                }
                spdy::Frame::Control { kind, .. } if kind == spdy::GOAWAY => break,
                _ => {}
            }
        }
        // containerd closes the connection once it has written the exit status.
        let _ = sink.send(normal_close()).await;
    };
    let inbound = async {
        while let Some(Ok(msg)) = source.next().await {
            let b = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let frame = match (b.first(), stdin, resize) {
                (Some(&STDIN), Some(id), _) => spdy::data(id, false, &b[1..]),
                (Some(&RESIZE), _, Some(id)) => spdy::data(id, false, &b[1..]),
                (Some(&CLOSE), Some(id), _) if b.get(1) == Some(&STDIN) => {
                    spdy::data(id, true, &[])
                }
                _ => continue,
            };
            if to_runtime.send(frame).await.is_err() {
                break;
            }
        }
        // The caller is gone: the session ends and the runtime sees its connection close.
    };
    tokio::select! {
        _ = writer => {}
        _ = outbound => {}
        _ = inbound => {}
    }
}
