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
    PersistentVolumeClaim,
    PersistentVolume,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    ControllerRevision,
    Job,
    CronJob,
    Role,
    RoleBinding,
}

/// Every printer, for tests that check each one.
#[cfg(test)]
const ALL_PRINTERS: &[Printer] = &[
    Printer::Default,
    Printer::Namespace,
    Printer::Node,
    Printer::Service,
    Printer::Endpoints,
    Printer::ConfigMap,
    Printer::Secret,
    Printer::ServiceAccount,
    Printer::Event,
    Printer::Pod,
    Printer::Lease,
    Printer::EndpointSlice,
    Printer::PersistentVolumeClaim,
    Printer::PersistentVolume,
    Printer::Deployment,
    Printer::ReplicaSet,
    Printer::StatefulSet,
    Printer::DaemonSet,
    Printer::ControllerRevision,
    Printer::Job,
    Printer::CronJob,
    Printer::Role,
    Printer::RoleBinding,
];

/// One column: name as kubectl shows it (upper-cased by kubectl), type, format, priority.
struct Col(&'static str, &'static str, &'static str, u32);

const NAME: Col = Col("Name", "string", "name", 0);
const AGE: Col = Col("Age", "string", "", 0);

fn columns_of(p: Printer) -> Vec<Col> {
    let s = |n| Col(n, "string", "", 0);
    let wide = |n| Col(n, "string", "", 1);
    let int = |n| Col(n, "integer", "", 0);
    // The workload printers end alike: what runs, and (for most) how pods are picked.
    let workload_wide = || [wide("Containers"), wide("Images"), wide("Selector")];
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
        Printer::PersistentVolumeClaim => vec![
            NAME,
            s("Status"),
            s("Volume"),
            s("Capacity"),
            s("Access Modes"),
            s("StorageClass"),
            s("VolumeAttributesClass"),
            AGE,
            wide("VolumeMode"),
        ],
        Printer::PersistentVolume => vec![
            NAME,
            s("Capacity"),
            s("Access Modes"),
            s("Reclaim Policy"),
            s("Status"),
            s("Claim"),
            s("StorageClass"),
            s("VolumeAttributesClass"),
            s("Reason"),
            AGE,
            wide("VolumeMode"),
        ],
        Printer::Deployment => [NAME, s("Ready"), int("Up-to-date"), int("Available"), AGE]
            .into_iter()
            .chain(workload_wide())
            .collect(),
        Printer::ReplicaSet => [NAME, int("Desired"), int("Current"), int("Ready"), AGE]
            .into_iter()
            .chain(workload_wide())
            .collect(),
        Printer::StatefulSet => vec![NAME, s("Ready"), AGE, wide("Containers"), wide("Images")],
        Printer::DaemonSet => [
            NAME,
            int("Desired"),
            int("Current"),
            int("Ready"),
            int("Up-to-date"),
            int("Available"),
            s("Node Selector"),
            AGE,
        ]
        .into_iter()
        .chain(workload_wide())
        .collect(),
        Printer::ControllerRevision => vec![NAME, s("Controller"), int("Revision"), AGE],
        Printer::Job => [NAME, s("Status"), s("Completions"), s("Duration"), AGE]
            .into_iter()
            .chain(workload_wide())
            .collect(),
        Printer::CronJob => [
            NAME,
            s("Schedule"),
            s("Timezone"),
            Col("Suspend", "boolean", "", 0),
            int("Active"),
            s("Last Schedule"),
            AGE,
        ]
        .into_iter()
        .chain(workload_wide())
        .collect(),
        Printer::Role => vec![NAME, Col("Created At", "date", "", 0)],
        Printer::RoleBinding => vec![
            NAME,
            s("Role"),
            AGE,
            wide("Users"),
            wide("Groups"),
            wide("ServiceAccounts"),
        ],
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

/// A plain label map as `k=v,...` sorted, "<none>" when empty (upstream's `labels.FormatLabels`).
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

/// Upstream's `metav1.FormatLabelSelector`: matchLabels as `k=v`, then matchExpressions,
/// "<none>" when it selects everything.
pub fn label_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        let mut kv: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        kv.sort();
        parts.extend(kv);
    }
    for e in arr(&sel["matchExpressions"]) {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = arr(&e["values"]).iter().filter_map(Value::as_str).collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// The containers and images of a pod template, comma-separated as upstream's `layoutContainerCells`.
fn containers_and_images(template: &Value) -> (Value, Value) {
    let cs = arr(&template["spec"]["containers"]);
    let pick = |f: &str| {
        json!(
            cs.iter()
                .map(|c| c[f].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    (pick("name"), pick("image"))
}

fn int(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

/// Upstream's `modifiedAccessModes` abbreviations.
fn access_modes(v: &Value) -> String {
    arr(v)
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn timestamp(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// Upstream's job status column (1.31+).
fn job_status(o: &Value) -> &'static str {
    let has = |t: &str| {
        arr(&o["status"]["conditions"])
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if !o["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

fn job_cells(o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
    let completions = match (
        o["spec"]["completions"].as_i64(),
        o["spec"]["parallelism"].as_i64().unwrap_or(1),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match timestamp(&o["status"]["startTime"]) {
        Some(start) => {
            let end = timestamp(&o["status"]["completionTime"]).unwrap_or(now);
            human_duration(end.as_second() - start.as_second())
        }
        None => String::new(),
    };
    let template = &o["spec"]["template"];
    let (containers, images) = containers_and_images(template);
    vec![
        json!(o["metadata"]["name"]),
        json!(job_status(o)),
        json!(completions),
        json!(duration),
        json!(age(&o["metadata"]["creationTimestamp"], now)),
        containers,
        images,
        json!(label_selector(&o["spec"]["selector"])),
    ]
}

fn subjects(o: &Value, kind: &str) -> String {
    arr(&o["subjects"])
        .iter()
        .filter(|s| s["kind"] == kind)
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default();
            match s["namespace"].as_str() {
                Some(ns) if kind == "ServiceAccount" => format!("{ns}/{name}"),
                _ => name.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cells of one object's row.
pub fn cells(p: Printer, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let created = json!(age(&o["metadata"]["creationTimestamp"], now));
    let (spec, status) = (&o["spec"], &o["status"]);
    let (containers, images) = containers_and_images(&spec["template"]);
    let pod_selector = json!(label_selector(&spec["selector"]));
    let replicas = spec["replicas"].as_i64().unwrap_or(1);
    let terminating = !o["metadata"]["deletionTimestamp"].is_null();
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
        Printer::PersistentVolumeClaim => vec![
            name,
            json!(if terminating {
                "Terminating"
            } else {
                str_or(&status["phase"], "Pending")
            }),
            json!(spec["volumeName"].as_str().unwrap_or_default()),
            json!(status["capacity"]["storage"].as_str().unwrap_or_default()),
            json!(access_modes(&status["accessModes"])),
            json!(spec["storageClassName"].as_str().unwrap_or_default()),
            json!(str_or(&spec["volumeAttributesClassName"], "<unset>")),
            created,
            json!(str_or(&spec["volumeMode"], "<unset>")),
        ],
        Printer::PersistentVolume => {
            let claim = match spec["claimRef"]["name"].as_str() {
                Some(n) => format!(
                    "{}/{n}",
                    spec["claimRef"]["namespace"].as_str().unwrap_or_default()
                ),
                None => String::new(),
            };
            vec![
                name,
                json!(spec["capacity"]["storage"].as_str().unwrap_or_default()),
                json!(access_modes(&spec["accessModes"])),
                json!(str_or(&spec["persistentVolumeReclaimPolicy"], "Retain")),
                json!(if terminating {
                    "Terminating"
                } else {
                    str_or(&status["phase"], "Pending")
                }),
                json!(claim),
                json!(spec["storageClassName"].as_str().unwrap_or_default()),
                json!(str_or(&spec["volumeAttributesClassName"], "<unset>")),
                json!(status["reason"].as_str().unwrap_or_default()),
                created,
                json!(str_or(&spec["volumeMode"], "<unset>")),
            ]
        }
        Printer::Deployment => vec![
            name,
            json!(format!(
                "{}/{replicas}",
                status["readyReplicas"].as_i64().unwrap_or(0)
            )),
            int(&status["updatedReplicas"]),
            int(&status["availableReplicas"]),
            created,
            containers,
            images,
            pod_selector.clone(),
        ],
        Printer::ReplicaSet => vec![
            name,
            json!(replicas),
            int(&status["replicas"]),
            int(&status["readyReplicas"]),
            created,
            containers,
            images,
            pod_selector.clone(),
        ],
        Printer::StatefulSet => vec![
            name,
            json!(format!(
                "{}/{replicas}",
                status["readyReplicas"].as_i64().unwrap_or(0)
            )),
            created,
            containers,
            images,
        ],
        Printer::DaemonSet => vec![
            name,
            int(&status["desiredNumberScheduled"]),
            int(&status["currentNumberScheduled"]),
            int(&status["numberReady"]),
            int(&status["updatedNumberScheduled"]),
            int(&status["numberAvailable"]),
            json!(selector(&spec["template"]["spec"]["nodeSelector"])),
            created,
            containers,
            images,
            pod_selector.clone(),
        ],
        Printer::ControllerRevision => {
            let owner = arr(&o["metadata"]["ownerReferences"])
                .iter()
                .find(|r| r["controller"] == true);
            let controller = match owner {
                Some(r) => {
                    let group = r["apiVersion"]
                        .as_str()
                        .and_then(|av| av.rsplit_once('/'))
                        .map(|(g, _)| format!(".{g}"))
                        .unwrap_or_default();
                    format!(
                        "{}{group}/{}",
                        r["kind"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default()
                    )
                    .to_lowercase()
                }
                None => "<none>".into(),
            };
            vec![name, json!(controller), int(&o["revision"]), created]
        }
        Printer::Job => job_cells(o, now),
        Printer::CronJob => {
            let (containers, images) =
                containers_and_images(&spec["jobTemplate"]["spec"]["template"]);
            let last = match status["lastScheduleTime"] {
                Value::String(_) => age(&status["lastScheduleTime"], now),
                _ => "<none>".into(),
            };
            vec![
                name,
                json!(spec["schedule"].as_str().unwrap_or_default()),
                json!(str_or(&spec["timeZone"], "<none>")),
                // Upstream's `printBoolPtr`: "True"/"False", "<unset>" when absent.
                json!(match spec["suspend"].as_bool() {
                    Some(true) => "True",
                    Some(false) => "False",
                    None => "<unset>",
                }),
                json!(arr(&status["active"]).len()),
                json!(last),
                created,
                containers,
                images,
                json!(label_selector(&spec["jobTemplate"]["spec"]["selector"])),
            ]
        }
        Printer::Role => vec![name, json!(o["metadata"]["creationTimestamp"])],
        Printer::RoleBinding => vec![
            name,
            json!(format!(
                "{}/{}",
                o["roleRef"]["kind"].as_str().unwrap_or_default(),
                o["roleRef"]["name"].as_str().unwrap_or_default()
            )),
            created,
            json!(subjects(o, "User")),
            json!(subjects(o, "Group")),
            json!(subjects(o, "ServiceAccount")),
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
        for &p in ALL_PRINTERS {
            assert_eq!(
                columns_of(p).len(),
                cells(p, &json!({}), jiff::Timestamp::now()).len(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn deployment_row_shows_ready_of_desired_and_wide_workload_columns() {
        let o = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = cells(Printer::Deployment, &o, jiff::Timestamp::now());
        assert_eq!(c[1], "2/3");
        assert_eq!((c[2].clone(), c[3].clone()), (json!(3), json!(2)));
        assert_eq!(c[5], "nginx,side");
        assert_eq!(c[6], "nginx:1,busybox");
        assert_eq!(c[7], "app=web,tier in (a,b)");
    }

    #[test]
    fn job_row_counts_completions_and_reads_conditions() {
        let o = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 2},
            "status": {"succeeded": 1, "startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T00:00:30Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let c = cells(Printer::Job, &o, jiff::Timestamp::now());
        assert_eq!(c[1], "Complete");
        assert_eq!(c[2], "1/1 of 2");
        assert_eq!(c[3], "30s");
    }

    #[test]
    fn controller_revision_names_its_controller_like_upstream() {
        let o = json!({"metadata": {"name": "web-1", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 2});
        let c = cells(Printer::ControllerRevision, &o, jiff::Timestamp::now());
        assert_eq!(c[1], "statefulset.apps/web");
        assert_eq!(c[2], 2);
    }

    #[test]
    fn kubectl_get_accept_header_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
