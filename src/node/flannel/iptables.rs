//! Flannel's iptables rules (upstream `pkg/trafficmngr/iptables`): masquerade in nat
//! `FLANNEL-POSTRTG`, forwarding in filter `FLANNEL-FWD`, applied with `iptables-restore`.

use super::subnet::Ipv4Net;
use super::{Result, run_cmd};

pub const POSTRTG_CHAIN: &str = "FLANNEL-POSTRTG";
pub const FWD_CHAIN: &str = "FLANNEL-FWD";
/// kube-proxy's masquerade mark: traffic it marked is NATed by kube-proxy, not twice.
pub const KUBE_PROXY_MARK: &str = "0x4000/0x4000";
const MASQ_COMMENT: &str = "flanneld masq";
const FWD_COMMENT: &str = "flanneld forward";

/// One rule: `-A <chain> <spec...>` in `table`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub table: &'static str,
    pub chain: &'static str,
    pub spec: Vec<String>,
}

fn rule(table: &'static str, chain: &'static str, spec: &[&str], comment: &str) -> Rule {
    // Upstream puts the comment match right before the target.
    let j = spec.iter().position(|s| *s == "-j").unwrap_or(spec.len());
    let mut v: Vec<String> = spec[..j].iter().map(|s| s.to_string()).collect();
    v.extend(["-m", "comment", "--comment", comment].map(String::from));
    v.extend(spec[j..].iter().map(|s| s.to_string()));
    Rule {
        table,
        chain,
        spec: v,
    }
}

/// The jump from POSTROUTING and the masquerade rules, in upstream's order.
pub fn masq_rules(cluster: Ipv4Net, pod: Ipv4Net) -> Vec<Rule> {
    let (c, p) = (cluster.network().to_string(), pod.network().to_string());
    let r = |spec: &[&str]| rule("nat", POSTRTG_CHAIN, spec, MASQ_COMMENT);
    vec![
        rule("nat", "POSTROUTING", &["-j", POSTRTG_CHAIN], MASQ_COMMENT),
        r(&["-m", "mark", "--mark", KUBE_PROXY_MARK, "-j", "RETURN"]),
        // Pod to pod inside the overlay keeps its source address.
        r(&["-s", &p, "-d", &c, "-j", "RETURN"]),
        r(&["-s", &c, "-d", &p, "-j", "RETURN"]),
        // External traffic arriving for a local pod keeps its source too.
        r(&["!", "-s", &c, "-d", &p, "-j", "RETURN"]),
        // Pods leaving the cluster (except multicast) are NATed to the node's address.
        r(&[
            "-s",
            &c,
            "!",
            "-d",
            "224.0.0.0/4",
            "-j",
            "MASQUERADE",
            "--random-fully",
        ]),
        // The host talking to pods elsewhere uses an address the other side can answer.
        r(&[
            "!",
            "-s",
            &c,
            "-d",
            &c,
            "-j",
            "MASQUERADE",
            "--random-fully",
        ]),
    ]
}

/// The jump from FORWARD and the rules accepting the pod network in both directions.
pub fn forward_rules(cluster: Ipv4Net) -> Vec<Rule> {
    let c = cluster.network().to_string();
    vec![
        rule("filter", "FORWARD", &["-j", FWD_CHAIN], FWD_COMMENT),
        rule(
            "filter",
            FWD_CHAIN,
            &["-s", &c, "-j", "ACCEPT"],
            FWD_COMMENT,
        ),
        rule(
            "filter",
            FWD_CHAIN,
            &["-d", &c, "-j", "ACCEPT"],
            FWD_COMMENT,
        ),
    ]
}

fn quote(arg: &str) -> String {
    if arg.contains(' ') {
        format!("\"{arg}\"")
    } else {
        arg.to_string()
    }
}

/// The rule as `iptables -S` prints it.
pub fn rule_line(r: &Rule) -> String {
    let mut s = format!("-A {}", r.chain);
    for a in &r.spec {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

/// `iptables-restore --noflush` input for flannel's own chains: declaring a chain flushes it,
/// so applying this again replaces the chain's rules atomically instead of duplicating them.
/// The jumps from built-in chains are left to [`jump_rules`], because those chains are shared.
pub fn restore_payload(rules: &[Rule]) -> String {
    let mut out = String::new();
    for table in ["nat", "filter"] {
        let own: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.table == table && r.chain.starts_with("FLANNEL-"))
            .collect();
        if own.is_empty() {
            continue;
        }
        out.push_str(&format!("*{table}\n"));
        let mut chains: Vec<&str> = own.iter().map(|r| r.chain).collect();
        chains.dedup();
        for c in chains {
            out.push_str(&format!(":{c} - [0:0]\n"));
        }
        for r in own {
            out.push_str(&rule_line(r));
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// The rules that jump from built-in chains into flannel's.
pub fn jump_rules(rules: &[Rule]) -> Vec<&Rule> {
    rules
        .iter()
        .filter(|r| !r.chain.starts_with("FLANNEL-"))
        .collect()
}

/// Apply the rules: the flannel chains in one transaction, then each jump unless present.
pub async fn ensure(rules: &[Rule]) -> Result<()> {
    super::run_cmd_stdin(
        &["iptables-restore", "-w", "--noflush"],
        &restore_payload(rules),
    )
    .await?;
    for j in jump_rules(rules) {
        let mut check: Vec<&str> = vec!["iptables", "-w", "-t", j.table, "-C", j.chain];
        check.extend(j.spec.iter().map(String::as_str));
        if run_cmd(&check).await.is_err() {
            let mut add: Vec<&str> = vec!["iptables", "-w", "-t", j.table, "-A", j.chain];
            add.extend(j.spec.iter().map(String::as_str));
            run_cmd(&add).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn masquerade_rules_print_like_upstream_flannel() {
        let rules = masq_rules(net("10.244.0.0/16"), net("10.244.1.0/24"));
        let lines: Vec<String> = rules.iter().map(rule_line).collect();
        assert_eq!(
            lines,
            [
                r#"-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG"#,
                r#"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN"#,
                r#"-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN"#,
                r#"-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN"#,
                r#"-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN"#,
                r#"-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully"#,
                r#"-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully"#,
            ]
        );
    }

    #[test]
    fn forward_rules_accept_the_pod_network_both_ways() {
        let lines: Vec<String> = forward_rules(net("10.244.0.0/16"))
            .iter()
            .map(rule_line)
            .collect();
        assert_eq!(
            lines,
            [
                r#"-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD"#,
                r#"-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT"#,
                r#"-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT"#,
            ]
        );
    }

    #[test]
    fn restore_payload_declares_and_fills_only_flannel_chains() {
        let mut rules = masq_rules(net("10.244.0.0/16"), net("10.244.2.0/24"));
        rules.extend(forward_rules(net("10.244.0.0/16")));
        let p = restore_payload(&rules);
        assert!(p.starts_with("*nat\n:FLANNEL-POSTRTG - [0:0]\n-A FLANNEL-POSTRTG -m mark"));
        assert!(p.contains("COMMIT\n*filter\n:FLANNEL-FWD - [0:0]\n"));
        assert!(p.ends_with("COMMIT\n"));
        assert!(!p.contains("POSTROUTING"));
        assert_eq!(p.matches("-A ").count(), 8);
        let jumps: Vec<&str> = jump_rules(&rules).iter().map(|r| r.chain).collect();
        assert_eq!(jumps, ["POSTROUTING", "FORWARD"]);
    }
}
