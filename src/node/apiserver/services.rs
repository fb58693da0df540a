//! Services as upstream's registry treats them: defaults, ClusterIP and NodePort allocation
//! (each address or port held by a key in etcd written with the Service), and update rules.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::resources::{self, ResourceType};
use super::status::ApiError;
use super::storage::{self, Store};

/// Where each allocated ClusterIP is held (`/registry/ranges/serviceips/10.96.0.1`).
pub const IP_CLAIMS: &str = "/registry/ranges/serviceips/";
/// Where each allocated NodePort is held (`/registry/ranges/servicenodeports/30080`).
pub const PORT_CLAIMS: &str = "/registry/ranges/servicenodeports/";
/// Upstream's `--service-node-port-range` default.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--service-cluster-ip-range {0} is not an IPv4 CIDR with room for services")]
    BadCidr(String),
    #[error("--service-node-port-range {0} is not a port range like 30000-32767")]
    BadPorts(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ranges Services are given addresses and node ports from.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    cidr: String,
    /// First and last usable address (the network and broadcast addresses are never given).
    first: u32,
    last: u32,
    ports: (u16, u16),
}

impl Ranges {
    pub fn parse(cidr: &str, ports: &str) -> Result<Self> {
        let bad = || Error::BadCidr(cidr.to_string());
        let (net, bits) = cidr.split_once('/').ok_or_else(bad)?;
        let net: Ipv4Addr = net.parse().map_err(|_| bad())?;
        let bits: u32 = bits.parse().ok().filter(|b| *b <= 30).ok_or_else(bad)?;
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        let network = u32::from(net) & mask;
        let broadcast = network | !mask;
        let bad_ports = || Error::BadPorts(ports.to_string());
        let (lo, hi) = ports.split_once('-').ok_or_else(bad_ports)?;
        let (lo, hi): (u16, u16) = (
            lo.trim().parse().map_err(|_| bad_ports())?,
            hi.trim().parse().map_err(|_| bad_ports())?,
        );
        if lo == 0 || lo > hi {
            return Err(bad_ports());
        }
        Ok(Ranges {
            cidr: format!("{}/{bits}", Ipv4Addr::from(network)),
            first: network + 1,
            last: broadcast - 1,
            ports: (lo, hi),
        })
    }

    /// The `kubernetes` Service's address: the first of the range.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first)
    }

    fn has_ip(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    fn has_port(&self, p: i64) -> bool {
        (i64::from(self.ports.0)..=i64::from(self.ports.1)).contains(&p)
    }
}

/// A fresh random number for picking where a search starts.
fn random() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// A free value in `[lo, hi]`, preferring the part above `lo + band`: upstream keeps the bottom
/// of each range (16 to 256 addresses, 16 to 128 ports) for values users ask for by hand.
fn pick(lo: u32, hi: u32, band: u32, taken: impl Fn(u32) -> bool) -> Option<u32> {
    let split = lo.saturating_add(band).min(hi.saturating_add(1));
    let search = |a: u32, b: u32| -> Option<u32> {
        if a > b {
            return None;
        }
        let size = u64::from(b - a) + 1;
        let start = random() % size;
        (0..size)
            .map(|i| a + ((start + i) % size) as u32)
            .find(|v| !taken(*v))
    };
    search(split, hi).or_else(|| search(lo, split.saturating_sub(1)))
}

/// The addresses and ports held now, read from their claim keys.
#[derive(Debug, Default, Clone)]
pub struct Used {
    pub ips: HashSet<Ipv4Addr>,
    pub ports: HashSet<i64>,
}

impl Used {
    pub async fn read(store: &Store) -> Result<Used, storage::Error> {
        let mut used = Used::default();
        for (prefix, is_ip) in [(IP_CLAIMS, true), (PORT_CLAIMS, false)] {
            let end = super::etcd::prefix_end(prefix);
            let (kvs, _) = store.etcd.range(prefix, &end, 0).await?;
            for kv in kvs {
                let v = &kv.key[prefix.len()..];
                if is_ip {
                    used.ips.extend(v.parse::<Ipv4Addr>().ok());
                } else {
                    used.ports.extend(v.parse::<i64>().ok());
                }
            }
        }
        Ok(used)
    }

    /// Without what `svc` holds itself (an update may keep its own values).
    fn without(mut self, svc: &Value) -> Used {
        for k in claims(svc) {
            if let Some(ip) = k.strip_prefix(IP_CLAIMS) {
                ip.parse().ok().map(|ip| self.ips.remove(&ip));
            } else if let Some(p) = k.strip_prefix(PORT_CLAIMS) {
                p.parse().ok().map(|p| self.ports.remove(&p));
            }
        }
        self
    }
}

/// Whether `rt` is core/v1 Service.
pub fn is_service(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.kind == "Service"
}

fn services() -> &'static ResourceType {
    resources::find("", "v1", "services").expect("services are registered")
}

fn kind(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

fn needs_ip(svc: &Value) -> bool {
    kind(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    match kind(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

fn ports(svc: &Value) -> Vec<Value> {
    svc["spec"]["ports"].as_array().cloned().unwrap_or_default()
}

fn node_port(p: &Value) -> i64 {
    p["nodePort"].as_i64().unwrap_or(0)
}

/// The keys `svc` holds: one per ClusterIP (not "None") and one per distinct NodePort.
pub fn claims(svc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if needs_ip(svc) {
        for ip in cluster_ips(svc) {
            if let Ok(ip) = ip.parse::<Ipv4Addr>() {
                out.push(format!("{IP_CLAIMS}{ip}"));
            }
        }
    }
    for p in ports(svc) {
        let k = format!("{PORT_CLAIMS}{}", node_port(&p));
        if node_port(&p) > 0 && !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn cluster_ips(svc: &Value) -> Vec<String> {
    match svc["spec"]["clusterIPs"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => match svc["spec"]["clusterIP"].as_str() {
            Some(ip) if !ip.is_empty() => vec![ip.to_string()],
            _ => Vec::new(),
        },
    }
}

/// Go's `%#v` of a string slice, as upstream prints clusterIPs in messages.
fn go_strings(v: &[String]) -> String {
    let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

type Cause = (&'static str, String, String);

fn invalid(svc: &Value, causes: Vec<Cause>) -> ApiError {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    ApiError::invalid(services(), name, causes)
}

/// Upstream's defaults for a Service being created or updated.
pub fn default(svc: &mut Value) {
    if !svc["spec"].is_object() {
        svc["spec"] = json!({});
    }
    let spec = &mut svc["spec"];
    if spec["type"].as_str().is_none_or(str::is_empty) {
        spec["type"] = json!("ClusterIP");
    }
    let t = spec["type"].as_str().unwrap_or_default().to_string();
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() || p["targetPort"] == json!(0) {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    if t == "ExternalName" {
        return;
    }
    if spec["internalTrafficPolicy"].is_null() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if matches!(t.as_str(), "NodePort" | "LoadBalancer") && spec["externalTrafficPolicy"].is_null()
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if t == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"].is_null() {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    if spec["clusterIP"].as_str() == Some("None") && spec["clusterIPs"].is_null() {
        spec["clusterIPs"] = json!(["None"]);
    }
    if spec["ipFamilies"].is_null() {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    if spec["ipFamilyPolicy"].is_null() {
        // Headless Services without a selector take every family the cluster has.
        let headless_no_selector =
            spec["clusterIP"].as_str() == Some("None") && spec["selector"].is_null();
        spec["ipFamilyPolicy"] = json!(if headless_no_selector {
            "RequireDualStack"
        } else {
            "SingleStack"
        });
    }
}

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// Checks that need no allocator: the type, ports, where node ports may appear.
fn validate(svc: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let t = kind(svc);
    if !TYPES.contains(&t) {
        causes.push((
            "FieldValueNotSupported",
            "spec.type".into(),
            format!("Unsupported value: \"{t}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let headless = svc["spec"]["clusterIP"].as_str() == Some("None");
    if ports(svc).is_empty() && !headless && t != "ExternalName" {
        causes.push((
            "FieldValueRequired",
            "spec.ports".into(),
            "Required value".into(),
        ));
    }
    if t == "ExternalName"
        && svc["spec"]["externalName"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        causes.push((
            "FieldValueRequired",
            "spec.externalName".into(),
            "Required value".into(),
        ));
    }
    for (i, p) in ports(svc).iter().enumerate() {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push((
                "FieldValueInvalid",
                format!("spec.ports[{i}].port"),
                format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
            ));
        }
        if node_port(p) != 0 && matches!(t, "ClusterIP" | "ExternalName") {
            causes.push((
                "FieldValueForbidden",
                format!("spec.ports[{i}].nodePort"),
                format!("Forbidden: may not be used when `type` is '{t}'"),
            ));
        }
    }
    for (i, ip) in cluster_ips(svc).iter().enumerate() {
        if ip != "None" && ip.parse::<std::net::IpAddr>().is_err() {
            causes.push((
                "FieldValueInvalid",
                format!("spec.clusterIPs[{i}]"),
                format!(
                    "Invalid value: {ip:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
                ),
            ));
        }
    }
    causes
}

/// Give `svc` its ClusterIP and NodePorts: the ones it names are checked against the ranges and
/// against `used`, the rest picked. Returns the claim keys the user asked for by value (a race
/// lost on one of those is the user's error; on a picked one, the caller picks again).
pub fn allocate(ranges: &Ranges, used: &Used, svc: &mut Value) -> Result<Vec<String>, ApiError> {
    let causes = validate(svc);
    if !causes.is_empty() {
        return Err(invalid(svc, causes));
    }
    let mut explicit = Vec::new();
    if needs_ip(svc) {
        let ips = cluster_ips(svc);
        match ips.first().map(String::as_str) {
            Some("None") => {}
            None | Some("") => {
                let ip = pick(
                    ranges.first,
                    ranges.last,
                    ((ranges.last - ranges.first + 1) / 16).clamp(16, 256),
                    |v| used.ips.contains(&Ipv4Addr::from(v)),
                )
                .map(Ipv4Addr::from)
                .ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?;
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
            Some(wanted) => {
                let ip: Ipv4Addr = wanted.parse().map_err(|_| {
                    invalid(svc, vec![(
                        "FieldValueInvalid",
                        "spec.clusterIPs".into(),
                        format!("Invalid value: {}: failed to allocate IP {wanted}: only IPv4 is served in this cluster", go_strings(&ips)),
                    )])
                })?;
                let problem = if !ranges.has_ip(ip) {
                    Some(format!(
                        "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                        ranges.cidr
                    ))
                } else if used.ips.contains(&ip) {
                    Some("provided IP is already allocated".to_string())
                } else {
                    None
                };
                if let Some(p) = problem {
                    return Err(invalid(
                        svc,
                        vec![(
                            "FieldValueInvalid",
                            "spec.clusterIPs".into(),
                            format!(
                                "Invalid value: {}: failed to allocate IP {ip}: {p}",
                                go_strings(&ips)
                            ),
                        )],
                    ));
                }
                explicit.push(format!("{IP_CLAIMS}{ip}"));
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
        }
    }
    if needs_node_ports(svc) {
        let mut mine: HashSet<i64> = HashSet::new();
        let mut ports = ports(svc);
        let mut causes = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let np = node_port(p);
            if np == 0 {
                continue;
            }
            let problem = if !ranges.has_port(np) {
                Some(format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    ranges.ports.0, ranges.ports.1
                ))
            } else if used.ports.contains(&np) {
                Some("provided port is already allocated".to_string())
            } else {
                None
            };
            match problem {
                Some(msg) => causes.push((
                    "FieldValueInvalid",
                    format!("spec.ports[{i}].nodePort"),
                    format!("Invalid value: {np}: {msg}"),
                )),
                None => {
                    mine.insert(np);
                    explicit.push(format!("{PORT_CLAIMS}{np}"));
                }
            }
        }
        if !causes.is_empty() {
            return Err(invalid(svc, causes));
        }
        let (lo, hi) = (u32::from(ranges.ports.0), u32::from(ranges.ports.1));
        let band = ((hi - lo + 1) / 32).clamp(16, 128);
        for p in ports.iter_mut().filter(|p| node_port(p) == 0) {
            let np = pick(lo, hi, band, |v| {
                used.ports.contains(&i64::from(v)) || mine.contains(&i64::from(v))
            })
            .ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?;
            mine.insert(i64::from(np));
            p["nodePort"] = json!(np);
        }
        svc["spec"]["ports"] = json!(ports);
    }
    Ok(explicit)
}

/// A Service being created: defaults, then its allocations.
pub fn prepare_create(
    ranges: &Ranges,
    used: &Used,
    svc: &mut Value,
) -> Result<Vec<String>, ApiError> {
    default(svc);
    if svc["status"].is_null() {
        svc["status"] = json!({"loadBalancer": {}});
    }
    allocate(ranges, used, svc)
}

/// A Service being updated from `old`: allocated values the update left out are kept (as
/// `kubectl replace` expects), fields the new type has no use for are dropped, a ClusterIP
/// never changes, and what the new type needs is allocated.
pub fn prepare_update(
    ranges: &Ranges,
    used: Used,
    old: &Value,
    new: &mut Value,
) -> Result<Vec<String>, ApiError> {
    if !new["spec"].is_object() {
        new["spec"] = json!({});
    }
    if new["spec"]["type"].as_str().is_none_or(str::is_empty) {
        new["spec"]["type"] = json!("ClusterIP");
    }
    let used = used.without(old);
    if needs_ip(old) && needs_ip(new) {
        let spec = &mut new["spec"];
        if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
            spec["clusterIP"] = old["spec"]["clusterIP"].clone();
            if spec["clusterIPs"].is_null() {
                spec["clusterIPs"] = old["spec"]["clusterIPs"].clone();
            }
        }
        if spec["clusterIPs"].is_null() || spec["clusterIPs"] == json!([]) {
            spec["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
        // A changed clusterIP with clusterIPs left as they were: clusterIPs follow it.
        if spec["clusterIP"] != old["spec"]["clusterIP"]
            && spec["clusterIPs"] == old["spec"]["clusterIPs"]
            && let Some(ip) = spec["clusterIP"].as_str().map(str::to_string)
            && spec["clusterIPs"].as_array().is_some_and(|a| !a.is_empty())
        {
            spec["clusterIPs"][0] = json!(ip);
        }
        let (was, now) = (cluster_ips(old), cluster_ips(new));
        for (i, ip) in was.iter().enumerate() {
            if now.get(i).is_some_and(|n| n != ip) {
                return Err(invalid(
                    new,
                    vec![(
                        "FieldValueInvalid",
                        format!("spec.clusterIPs[{i}]"),
                        format!(
                            "Invalid value: {}: may not change once set",
                            go_strings(&now)
                        ),
                    )],
                ));
            }
        }
    }
    if !needs_ip(new)
        && let Some(spec) = new["spec"].as_object_mut()
    {
        for f in [
            "clusterIP",
            "clusterIPs",
            "ipFamilies",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
        ] {
            spec.remove(f);
        }
    }
    let old_ports = ports(old);
    let same_port = |p: &Value| {
        old_ports
            .iter()
            .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"].clone().or_tcp())
            .map(node_port)
            .unwrap_or(0)
    };
    let keep_ports = needs_node_ports(old) && needs_node_ports(new);
    let drop_ports = needs_node_ports(old) && !needs_node_ports(new);
    if let Some(ps) = new["spec"]["ports"].as_array_mut() {
        for p in ps {
            let before = same_port(p);
            if keep_ports && node_port(p) == 0 && before > 0 {
                p["nodePort"] = json!(before);
            }
            if drop_ports && node_port(p) == before {
                p.as_object_mut().map(|m| m.remove("nodePort"));
            }
        }
    }
    if !matches!(kind(new), "NodePort" | "LoadBalancer")
        && let Some(spec) = new["spec"].as_object_mut()
    {
        spec.remove("externalTrafficPolicy");
    }
    default(new);
    allocate(ranges, &used, new)
}

trait OrTcp {
    fn or_tcp(self) -> Value;
}

impl OrTcp for Value {
    fn or_tcp(self) -> Value {
        if self.is_null() { json!("TCP") } else { self }
    }
}

/// The 422 for a claim lost to a racing request: the address or port is now taken.
pub fn claimed_error(svc: &Value, key: &str) -> ApiError {
    if let Some(ip) = key.strip_prefix(IP_CLAIMS) {
        return invalid(
            svc,
            vec![(
                "FieldValueInvalid",
                "spec.clusterIPs".into(),
                format!(
                    "Invalid value: {}: failed to allocate IP {ip}: provided IP is already allocated",
                    go_strings(&cluster_ips(svc))
                ),
            )],
        );
    }
    let port = key
        .strip_prefix(PORT_CLAIMS)
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(0);
    let i = ports(svc)
        .iter()
        .position(|p| node_port(p) == port)
        .unwrap_or(0);
    invalid(
        svc,
        vec![(
            "FieldValueInvalid",
            format!("spec.ports[{i}].nodePort"),
            format!("Invalid value: {port}: provided port is already allocated"),
        )],
    )
}

/// The `kubernetes` Service, its Endpoints and its EndpointSlice, pointing at this API server,
/// as upstream's bootstrap controller writes them.
pub fn kubernetes_service(ip: Ipv4Addr, port: u16) -> Value {
    json!({
        "metadata": {"labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}},
    })
}

pub fn kubernetes_endpoints(ip: std::net::IpAddr, port: u16) -> Value {
    json!({
        "metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip.to_string()}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    })
}

pub fn kubernetes_endpoint_slice(ip: std::net::IpAddr, port: u16) -> Value {
    json!({
        "metadata": {"labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if ip.is_ipv6() { "IPv6" } else { "IPv4" },
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Ranges {
        Ranges::parse("10.96.0.0/16", DEFAULT_NODE_PORT_RANGE).unwrap()
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn ranges_exclude_the_network_and_broadcast_addresses() {
        let r = ranges();
        assert_eq!(r.first_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(r.has_ip(Ipv4Addr::new(10, 96, 255, 254)));
        assert!(!r.has_ip(Ipv4Addr::new(10, 96, 255, 255)));
        assert!(!r.has_ip(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(Ranges::parse("nonsense", DEFAULT_NODE_PORT_RANGE).is_err());
        assert!(Ranges::parse("10.96.0.0/16", "32767-30000").is_err());
    }

    #[test]
    fn a_cluster_ip_service_gets_upstream_defaults_and_an_address_above_the_static_band() {
        let mut s = svc(json!({"ports": [{"port": 80}], "selector": {"app": "web"}}));
        prepare_create(&ranges(), &Used::default(), &mut s).unwrap();
        let spec = &s["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        assert!(spec["externalTrafficPolicy"].is_null());
        let ip: Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(u32::from(ip) >= u32::from(Ipv4Addr::new(10, 96, 1, 1)));
        assert_eq!(spec["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(claims(&s), vec![format!("{IP_CLAIMS}{ip}")]);
    }

    #[test]
    fn node_ports_are_allocated_distinct_and_explicit_ones_checked() {
        let mut used = Used::default();
        used.ports.insert(30080);
        let mut s = svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}));
        prepare_create(&ranges(), &used, &mut s).unwrap();
        let (a, b) = (
            node_port(&s["spec"]["ports"][0]),
            node_port(&s["spec"]["ports"][1]),
        );
        assert!(a != b && (30000..=32767).contains(&a) && (30000..=32767).contains(&b));
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        let mut taken =
            svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        let e = prepare_create(&ranges(), &used, &mut taken).unwrap_err();
        assert_eq!(
            e.message,
            "Service \"x\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        let mut far = svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}));
        let e = prepare_create(&ranges(), &used, &mut far).unwrap_err();
        assert!(e.message.ends_with("Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"));
    }

    #[test]
    fn explicit_cluster_ips_are_refused_when_taken_or_out_of_range() {
        let mut used = Used::default();
        used.ips.insert(Ipv4Addr::new(10, 96, 0, 5));
        let mut s = svc(json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}));
        let e = prepare_create(&ranges(), &used, &mut s).unwrap_err();
        assert_eq!(
            e.message,
            "Service \"x\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.5\"}: failed to allocate IP 10.96.0.5: provided IP is already allocated"
        );
        let mut s = svc(json!({"clusterIP": "1.1.1.1", "ports": [{"port": 80}]}));
        let e = prepare_create(&ranges(), &used, &mut s).unwrap_err();
        assert!(e.message.ends_with("failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/16"));
    }

    #[test]
    fn headless_and_external_name_services_hold_no_address() {
        let mut h = svc(json!({"clusterIP": "None", "selector": {"a": "b"}}));
        prepare_create(&ranges(), &Used::default(), &mut h).unwrap();
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        assert!(claims(&h).is_empty());
        let mut e = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        prepare_create(&ranges(), &Used::default(), &mut e).unwrap();
        assert!(e["spec"]["clusterIP"].is_null());
        assert!(e["spec"]["ipFamilies"].is_null());
        assert!(claims(&e).is_empty());
    }

    #[test]
    fn updates_keep_allocations_and_refuse_a_new_cluster_ip() {
        let mut old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.3.4", "ports": [{"port": 80, "nodePort": 30111}]}),
        );
        prepare_create(&ranges(), &Used::default(), &mut old).unwrap();
        let mut used = Used::default();
        used.ips.insert(Ipv4Addr::new(10, 96, 3, 4));
        used.ports.insert(30111);
        // A replace that leaves the allocated values out keeps them.
        let mut new = svc(json!({"type": "NodePort", "ports": [{"port": 80}]}));
        prepare_update(&ranges(), used.clone(), &old, &mut new).unwrap();
        assert_eq!(new["spec"]["clusterIP"], "10.96.3.4");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30111);
        let mut moved = new.clone();
        moved["spec"]["clusterIP"] = json!("10.96.3.5");
        let e = prepare_update(&ranges(), used.clone(), &old, &mut moved).unwrap_err();
        assert_eq!(
            e.message,
            "Service \"x\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.96.3.5\"}: may not change once set"
        );
        // Back to ClusterIP: the node ports go.
        let mut back = new.clone();
        back["spec"]["type"] = json!("ClusterIP");
        prepare_update(&ranges(), used, &old, &mut back).unwrap();
        assert!(back["spec"]["ports"][0]["nodePort"].is_null());
        assert!(back["spec"]["externalTrafficPolicy"].is_null());
        assert_eq!(claims(&back), vec![format!("{IP_CLAIMS}10.96.3.4")]);
    }

    #[test]
    fn node_ports_on_a_cluster_ip_service_are_forbidden() {
        let mut s = svc(json!({"ports": [{"port": 80, "nodePort": 30001}]}));
        let e = prepare_create(&ranges(), &Used::default(), &mut s).unwrap_err();
        assert!(e.message.ends_with(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ));
    }
}
