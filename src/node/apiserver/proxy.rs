//! `pods/log`: the API server finds the pod's node and streams the kubelet's `/containerLogs` back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::handlers::{Body, State, map_storage};
use super::resources;
use super::status::ApiError;

/// Query parameters of `PodLogOptions` that the kubelet understands, passed on as they came.
const PASSED_ON: &[&str] = &[
    "tailLines",
    "timestamps",
    "previous",
    "follow",
    "sinceSeconds",
    "limitBytes",
];

fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// Which container's log is wanted, with upstream's messages for a wrong or missing name.
pub(super) fn pick_container(
    pod: &Value,
    name: &str,
    asked: Option<&str>,
) -> Result<String, ApiError> {
    let main = container_names(pod, "containers");
    let all: Vec<String> = main
        .iter()
        .cloned()
        .chain(container_names(pod, "initContainers"))
        .chain(container_names(pod, "ephemeralContainers"))
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if main.len() == 1 => Ok(main[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            main.join(" ")
        ))),
    }
}

/// The node's InternalIP from its status.
pub(super) fn internal_ip(node: &Value) -> Option<String> {
    node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(str::to_string)
}

pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The pod `ns/name` as stored.
pub(super) async fn get_pod(state: &State, ns: &str, name: &str) -> Result<Value, ApiError> {
    let pods = resources::find("", "v1", "pods").expect("pods are registered");
    state
        .store
        .get(pods, Some(ns), name)
        .await
        .map_err(|e| map_storage(pods, name, e))
}

/// The InternalIP of the node the pod `name` is bound to.
pub(super) async fn node_ip(state: &State, pod: &Value, name: &str) -> Result<String, ApiError> {
    let nodes = resources::find("", "v1", "nodes").expect("nodes are registered");
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = state
        .store
        .get(nodes, None, node_name)
        .await
        .map_err(|e| map_storage(nodes, node_name, e))?;
    internal_ip(&node)
        .ok_or_else(|| ApiError::internal(format!("node {node_name} has no InternalIP address")))
}

/// `GET .../pods/<name>/log`.
pub async fn pod_log(
    state: &State,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let pod = get_pod(state, ns, name).await?;
    let container = pick_container(&pod, name, q.get("container").map(String::as_str))?;
    let ip = node_ip(state, &pod, name).await?;
    let query: Vec<String> = PASSED_ON
        .iter()
        .filter_map(|k| q.get(*k).map(|v| format!("{k}={}", encode(v))))
        .collect();
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        encode(ns),
        encode(name),
        encode(&container),
        query.join("&")
    );
    let resp = fetch(&ip, &path).await.map_err(|e| {
        ApiError::internal(format!(
            "Get \"https://{ip}:{}{path}\": {e}",
            crate::consts::KUBELET_PORT
        ))
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        // Like upstream's response checker: the kubelet's text becomes the Status message.
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_string();
        let reason = match status {
            400 => "BadRequest",
            404 => "NotFound",
            _ => "InternalError",
        };
        return Err(ApiError::new(status, reason, message));
    }
    // Frames are forwarded as they arrive, so `follow` streams; a read error ends the body.
    let stream = futures::stream::unfold(resp.into_body(), |mut body| async move {
        match body.frame().await {
            Some(Ok(frame)) => Some((Ok::<_, Infallible>(frame), body)),
            _ => None,
        }
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("static response parts are valid"))
}

#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("dial tcp: {0}")]
    Connect(std::io::Error),
    #[error("dial tcp: i/o timeout")]
    Timeout,
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// A TLS connection of its own to the kubelet at `ip` (each log or exec stream may be
/// long-lived).
pub(super) async fn connect(
    ip: &str,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, FetchError> {
    let addr = format!("{ip}:{}", crate::consts::KUBELET_PORT);
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| FetchError::Timeout)?
    .map_err(FetchError::Connect)?;
    // Kubelets serve self-signed certificates (kubeadm's default has no
    // `--kubelet-certificate-authority` either).
    crate::node::insecure_tls::connect(ip, tcp)
        .await
        .map_err(FetchError::Connect)
}

/// One GET to the kubelet.
async fn fetch(ip: &str, path: &str) -> Result<Response<hyper::body::Incoming>, FetchError> {
    let addr = format!("{ip}:{}", crate::consts::KUBELET_PORT);
    let tls = connect(ip).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header("host", addr)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    Ok(sender.send_request(req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_checked_or_chosen_like_upstream() {
        let one = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "a");
        assert_eq!(
            pick_container(&one, "p", Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            pick_container(&two, "p", None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
    }
}
