//! Field matchers: a dotted path into an object's JSON and one test on what it finds.
//!
//! Keys may themselves hold dots (`metadata.labels.app.kubernetes.io/name`): at each object the
//! longest run of remaining segments that is a key wins. A number indexes a list; `*` means
//! every element (or value), and the matcher passes when any value found satisfies it.

use serde_json::Value;

use crate::lab::model::FieldMatch;

/// Every value at `path` in `root` (none when the path leads nowhere).
pub fn resolve<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    walk(root, &segments, &mut out);
    out
}

fn walk<'a>(v: &'a Value, segs: &[&str], out: &mut Vec<&'a Value>) {
    let Some(first) = segs.first() else {
        out.push(v);
        return;
    };
    match v {
        Value::Object(map) => {
            if *first == "*" {
                for child in map.values() {
                    walk(child, &segs[1..], out);
                }
                return;
            }
            // Longest key first, so `app.kubernetes.io/name` beats `app`.
            for n in (1..=segs.len()).rev() {
                let key = segs[..n].join(".");
                if let Some(child) = map.get(&key) {
                    walk(child, &segs[n..], out);
                    return;
                }
            }
        }
        Value::Array(items) => {
            if *first == "*" {
                for child in items {
                    walk(child, &segs[1..], out);
                }
            } else if let Ok(i) = first.parse::<usize>()
                && let Some(child) = items.get(i)
            {
                walk(child, &segs[1..], out);
            }
        }
        _ => {}
    }
}

/// A scalar as text, the way `equals` compares: strings bare, numbers and booleans as written.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Short display of a found value for evidence lines.
pub fn show(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// Test one matcher; returns whether it passed and an evidence line saying what was seen.
pub fn check(root: &Value, m: &FieldMatch) -> (bool, String) {
    let path = m.path.value.as_str();
    let found = resolve(root, path);
    let seen = if found.is_empty() {
        "absent".to_string()
    } else {
        found.iter().map(|v| show(v)).collect::<Vec<_>>().join(", ")
    };
    let (ok, want) = if let Some(exists) = m.exists {
        (
            found.is_empty() != exists,
            if exists { "present" } else { "absent" }.to_string(),
        )
    } else if let Some(eq) = &m.equals {
        let want = as_text(eq);
        (
            found.iter().any(|v| as_text(v) == want),
            format!("= {want:?}"),
        )
    } else if let Some(re) = &m.matches {
        let ok = match regex::Regex::new(&re.value) {
            Ok(r) => found.iter().any(|v| r.is_match(&as_text(v))),
            Err(_) => false,
        };
        (ok, format!("~ /{}/", re.value))
    } else if let Some(c) = &m.contains {
        let want = as_text(c);
        let ok = found.iter().any(|v| match v {
            Value::Array(items) => items.iter().any(|i| as_text(i) == want),
            Value::Object(map) => map.contains_key(&want),
            other => as_text(other).contains(&want),
        });
        (ok, format!("contains {want:?}"))
    } else {
        (false, "a matcher".to_string())
    };
    let mark = if ok { "✓" } else { "✗" };
    (ok, format!("{mark} {path}: {seen} (want {want})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(yaml: &str) -> FieldMatch {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn doc() -> Value {
        json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "web", "app": "x"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "a", "image": "kindling/whoami:latest"},
                {"name": "b", "image": "kindling/toolbox"}
            ]}}},
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8081"}]}},
            "Config": {"Env": ["PATH=/bin", "MODE=dev"]},
            "ready": true
        })
    }

    #[test]
    fn paths_index_lists_and_keys_with_dots() {
        let d = doc();
        assert_eq!(
            resolve(&d, "spec.template.spec.containers.1.name"),
            [&json!("b")]
        );
        assert_eq!(
            resolve(&d, "metadata.labels.app.kubernetes.io/name"),
            [&json!("web")]
        );
        assert_eq!(resolve(&d, "metadata.labels.app"), [&json!("x")]);
        assert_eq!(
            resolve(&d, "NetworkSettings.Ports.8080/tcp.0.HostPort"),
            [&json!("8081")]
        );
        assert_eq!(resolve(&d, "spec.template.spec.containers.*.name").len(), 2);
        assert!(resolve(&d, "spec.template.spec.containers.5.name").is_empty());
        assert!(resolve(&d, "spec.nothing").is_empty());
    }

    #[test]
    fn equals_compares_numbers_and_strings_as_text() {
        let d = doc();
        assert!(check(&d, &matcher("{path: spec.replicas, equals: 3}")).0);
        assert!(check(&d, &matcher("{path: spec.replicas, equals: \"3\"}")).0);
        assert!(!check(&d, &matcher("{path: spec.replicas, equals: 2}")).0);
        assert!(check(&d, &matcher("{path: ready, equals: true}")).0);
        let (ok, evidence) = check(
            &d,
            &matcher("{path: NetworkSettings.Ports.8080/tcp.0.HostPort, equals: 8080}"),
        );
        assert!(!ok);
        assert_eq!(
            evidence,
            "✗ NetworkSettings.Ports.8080/tcp.0.HostPort: \"8081\" (want = \"8080\")"
        );
    }

    #[test]
    fn matches_exists_and_contains_test_what_they_say() {
        let d = doc();
        assert!(
            check(
                &d,
                &matcher(
                    "{path: 'spec.template.spec.containers.*.image', matches: '^kindling/toolbox'}"
                )
            )
            .0
        );
        assert!(
            !check(
                &d,
                &matcher(
                    "{path: 'spec.template.spec.containers.0.image', matches: '^kindling/toolbox'}"
                )
            )
            .0
        );
        assert!(check(&d, &matcher("{path: spec.replicas, exists: true}")).0);
        assert!(check(&d, &matcher("{path: spec.paused, exists: false}")).0);
        assert!(!check(&d, &matcher("{path: spec.replicas, exists: false}")).0);
        assert!(check(&d, &matcher("{path: Config.Env, contains: MODE=dev}")).0);
        assert!(!check(&d, &matcher("{path: Config.Env, contains: MODE=prod}")).0);
        assert!(check(&d, &matcher("{path: metadata.labels, contains: app}")).0);
        assert!(
            check(
                &d,
                &matcher("{path: spec.template.spec.containers.0.image, contains: whoami}")
            )
            .0
        );
    }
}
