//! Server-side printing: the `Table` answers `kubectl get` asks for, with upstream's columns.

use serde_json::{Value, json};

/// Which column set a resource type prints with (upstream `pkg/printers/internalversion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printer {
    Default,
    Namespace,
    Node,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    ServiceAccount,
    Event,
    Pod,
    Lease,
    EndpointSlice,
}

/// One column: name as kubectl shows it (upper-cased by kubectl), type, format, priority.
struct Col(&'static str, &'static str, &'static str, u32);

const NAME: Col = Col("Name", "string", "name", 0);
const AGE: Col = Col("Age", "string", "", 0);

fn columns_of(p: Printer) -> Vec<Col> {
    let s = |n| Col(n, "string", "", 0);
    let wide = |n| Col(n, "string", "", 1);
    match p {
        Printer::Default => vec![NAME, AGE],
        Printer::Namespace => vec![NAME, s("Status"), AGE],
        Printer::Node => vec![
            NAME,
            s("Status"),
            s("Roles"),
            AGE,
            s("Version"),
            wide("Internal-IP"),
            wide("External-IP"),
            wide("OS-Image"),
            wide("Kernel-Version"),
            wide("Container-Runtime"),
        ],
        Printer::Service => vec![
            NAME,
            s("Type"),
            s("Cluster-IP"),
            s("External-IP"),
            s("Port(s)"),
            AGE,
            wide("Selector"),
        ],
        Printer::Endpoints => vec![NAME, s("Endpoints"), AGE],
        Printer::ConfigMap => vec![NAME, Col("Data", "integer", "", 0), AGE],
        Printer::Secret => vec![NAME, s("Type"), Col("Data", "integer", "", 0), AGE],
        Printer::ServiceAccount => vec![NAME, Col("Secrets", "integer", "", 0), AGE],
        Printer::Event => vec![
            s("Last Seen"),
            s("Type"),
            s("Reason"),
            s("Object"),
            s("Message"),
        ],
        Printer::Pod => vec![
            NAME,
            s("Ready"),
            s("Status"),
            Col("Restarts", "string", "", 0),
            AGE,
            wide("IP"),
            wide("Node"),
            wide("Nominated Node"),
            wide("Readiness Gates"),
        ],
        Printer::Lease => vec![NAME, s("Holder"), AGE],
        Printer::EndpointSlice => vec![NAME, s("AddressType"), s("Ports"), s("Endpoints"), AGE],
    }
}

/// The `columnDefinitions` of a Table.
pub fn column_definitions(p: Printer) -> Value {
    columns_of(p)
        .into_iter()
        .map(|Col(name, ty, format, priority)| {
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
        })
        .collect()
}

/// Upstream's `HumanDuration` (apimachinery `util/duration`), to the letter, so AGE columns
/// read the same as on any other cluster.
pub fn human_duration(seconds_total: i64) -> String {
    let seconds = seconds_total;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// Seconds since an RFC 3339 timestamp, as an age; "<unknown>" when there is none.
fn age(ts: &Value, now: jiff::Timestamp) -> String {
    match ts.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn str_or<'a>(v: &'a Value, default: &'a str) -> &'a str {
    match v.as_str() {
        Some(s) if !s.is_empty() => s,
        _ => default,
    }
}

fn count(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn node_status(o: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = arr(&o["status"]["conditions"])
        .iter()
        .find(|c| c["type"] == "Ready")
    {
        parts.push(if c["status"] == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if parts.is_empty() {
        parts.push("Unknown".into());
    }
    if o["spec"]["unschedulable"] == true {
        parts.push("SchedulingDisabled".into());
    }
    parts.join(",")
}

fn node_roles(o: &Value) -> String {
    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = o["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if k == "kubernetes.io/role"
                && let Some(r) = v.as_str().filter(|r| !r.is_empty())
            {
                roles.push(r);
            }
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node_address(o: &Value, ty: &str) -> String {
    arr(&o["status"]["addresses"])
        .iter()
        .find(|a| a["type"] == ty)
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

fn service_external_ip(o: &Value) -> String {
    let external: Vec<&str> = arr(&o["spec"]["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match o["spec"]["type"].as_str().unwrap_or("ClusterIP") {
        "LoadBalancer" => {
            let mut ips: Vec<&str> = arr(&o["status"]["loadBalancer"]["ingress"])
                .iter()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => str_or(&o["spec"]["externalName"], "<none>").to_string(),
        _ if !external.is_empty() => external.join(","),
        _ => "<none>".into(),
    }
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = arr(&o["spec"]["ports"])
        .iter()
        .map(|p| {
            let proto = str_or(&p["protocol"], "TCP");
            match p["nodePort"].as_i64() {
                Some(np) if np != 0 => format!("{}:{np}/{proto}", p["port"]),
                _ => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn selector(m: &Value) -> String {
    match m.as_object() {
        Some(m) if !m.is_empty() => {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            kv.sort();
            kv.join(",")
        }
        _ => "<none>".into(),
    }
}

/// Upstream's `formatEndpoints`: up to three `ip:port`, then " + N more...".
fn endpoints_list(o: &Value) -> String {
    let mut all: Vec<String> = Vec::new();
    for subset in arr(&o["subsets"]) {
        let ports = arr(&subset["ports"]);
        for a in arr(&subset["addresses"]) {
            let ip = a["ip"].as_str().unwrap_or_default();
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in ports {
                all.push(format!("{ip}:{}", p["port"]));
            }
        }
    }
    if all.is_empty() {
        return "<none>".into();
    }
    let more = all.len().saturating_sub(3);
    let mut s = all.into_iter().take(3).collect::<Vec<_>>().join(",");
    if more > 0 {
        s.push_str(&format!(" + {more} more..."));
    }
    s
}

fn pod_cells(o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let statuses = arr(&o["status"]["containerStatuses"]);
    let total = arr(&o["spec"]["containers"]).len();
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut reason = str_or(
        &o["status"]["reason"],
        str_or(&o["status"]["phase"], "Pending"),
    )
    .to_string();
    for c in statuses.iter().rev() {
        if let Some(r) = c["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(r) = c["state"]["terminated"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        }
    }
    if !o["metadata"]["deletionTimestamp"].is_null() {
        reason = "Terminating".into();
    }
    let gates = arr(&o["spec"]["readinessGates"]);
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(&o["status"]["conditions"]);
        let ok = gates
            .iter()
            .filter(|g| {
                conds
                    .iter()
                    .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        json!(o["metadata"]["name"]),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        json!(age(&o["metadata"]["creationTimestamp"], now)),
        json!(str_or(&o["status"]["podIP"], "<none>")),
        json!(str_or(&o["spec"]["nodeName"], "<none>")),
        json!(str_or(&o["status"]["nominatedNodeName"], "<none>")),
        json!(gates),
    ]
}

fn event_cells(o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let last = [
        &o["lastTimestamp"],
        &o["eventTime"],
        &o["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .find(|t| t.as_str().is_some_and(|s| !s.is_empty()))
    .cloned()
    .unwrap_or(Value::Null);
    let io = &o["involvedObject"];
    let object = format!(
        "{}/{}",
        io["kind"].as_str().unwrap_or_default().to_lowercase(),
        io["name"].as_str().unwrap_or_default()
    );
    vec![
        json!(age(&last, now)),
        json!(o["type"].as_str().unwrap_or_default()),
        json!(o["reason"].as_str().unwrap_or_default()),
        json!(object),
        json!(o["message"].as_str().unwrap_or_default().trim()),
    ]
}

/// The cells of one object's row.
pub fn cells(p: Printer, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let created = json!(age(&o["metadata"]["creationTimestamp"], now));
    match p {
        Printer::Default => vec![name, created],
        Printer::Namespace => vec![
            name,
            json!(str_or(&o["status"]["phase"], "Active")),
            created,
        ],
        Printer::Node => vec![
            name,
            json!(node_status(o)),
            json!(node_roles(o)),
            created,
            json!(
                o["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or_default()
            ),
            json!(node_address(o, "InternalIP")),
            json!(node_address(o, "ExternalIP")),
            json!(str_or(&o["status"]["nodeInfo"]["osImage"], "<unknown>")),
            json!(str_or(
                &o["status"]["nodeInfo"]["kernelVersion"],
                "<unknown>"
            )),
            json!(str_or(
                &o["status"]["nodeInfo"]["containerRuntimeVersion"],
                "<unknown>"
            )),
        ],
        Printer::Service => vec![
            name,
            json!(str_or(&o["spec"]["type"], "ClusterIP")),
            json!(str_or(&o["spec"]["clusterIP"], "<none>")),
            json!(service_external_ip(o)),
            json!(service_ports(o)),
            created,
            json!(selector(&o["spec"]["selector"])),
        ],
        Printer::Endpoints => vec![name, json!(endpoints_list(o)), created],
        Printer::ConfigMap => vec![
            name,
            json!(count(&o["data"]) + count(&o["binaryData"])),
            created,
        ],
        Printer::Secret => vec![
            name,
            json!(o["type"].as_str().unwrap_or_default()),
            json!(count(&o["data"])),
            created,
        ],
        Printer::ServiceAccount => vec![name, json!(count(&o["secrets"])), created],
        Printer::Event => event_cells(o, now),
        Printer::Pod => pod_cells(o, now),
        Printer::Lease => vec![
            name,
            json!(str_or(&o["spec"]["holderIdentity"], "<unset>")),
            created,
        ],
        Printer::EndpointSlice => {
            let ports: Vec<String> = arr(&o["ports"])
                .iter()
                .map(|p| p["port"].to_string())
                .collect();
            let addrs: Vec<&str> = arr(&o["endpoints"])
                .iter()
                .flat_map(|e| arr(&e["addresses"]).iter().filter_map(Value::as_str))
                .collect();
            let more = addrs.len().saturating_sub(3);
            let mut eps = addrs.into_iter().take(3).collect::<Vec<_>>().join(",");
            if more > 0 {
                eps.push_str(&format!(" + {more} more..."));
            }
            vec![
                name,
                json!(o["addressType"].as_str().unwrap_or_default()),
                json!(if ports.is_empty() {
                    "<unset>".into()
                } else {
                    ports.join(",")
                }),
                json!(if eps.is_empty() {
                    "<unset>".into()
                } else {
                    eps
                }),
                created,
            ]
        }
    }
}

/// What each row's `object` carries (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// One row for `o`.
pub fn row(p: Printer, o: &Value, include: IncludeObject, now: jiff::Timestamp) -> Value {
    let mut r = json!({"cells": cells(p, o, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            })
        }
        IncludeObject::Object => r["object"] = o.clone(),
    }
    r
}

/// A whole Table for `objects`.
pub fn table(
    p: Printer,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let mut metadata = json!({"resourceVersion": resource_version});
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": if with_columns { column_definitions(p) } else { json!([]) },
        "rows": objects.iter().map(|o| row(p, o, include, now)).collect::<Vec<_>>(),
    });
    if !with_columns {
        t.as_object_mut().map(|m| m.remove("columnDefinitions"));
    }
    t
}

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.split(';').any(|p| p.trim() == "as=Table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_upstream_boundaries() {
        let cases = [
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    fn node() -> Value {
        json!({
            "metadata": {"name": "n1", "creationTimestamp": "2020-01-01T00:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "containerd://1.6"}
            }
        })
    }

    #[test]
    fn node_row_shows_status_roles_and_wide_columns() {
        let c = cells(Printer::Node, &node(), jiff::Timestamp::now());
        assert_eq!(c[1], "Ready,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.33.0");
        assert_eq!(c[5], "172.18.0.2");
        assert_eq!(c[6], "<none>");
        assert_eq!(columns_of(Printer::Node).len(), c.len());
    }

    #[test]
    fn node_without_ready_condition_is_unknown_and_has_no_roles() {
        let o = json!({"metadata": {"name": "n"}});
        let c = cells(Printer::Node, &o, jiff::Timestamp::now());
        assert_eq!(c[1], "Unknown");
        assert_eq!(c[2], "<none>");
        assert_eq!(c[3], "<unknown>");
    }

    #[test]
    fn service_row_shows_ports_with_node_ports_and_selector() {
        let o = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            "selector": {"b": "2", "a": "1"}}});
        let c = cells(Printer::Service, &o, jiff::Timestamp::now());
        assert_eq!(c[3], "<none>");
        assert_eq!(c[4], "80:30080/TCP,53/UDP");
        assert_eq!(c[6], "a=1,b=2");
    }

    #[test]
    fn endpoints_beyond_three_are_summarised() {
        let o = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}, {"ip": "1.1.1.3"}, {"ip": "1.1.1.4"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            endpoints_list(&o),
            "1.1.1.1:80,1.1.1.2:80,1.1.1.3:80 + 1 more..."
        );
    }

    #[test]
    fn every_printer_has_as_many_cells_as_columns() {
        use Printer::*;
        for p in [
            Default,
            Namespace,
            Node,
            Service,
            Endpoints,
            ConfigMap,
            Secret,
            ServiceAccount,
            Event,
            Pod,
            Lease,
            EndpointSlice,
        ] {
            assert_eq!(
                columns_of(p).len(),
                cells(p, &json!({}), jiff::Timestamp::now()).len(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn kubectl_get_accept_header_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
