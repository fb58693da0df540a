//! End-to-end: Flannel in real clusters. Node podCIDRs from the controller-manager, what
//! `ip`, `bridge`, `iptables` and `cat` show on a node compared with what upstream flannel
//! shows for the same cluster, and pod-to-pod traffic across nodes through network namespaces
//! wired by the `flannel` CNI plugin exactly as containerd would call it.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn config(backend: &str, workers: usize) -> String {
    let mut s = format!(
        "kind: Cluster\napiVersion: kindling.dev/v1alpha1\nflannel:\n  backend: {backend}\nnodes:\n- role: control-plane\n"
    );
    for _ in 0..workers {
        s.push_str("- role: worker\n");
    }
    s
}

fn create(name: &str, kubeconfig: &std::path::Path, backend: &str, workers: usize) {
    let path = kubeconfig.with_file_name("kindling.yaml");
    std::fs::write(&path, config(backend, workers)).unwrap();
    kindling(&[
        "create",
        "cluster",
        "--name",
        name,
        "--config",
        &path.to_string_lossy(),
        "--kubeconfig",
        &kubeconfig.to_string_lossy(),
    ])
    .ok("kindling create cluster");
}

/// `sh -c` inside a node.
fn sh(node: &str, script: &str) -> Run {
    docker(&["exec", node, "sh", "-c", script])
}

/// Node name → podCIDR, once every node has one.
fn wait_pod_cidrs(kubeconfig: &std::path::Path, want: usize) -> BTreeMap<String, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        let r = kubectl(
            kubeconfig,
            &[
                "get",
                "nodes",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}"#,
            ],
        );
        let map: BTreeMap<String, String> = r
            .stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, c)| !c.is_empty())
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        if map.len() == want {
            return map;
        }
        last = format!("{}{}", r.stdout, r.stderr);
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("not every node got a podCIDR:\n{last}");
}

/// Wait until `script` on `node` succeeds, returning its output.
fn wait_on_node(node: &str, script: &str, what: &str) -> String {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        let r = sh(node, script);
        if r.code == 0 {
            return r.stdout;
        }
        last = format!("{}{}", r.stdout, r.stderr);
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = sh(node, "tail -n 30 /var/log/kindling/flanneld.log").stdout;
    panic!("{what} on {node} never happened:\n{last}\nflanneld.log:\n{log}");
}

/// The `.0` address of a subnet such as `10.244.2.0/24`.
fn base(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

/// The `.1` gateway address line flannel writes into subnet.env.
fn gateway(cidr: &str) -> String {
    let b = base(cidr);
    format!("{}.1/24", &b[..b.rfind('.').unwrap()])
}

/// Create a network namespace on `node` and run the CNI chain's first plugin (flannel) with
/// CNI_COMMAND=ADD as containerd would; returns the address the namespace got.
fn netns_with_pod_ip(node: &str, ns: &str) -> String {
    let conf = r#"{"cniVersion":"0.3.1","name":"cbr0","type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}}"#;
    let script = format!(
        "ip netns add {ns} && echo '{conf}' | CNI_COMMAND=ADD CNI_CONTAINERID={ns} \
         CNI_NETNS=/var/run/netns/{ns} CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/flannel"
    );
    let out = sh(node, &script)
        .ok("CNI ADD through the flannel plugin")
        .stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let addr = v["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips in CNI result: {out}"));
    addr.split('/').next().unwrap().to_string()
}

/// Ping `to` from namespace `ns` on `from`, while tcpdump on `watch` captures one packet of
/// `filter` on eth0; returns tcpdump's line.
fn ping_while_capturing(from: &str, ns: &str, to: &str, watch: &str, filter: &str) -> String {
    let capture = Command::new("docker")
        .args([
            "exec", watch, "timeout", "20", "tcpdump", "-c", "1", "-ni", "eth0",
        ])
        .args(filter.split(' '))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker exec tcpdump");
    // Let tcpdump open its socket before the first packet.
    std::thread::sleep(Duration::from_millis(1500));
    sh(from, &format!("ip netns exec {ns} ping -c 3 -W 3 {to}"))
        .ok(&format!("ping {to} from {ns} on {from}"));
    let out = capture.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn flannel_ready() -> bool {
    docker_available()
        && require("kubectl", kubectl_path().is_some())
        && require("kubectl 1.20", tools_dir().join("kubectl-1.20").is_file())
}

#[test]
fn vxlan_cluster_matches_upstream_flannel_and_pods_talk_across_nodes() {
    if !flannel_ready() {
        return;
    }
    let _lock = cluster_lock();
    let name = format!("flannel-vx-{}", std::process::id() % 10000);
    let (kubeconfig, _guard) = ClusterGuard::new(&name);
    let started = Instant::now();
    create(&name, &kubeconfig, "vxlan", 2);
    let cp = format!("{name}-control-plane");
    let w1 = format!("{name}-worker");
    let w2 = format!("{name}-worker2");

    // Every node has its own /24 of 10.244.0.0/16.
    let cidrs = wait_pod_cidrs(&kubeconfig, 3);
    let distinct: std::collections::BTreeSet<&String> = cidrs.values().collect();
    assert_eq!(distinct.len(), 3, "{cidrs:?}");
    for c in cidrs.values() {
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "{c}");
    }
    let (c_cp, c_w1, c_w2) = (&cidrs[&cp], &cidrs[&w1], &cidrs[&w2]);

    // flanneld has routes to both other nodes.
    let routes = wait_on_node(
        &w1,
        &format!("ip route | grep -q '{c_cp} via' && ip route | grep -q '{c_w2} via' && ip route"),
        "routes to the other nodes",
    );
    // Upstream: `<remote subnet> via <remote .0> dev flannel.1 onlink`, one per remote node.
    for c in [c_cp, c_w2] {
        let want = format!("{c} via {} dev flannel.1 onlink", base(c));
        assert!(routes.contains(&want), "missing {want:?} in\n{routes}");
    }

    // Upstream: vxlan id 1, local = node IP, dev eth0, dstport 8472, nolearning, MTU 1450.
    let link = sh(&w1, "ip -d link show flannel.1").ok("ip -d link").stdout;
    assert!(link.contains("mtu 1450"), "{link}");
    let want = format!("vxlan id 1 local {} dev eth0 ", container_ip(&w1));
    assert!(link.contains(&want), "missing {want:?} in\n{link}");
    assert!(link.contains("dstport 8472 nolearning"), "{link}");
    let addr = sh(&w1, "ip -4 addr show dev flannel.1")
        .ok("ip addr")
        .stdout;
    assert!(addr.contains(&format!("inet {}/32", base(c_w1))), "{addr}");

    // The MAC each node published is its own flannel.1's MAC.
    let macs: BTreeMap<String, String> = [&cp, &w2]
        .iter()
        .map(|n| {
            let mac = sh(n, "cat /sys/class/net/flannel.1/address")
                .ok("flannel.1 mac")
                .stdout
                .trim()
                .to_string();
            (n.to_string(), mac)
        })
        .collect();
    let ann = kubectl(
        &kubeconfig,
        &["get", "node", &w2, "-o", "jsonpath={.metadata.annotations}"],
    )
    .ok("kubectl get node annotations")
    .stdout;
    let ann: BTreeMap<String, String> = serde_json::from_str(&ann).unwrap();
    assert_eq!(ann["flannel.alpha.coreos.com/kube-subnet-manager"], "true");
    assert_eq!(ann["flannel.alpha.coreos.com/backend-type"], "vxlan");
    assert_eq!(ann["flannel.alpha.coreos.com/public-ip"], container_ip(&w2));
    assert_eq!(
        ann["flannel.alpha.coreos.com/backend-data"],
        format!(r#"{{"VNI":1,"VtepMAC":"{}"}}"#, macs[&w2])
    );

    // Upstream: one `<VtepMAC> dst <remote IP> self permanent` FDB entry per other node.
    let fdb = sh(&w1, "bridge fdb show dev flannel.1")
        .ok("bridge fdb")
        .stdout;
    assert_eq!(fdb.lines().count(), 2, "{fdb}");
    for n in [&cp, &w2] {
        let want = format!("{} dst {} self permanent", macs[n], container_ip(n));
        assert!(fdb.contains(&want), "missing {want:?} in\n{fdb}");
    }
    // Upstream: `<remote .0> lladdr <VtepMAC> PERMANENT`.
    let neigh = sh(&w1, "ip neigh show dev flannel.1").ok("ip neigh").stdout;
    for (n, c) in [(&cp, c_cp), (&w2, c_w2)] {
        let want = format!("{} lladdr {} PERMANENT", base(c), macs[n]);
        assert!(neigh.contains(&want), "missing {want:?} in\n{neigh}");
    }

    // Upstream's subnet.env for this node, byte for byte.
    let env = sh(&w1, "cat /run/flannel/subnet.env")
        .ok("subnet.env")
        .stdout;
    assert_eq!(
        env,
        format!(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET={}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
            gateway(c_w1)
        )
    );
    let conflist = sh(&w1, "cat /etc/cni/net.d/10-flannel.conflist")
        .ok("conflist")
        .stdout;
    let conflist: serde_json::Value = serde_json::from_str(&conflist).unwrap();
    assert_eq!(conflist["name"], "cbr0");
    assert_eq!(conflist["plugins"][0]["type"], "flannel");
    assert_eq!(conflist["plugins"][1]["type"], "portmap");

    // Upstream's masquerade chain (`iptables -t nat -S FLANNEL-POSTRTG` on a flannel node).
    let nat = sh(&w1, "iptables -t nat -S FLANNEL-POSTRTG")
        .ok("iptables nat")
        .stdout;
    let p = c_w1;
    let upstream = format!(
        "-N FLANNEL-POSTRTG\n\
         -A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN\n\
         -A FLANNEL-POSTRTG -s {p} -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN\n\
         -A FLANNEL-POSTRTG -s 10.244.0.0/16 -d {p} -m comment --comment \"flanneld masq\" -j RETURN\n\
         -A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d {p} -m comment --comment \"flanneld masq\" -j RETURN\n\
         -A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully\n\
         -A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully\n"
    );
    assert_eq!(nat, upstream);
    let post = sh(&w1, "iptables -t nat -S POSTROUTING")
        .ok("POSTROUTING")
        .stdout;
    assert!(
        post.contains("-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG"),
        "{post}"
    );
    let fwd = sh(&w1, "iptables -S FLANNEL-FWD")
        .ok("iptables filter")
        .stdout;
    assert_eq!(
        fwd,
        "-N FLANNEL-FWD\n\
         -A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT\n\
         -A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT\n"
    );

    // The ConfigMap upstream users look at.
    let net_conf = kubectl(
        &kubeconfig,
        &[
            "get",
            "configmap",
            "kube-flannel-cfg",
            "-n",
            "kube-flannel",
            "-o",
            r#"jsonpath={.data.net-conf\.json}"#,
        ],
    )
    .ok("kubectl get configmap kube-flannel-cfg")
    .stdout;
    let net_conf: serde_json::Value = serde_json::from_str(&net_conf).unwrap();
    assert_eq!(
        net_conf,
        serde_json::json!({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})
    );

    // Pods without pods: a namespace per worker wired by the CNI plugin, ping across nodes,
    // and the VXLAN packet (UDP 8472, VNI 1) on the wire.
    let ip1 = netns_with_pod_ip(&w1, "kt1");
    let ip2 = netns_with_pod_ip(&w2, "kt2");
    assert!(
        ip1.starts_with(&c_w1[..c_w1.rfind('.').unwrap()]),
        "{ip1} not in {c_w1}"
    );
    assert!(
        ip2.starts_with(&c_w2[..c_w2.rfind('.').unwrap()]),
        "{ip2} not in {c_w2}"
    );
    let seen = ping_while_capturing(&w1, "kt1", &ip2, &w2, "udp port 8472");
    assert!(
        seen.contains(".8472"),
        "tcpdump saw no VXLAN packet: {seen:?}"
    );
    assert!(seen.contains("instance 1"), "not VNI 1: {seen:?}");
    assert!(seen.contains(&ip1) || seen.contains(&ip2), "{seen:?}");
    // The delegate config is kept for DEL, which removes the namespace's address again.
    let saved = sh(&w1, "cat /var/lib/cni/flannel/kt1")
        .ok("saved delegate")
        .stdout;
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["type"], "bridge");
    assert_eq!(saved["ipam"]["ranges"][0][0]["subnet"], c_w1.as_str());
    let conf = r#"{"cniVersion":"0.3.1","name":"cbr0","type":"flannel"}"#;
    sh(
        &w1,
        &format!(
            "echo '{conf}' | CNI_COMMAND=DEL CNI_CONTAINERID=kt1 CNI_NETNS=/var/run/netns/kt1 \
             CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni /usr/lib/cni/flannel"
        ),
    )
    .ok("CNI DEL");
    assert_ne!(sh(&w1, "test -e /var/lib/cni/flannel/kt1").code, 0);
    eprintln!("vxlan test took {:?}", started.elapsed());
}

/// `kubectl run` (with the kubectl at `bin`) puts a whoami pod on `server` and a toolbox pod on
/// `client`; the client pod curls the server pod across nodes. Returns what it answered.
fn pods_curl_across_nodes(
    bin: &std::path::Path,
    kubeconfig: &std::path::Path,
    server: &str,
    client: &str,
) -> String {
    let kc = kubeconfig.to_string_lossy();
    let kubectl = |args: &[&str]| {
        run(Command::new(bin)
            .args(["--kubeconfig", kc.as_ref()])
            .args(args))
    };
    let pin =
        |node: &str| format!(r#"--overrides={{"apiVersion":"v1","spec":{{"nodeName":"{node}"}}}}"#);
    kubectl(&["run", "web", "--image=kindling/whoami", &pin(server)]).ok("kubectl run web");
    kubectl(&[
        "run",
        "client",
        "--image=kindling/toolbox",
        &pin(client),
        "--command",
        "--",
        "sleep",
        "3600",
    ])
    .ok("kubectl run client");
    let start = Instant::now();
    let ip = loop {
        let r = kubectl(&[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.phase}={.status.podIP} {end}",
        ]);
        let running: BTreeMap<&str, &str> = r
            .stdout
            .split_whitespace()
            .filter_map(|p| {
                let mut f = p.split('=');
                let (name, phase, ip) = (f.next()?, f.next()?, f.next()?);
                (phase == "Running").then_some((name, ip))
            })
            .collect();
        if let (Some(ip), true) = (running.get("web"), running.contains_key("client")) {
            break ip.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "pods are not Running: {}",
            r.stdout
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    kubectl(&[
        "exec",
        "client",
        "--",
        "curl",
        "-sS",
        "-m",
        "5",
        &format!("http://{ip}/"),
    ])
    .ok("curl from a pod on another node")
    .stdout
}

/// A 1 control plane + 1 worker cluster with `backend`; returns (cp, worker, cidrs).
fn small_cluster(
    name: &str,
    kubeconfig: &std::path::Path,
    backend: &str,
) -> (String, String, BTreeMap<String, String>) {
    create(name, kubeconfig, backend, 1);
    let cidrs = wait_pod_cidrs(kubeconfig, 2);
    (
        format!("{name}-control-plane"),
        format!("{name}-worker"),
        cidrs,
    )
}

#[test]
fn host_gw_cluster_routes_each_subnet_via_its_node() {
    if !flannel_ready() {
        return;
    }
    let _lock = cluster_lock();
    let name = format!("flannel-gw-{}", std::process::id() % 10000);
    let (kubeconfig, _guard) = ClusterGuard::new(&name);
    let started = Instant::now();
    let (cp, w, cidrs) = small_cluster(&name, &kubeconfig, "hostGw");
    // Upstream host-gw: `<remote subnet> via <remote node IP> dev eth0`, no tunnel device.
    let want = format!("{} via {} dev eth0", cidrs[&cp], container_ip(&cp));
    wait_on_node(
        &w,
        &format!("ip route | grep -q '{want}'"),
        "the host-gw route",
    );
    assert_ne!(
        sh(&w, "ip link show flannel.1").code,
        0,
        "host-gw needs no flannel.1"
    );
    let env = sh(&w, "cat /run/flannel/subnet.env")
        .ok("subnet.env")
        .stdout;
    assert!(env.contains("FLANNEL_MTU=1500\n"), "{env}");
    let ann = kubectl(
        &kubeconfig,
        &[
            "get",
            "node",
            &w,
            "-o",
            r#"jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/backend-type}"#,
        ],
    )
    .ok("kubectl get node")
    .stdout;
    assert_eq!(ann, "host-gw");
    wait_on_node(
        &cp,
        &format!(
            "ip route | grep -q '{} via {} dev eth0'",
            cidrs[&w],
            container_ip(&w)
        ),
        "the host-gw route back",
    );
    let ip_w = netns_with_pod_ip(&w, "kg1");
    let _ = netns_with_pod_ip(&cp, "kg2");
    sh(&cp, &format!("ip netns exec kg2 ping -c 3 -W 3 {ip_w}")).ok("ping across host-gw");
    // kubectl 1.20 here, the current one in the udp test.
    let answer = pods_curl_across_nodes(&tools_dir().join("kubectl-1.20"), &kubeconfig, &w, &cp);
    assert!(answer.contains("Hostname: web"), "{answer}");
    eprintln!("host-gw test took {:?}", started.elapsed());
}

#[test]
fn udp_cluster_tunnels_pod_traffic_through_flannel0() {
    if !flannel_ready() {
        return;
    }
    let _lock = cluster_lock();
    let name = format!("flannel-udp-{}", std::process::id() % 10000);
    let (kubeconfig, _guard) = ClusterGuard::new(&name);
    let started = Instant::now();
    let (cp, w, _cidrs) = small_cluster(&name, &kubeconfig, "udp");
    wait_on_node(&w, "test -s /run/flannel/subnet.env", "subnet.env");
    // Upstream udp: TUN flannel0, MTU 1500 - 28, one route for the whole network.
    let link = sh(&w, "ip -d link show flannel0")
        .ok("ip link flannel0")
        .stdout;
    assert!(link.contains("mtu 1472") && link.contains("tun"), "{link}");
    let routes = sh(&w, "ip route").ok("ip route").stdout;
    assert!(routes.contains("10.244.0.0/16 dev flannel0"), "{routes}");
    let env = sh(&w, "cat /run/flannel/subnet.env")
        .ok("subnet.env")
        .stdout;
    assert!(env.contains("FLANNEL_MTU=1472\n"), "{env}");
    wait_on_node(&cp, "test -s /run/flannel/subnet.env", "subnet.env");
    let ip_w = netns_with_pod_ip(&w, "ku1");
    let _ = netns_with_pod_ip(&cp, "ku2");
    let seen = ping_while_capturing(&cp, "ku2", &ip_w, &w, "udp port 8285");
    assert!(
        seen.contains(".8285"),
        "tcpdump saw no flannel udp packet: {seen:?}"
    );
    let answer = pods_curl_across_nodes(&kubectl_path().unwrap(), &kubeconfig, &w, &cp);
    assert!(answer.contains("Hostname: web"), "{answer}");
    eprintln!("udp test took {:?}", started.elapsed());
}
