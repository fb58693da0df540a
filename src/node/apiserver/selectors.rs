//! Label and field selectors, parsed from query strings and matched against stored objects.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A label selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Vec<(String, Op)>);

/// Split on commas that are not inside parentheses (`in (a,b)` holds commas).
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(rest: &str, whole: &str) -> Result<Vec<String>> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| Error::Label(whole.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            if let Some(k) = p.strip_prefix('!') {
                reqs.push((k.trim().to_string(), Op::NotExists));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push((k.trim().to_string(), Op::NotEq(v.trim().to_string())));
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                reqs.push((k.trim().to_string(), Op::Eq(v.trim().to_string())));
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                reqs.push((k.trim().to_string(), Op::NotIn(set_values(rest, p)?)));
            } else if let Some((k, rest)) = p.split_once(" in ") {
                reqs.push((k.trim().to_string(), Op::In(set_values(rest, p)?)));
            } else if p.contains([' ', '(', ')']) {
                return Err(Error::Label(p.to_string()));
            } else {
                reqs.push((p.to_string(), Op::Exists));
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        self.0.iter().all(|(k, op)| {
            let v = labels.get(k).and_then(Value::as_str);
            match op {
                Op::Eq(want) => v == Some(want.as_str()),
                Op::NotEq(want) => v != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => !v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

/// A field selector: `path=value` / `path!=value` terms on dotted JSON paths.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self> {
        let mut terms = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (k, true, v)
            } else {
                return Err(Error::Field(s.to_string(), p.to_string()));
            };
            terms.push((k.trim().to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The one `metadata.name=` value, if the selector pins a name (lets a list read one key).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, eq, _)| k == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for seg in path.split('.') {
                cur = &cur[seg];
            }
            let got = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
               "spec": {"nodeName": "kind-worker"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn equality_and_inequality_label_requirements_match() {
        assert!(LabelSelector::parse("app=web").unwrap().matches(&obj()));
        assert!(
            LabelSelector::parse("app==web,tier=front")
                .unwrap()
                .matches(&obj())
        );
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&obj()));
        assert!(LabelSelector::parse("missing!=x").unwrap().matches(&obj()));
    }

    #[test]
    fn set_based_label_requirements_match() {
        assert!(
            LabelSelector::parse("app in (web, db)")
                .unwrap()
                .matches(&obj())
        );
        assert!(
            !LabelSelector::parse("app notin (web,db)")
                .unwrap()
                .matches(&obj())
        );
        assert!(
            LabelSelector::parse("tier,!canary")
                .unwrap()
                .matches(&obj())
        );
        assert!(!LabelSelector::parse("canary").unwrap().matches(&obj()));
    }

    #[test]
    fn malformed_label_selector_is_an_error() {
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn field_selectors_read_dotted_paths() {
        let f = FieldSelector::parse("spec.nodeName=kind-worker,status.phase!=Failed").unwrap();
        assert!(f.matches(&obj()));
        let f = FieldSelector::parse("metadata.name=other").unwrap();
        assert!(!f.matches(&obj()));
        assert_eq!(f.pinned_name(), Some("other"));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
