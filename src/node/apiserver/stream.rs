//! `pods/exec`, `pods/attach` and `pods/portforward`: the API server checks the request, finds
//! the pod's node and passes the connection upgrade on to that kubelet, whichever protocol
//! (SPDY, or WebSocket for current kubectl) the client speaks.

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::handlers::{Body, State, parse_query};
use super::proxy;
use super::status::ApiError;
use crate::node::upgrade;

/// Answers `GET|POST .../pods/<name>/<sub>` for `sub` one of exec, attach and portforward.
pub async fn pod_stream(
    state: &State,
    req: Request<Incoming>,
    ns: &str,
    name: &str,
    sub: &str,
) -> Result<Response<Body>, ApiError> {
    if !upgrade::is_upgrade(&req) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let q = parse_query(req.uri().query());
    let pod = proxy::get_pod(state, ns, name).await?;
    let (ns_e, name_e) = (proxy::encode(ns), proxy::encode(name));
    let target = if sub == "portforward" {
        format!("/portForward/{ns_e}/{name_e}")
    } else {
        let container = proxy::pick_container(&pod, name, q.get("container").map(String::as_str))?;
        format!("/{sub}/{ns_e}/{name_e}/{}", proxy::encode(&container))
    };
    let ip = proxy::node_ip(state, &pod, name).await?;
    let path = match req.uri().query() {
        Some(query) => format!("{target}?{query}"),
        None => target,
    };
    let dialing =
        |e: &dyn std::fmt::Display| ApiError::internal(format!("error dialing backend: {e}"));
    let tls = proxy::connect(&ip).await.map_err(|e| dialing(&e))?;
    let host = format!("{ip}:{}", crate::consts::KUBELET_PORT);
    upgrade::proxy(req, tls, &path, &host)
        .await
        .map_err(|e| dialing(&e))
}
