//! `kube` checks: Kubernetes objects read through the API with kube-rs's dynamic client, by name
//! or label selector, with counts, field matchers and status conditions.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, Scope};
use serde_json::Value;

use super::{Context, Outcome, fields};
use crate::lab::model::{Count, CountRange, KubeCheck};

/// Kinds resolved in this check round (resolving costs one discovery request).
pub(crate) type KindCache = Mutex<HashMap<String, (ApiResource, ApiCapabilities)>>;

/// Kinds labs use, so most checks skip discovery: (Kind, apiVersion, short names).
const KNOWN: &[(&str, &str, &[&str])] = &[
    ("Pod", "v1", &["po"]),
    ("Service", "v1", &["svc"]),
    ("Endpoints", "v1", &["ep"]),
    ("ConfigMap", "v1", &["cm"]),
    ("Secret", "v1", &[]),
    ("Namespace", "v1", &["ns"]),
    ("Node", "v1", &["no"]),
    ("Event", "v1", &["ev"]),
    ("ServiceAccount", "v1", &["sa"]),
    ("PersistentVolumeClaim", "v1", &["pvc"]),
    ("Deployment", "apps/v1", &["deploy"]),
    ("ReplicaSet", "apps/v1", &["rs"]),
    ("DaemonSet", "apps/v1", &["ds"]),
    ("StatefulSet", "apps/v1", &["sts"]),
    ("Job", "batch/v1", &[]),
    ("CronJob", "batch/v1", &["cj"]),
    ("EndpointSlice", "discovery.k8s.io/v1", &[]),
    ("Lease", "coordination.k8s.io/v1", &[]),
    ("Ingress", "networking.k8s.io/v1", &["ing"]),
    ("NetworkPolicy", "networking.k8s.io/v1", &["netpol"]),
];

fn known(kind: &str) -> Option<(&'static str, &'static str)> {
    let k = kind.to_ascii_lowercase();
    KNOWN.iter().find_map(|(name, av, short)| {
        let lower = name.to_ascii_lowercase();
        let plural = if lower.ends_with('s') {
            lower.clone()
        } else if let Some(stem) = lower.strip_suffix('y') {
            format!("{stem}ies")
        } else {
            format!("{lower}s")
        };
        (k == lower || k == plural || short.contains(&k.as_str())).then_some((*name, *av))
    })
}

fn matches_resource(ar: &ApiResource, kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    ar.kind.to_ascii_lowercase() == k || ar.plural == k
}

async fn resolve(
    ctx: &Context,
    client: &kube::Client,
    kind: &str,
    api_version: Option<&str>,
) -> Result<(ApiResource, ApiCapabilities), String> {
    let key = format!("{}|{kind}", api_version.unwrap_or_default());
    if let Some(hit) = ctx.kinds.lock().expect("kind cache").get(&key) {
        return Ok(hit.clone());
    }
    let (kind_name, av) = match (api_version, known(kind)) {
        (Some(av), Some((k, _))) => (k.to_string(), Some(av.to_string())),
        (Some(av), None) => (kind.to_string(), Some(av.to_string())),
        (None, Some((k, av))) => (k.to_string(), Some(av.to_string())),
        (None, None) => (kind.to_string(), None),
    };
    let found = match av {
        Some(av) => {
            let gv: kube::core::GroupVersion = av
                .parse()
                .map_err(|e| format!("apiVersion {av:?} is not group/version: {e}"))?;
            let group = kube::discovery::pinned_group(client, &gv)
                .await
                .map_err(|e| format!("cannot discover {av}: {e}"))?;
            group
                .versioned_resources(&gv.version)
                .into_iter()
                .find(|(ar, _)| matches_resource(ar, &kind_name))
        }
        None => {
            let discovery = kube::Discovery::new(client.clone())
                .run()
                .await
                .map_err(|e| format!("cannot discover the API: {e}"))?;
            discovery
                .groups()
                .flat_map(|g| g.recommended_resources())
                .find(|(ar, _)| matches_resource(ar, &kind_name))
        }
    };
    let found = found.ok_or_else(|| {
        format!("the cluster serves no kind {kind:?}; `kubectl api-resources` lists them")
    })?;
    ctx.kinds
        .lock()
        .expect("kind cache")
        .insert(key, found.clone());
    Ok(found)
}

pub async fn run(k: &KubeCheck, ctx: &Context) -> Outcome {
    let client = match ctx.kube().await {
        Ok(c) => c,
        Err(e) => return Outcome::unable(e),
    };
    let (ar, caps) = match resolve(ctx, client, &k.kind.value, k.api_version.as_deref()).await {
        Ok(r) => r,
        Err(e) => return Outcome::unable(e),
    };
    let namespaced = matches!(caps.scope, Scope::Namespaced);
    let ns = k.namespace.as_deref().unwrap_or("default");
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    let place = if namespaced {
        format!(" in namespace {ns}")
    } else {
        String::new()
    };
    let (objects, what) = if let Some(name) = &k.name {
        match api.get_opt(name).await {
            Ok(o) => (
                o.into_iter().collect::<Vec<_>>(),
                format!("{} {name}", ar.kind),
            ),
            Err(e) => {
                return Outcome::unable(format!("cannot read {} {name}{place}: {e}", ar.kind));
            }
        }
    } else {
        let mut lp = ListParams::default();
        if let Some(s) = &k.selector {
            lp = lp.labels(&s.value);
        }
        match api.list(&lp).await {
            Ok(l) => (
                l.items,
                match &k.selector {
                    Some(s) => format!("{} with labels {}", ar.plural, s.value),
                    None => ar.plural.clone(),
                },
            ),
            Err(e) => return Outcome::unable(format!("cannot list {}{place}: {e}", ar.plural)),
        }
    };
    let want = k.count.clone().unwrap_or(if k.name.is_some() {
        Count::Exact(1)
    } else {
        Count::Range(CountRange {
            min: Some(1),
            max: None,
        })
    });
    let names: Vec<String> = objects
        .iter()
        .map(|o| o.metadata.name.clone().unwrap_or_default())
        .collect();
    let mut passed = want.admits(objects.len());
    let mut evidence = vec![format!(
        "{} {what}{place}: found {}{} (want {want})",
        if passed { "✓" } else { "✗" },
        objects.len(),
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", short_list(&names))
        }
    )];
    for (i, o) in objects.iter().enumerate() {
        let json = serde_json::to_value(o).unwrap_or(Value::Null);
        let name = names[i].as_str();
        let mut lines = Vec::new();
        for m in &k.fields {
            let (ok, line) = fields::check(&json, m);
            passed &= ok;
            lines.push(line);
        }
        if let Some(c) = &k.condition {
            let conds = json
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let found = conds
                .iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some(c.kind.as_str()));
            let status = found
                .and_then(|x| x.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("absent");
            let ok = status == c.status;
            passed &= ok;
            let reason = found
                .and_then(|x| x.get("reason"))
                .and_then(Value::as_str)
                .map(|r| format!(", reason {r}"))
                .unwrap_or_default();
            lines.push(format!(
                "{} condition {}: {status}{reason} (want {})",
                if ok { "✓" } else { "✗" },
                c.kind,
                c.status
            ));
        }
        // Five objects tell the story; a hundred would bury it.
        if i < 5 {
            evidence.extend(lines.into_iter().map(|l| format!("{name}: {l}")));
        }
    }
    Outcome { passed, evidence }
}

fn short_list(names: &[String]) -> String {
    if names.len() > 5 {
        format!("{}, … {} more", names[..5].join(", "), names.len() - 5)
    } else {
        names.join(", ")
    }
}

/// Check a label selector's syntax the way kubectl writes them: `a=b`, `a==b`, `a!=b`,
/// `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas.
pub fn parse_selector(s: &str) -> Result<(), String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("{s:?} has an unbalanced ')'"));
        }
        cur.push(c);
    }
    if depth != 0 {
        return Err(format!("{s:?} has an unclosed '('"));
    }
    parts.push(cur);
    let key_ok = |k: &str| {
        let k = k.trim();
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    for p in parts {
        let p = p.trim();
        let ok = if let Some((k, v)) = p
            .split_once("!=")
            .or_else(|| p.split_once("=="))
            .or_else(|| p.split_once('='))
        {
            key_ok(k)
                && v.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        } else if let Some(k) = p.strip_prefix('!') {
            key_ok(k)
        } else if let Some((k, rest)) = p.split_once(" in ").or_else(|| p.split_once(" notin ")) {
            let rest = rest.trim();
            key_ok(k) && rest.starts_with('(') && rest.ends_with(')')
        } else {
            key_ok(p)
        };
        if !ok {
            return Err(format!(
                "{p:?} is not a label selector term; write key=value, key!=value, key in (a,b), key or !key"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_name_plural_or_short_name() {
        assert_eq!(known("Deployment"), Some(("Deployment", "apps/v1")));
        assert_eq!(known("deployments"), Some(("Deployment", "apps/v1")));
        assert_eq!(known("svc"), Some(("Service", "v1")));
        assert_eq!(known("endpoints"), Some(("Endpoints", "v1")));
        assert_eq!(
            known("NetworkPolicies"),
            Some(("NetworkPolicy", "networking.k8s.io/v1"))
        );
        assert_eq!(known("Widget"), None);
    }

    #[test]
    fn selectors_are_checked_like_kubectl_writes_them() {
        for good in [
            "app=web",
            "app==web,tier!=db",
            "env in (a,b),!legacy",
            "app.kubernetes.io/name=x",
            "app",
        ] {
            assert!(parse_selector(good).is_ok(), "{good}");
        }
        for bad in ["app=web,", "env in (a", "a=b=c", "=x"] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }
}
