//! The kubelet's streaming endpoints `/exec`, `/attach` and `/portForward`: each asks
//! containerd for a one-time streaming URL and joins the caller to it. SPDY callers (kubectl
//! 1.20, and current kubectl's fallback) pass straight through; WebSocket callers (current
//! kubectl) are translated, since containerd speaks no WebSocket protocol they accept.

pub mod spdy;
mod websocket;

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::cri::api::{AttachRequest, ContainerState, ExecRequest, PodSandboxState};
use super::cri::client::{CONTAINER_NAME_LABEL, Cri, POD_NAME_LABEL, POD_NAMESPACE_LABEL};
pub(super) use super::server::text;
use crate::node::upgrade::{self, Body};

/// Exec and attach over WebSocket, best first; v5 adds the signal that ends stdin.
pub const CHANNEL_V5: &str = "v5.channel.k8s.io";
pub const CHANNEL_V4: &str = "v4.channel.k8s.io";
/// Port forwarding over WebSocket: SPDY frames carried in binary messages.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// What the caller wants to stream.
pub enum Target<'a> {
    Exec { container: &'a str },
    Attach { container: &'a str },
    PortForward,
}

/// The query's pairs in order, repeated keys kept (`command` comes once per argument).
fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn flag(pairs: &[(String, String)], key: &str) -> bool {
    pairs
        .iter()
        .any(|(k, v)| k == key && matches!(v.as_str(), "1" | "true" | "True"))
}

/// The running container `name` of pod `ns/pod`, newest first if a restart left two.
async fn running_container(cri: &Cri, ns: &str, pod: &str, name: &str) -> Option<String> {
    let containers = cri.list_containers("").await.ok()?;
    containers
        .into_iter()
        .filter(|c| {
            c.state == ContainerState::ContainerRunning as i32
                && c.labels.get(POD_NAMESPACE_LABEL).map(String::as_str) == Some(ns)
                && c.labels.get(POD_NAME_LABEL).map(String::as_str) == Some(pod)
                && c.labels.get(CONTAINER_NAME_LABEL).map(String::as_str) == Some(name)
        })
        .max_by_key(|c| c.created_at)
        .map(|c| c.id)
}

/// The ready sandbox of pod `ns/pod`.
async fn ready_sandbox(cri: &Cri, ns: &str, pod: &str) -> Option<String> {
    let labels = [
        (POD_NAMESPACE_LABEL.to_string(), ns.to_string()),
        (POD_NAME_LABEL.to_string(), pod.to_string()),
    ];
    let sandboxes = cri.list_pod_sandboxes(labels.into()).await.ok()?;
    sandboxes
        .into_iter()
        .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
        .max_by_key(|s| s.created_at)
        .map(|s| s.id)
}

/// Answers one streaming request for pod `ns/pod`.
pub async fn serve(
    cri: &Cri,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
    target: Target<'_>,
) -> Response<Body> {
    if !upgrade::is_upgrade(&req) {
        return text(400, "Upgrade request required");
    }
    let q = query_pairs(&req);
    let (stdin, stdout, stderr, tty) = (
        flag(&q, "input") || flag(&q, "stdin"),
        flag(&q, "output") || flag(&q, "stdout"),
        flag(&q, "error") || flag(&q, "stderr"),
        flag(&q, "tty"),
    );
    let url = match target {
        Target::Exec { container } | Target::Attach { container } => {
            let Some(id) = running_container(cri, ns, pod, container).await else {
                return text(500, format!("container not found ({container:?})"));
            };
            let asked = if let Target::Exec { .. } = target {
                let cmd: Vec<String> = q
                    .iter()
                    .filter(|(k, _)| k == "command")
                    .map(|(_, v)| v.clone())
                    .collect();
                if cmd.is_empty() {
                    return text(400, "you must specify at least 1 command");
                }
                cri.exec(ExecRequest {
                    container_id: id,
                    cmd,
                    tty,
                    stdin,
                    stdout,
                    stderr: stderr && !tty,
                })
                .await
            } else {
                cri.attach(AttachRequest {
                    container_id: id,
                    stdin,
                    tty,
                    stdout,
                    stderr: stderr && !tty,
                })
                .await
            };
            match asked {
                Ok(url) => url,
                Err(e) => return text(500, e.to_string()),
            }
        }
        Target::PortForward => {
            let Some(id) = ready_sandbox(cri, ns, pod).await else {
                return text(500, format!("pod {pod:?} has no running sandbox"));
            };
            match cri.port_forward(&id, Vec::new()).await {
                Ok(url) => url,
                Err(e) => return text(500, e.to_string()),
            }
        }
    };
    let Some((host, path)) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(h, p)| (h.to_string(), format!("/{p}")))
    else {
        return text(
            500,
            format!("unexpected streaming URL {url:?} from the runtime"),
        );
    };
    let backend = match tokio::net::TcpStream::connect(&host).await {
        Ok(s) => s,
        Err(e) => {
            return text(
                500,
                format!("could not reach the runtime's streaming server at {host}: {e}"),
            );
        }
    };
    if upgrade::is_websocket(&req) {
        let wanted = websocket::protocols(&req);
        let chosen = match target {
            Target::PortForward => wanted.iter().find(|p| *p == PORT_FORWARD_TUNNEL),
            _ => wanted.iter().find(|p| *p == CHANNEL_V5 || *p == CHANNEL_V4),
        };
        let Some(chosen) = chosen.cloned() else {
            return text(
                400,
                format!("none of the WebSocket subprotocols {wanted:?} is supported"),
            );
        };
        let opts = websocket::Session {
            protocol: chosen,
            host,
            path,
            stdin,
            stdout,
            stderr: stderr && !tty,
            tty,
        };
        return websocket::accept(req, backend, opts).await;
    }
    match upgrade::proxy(req, backend, &path, &host).await {
        Ok(resp) => resp,
        Err(e) => text(
            500,
            format!("could not reach the runtime's streaming server: {e}"),
        ),
    }
}
