//! Validation of names and metadata with upstream's messages, answered as 422 Invalid.

use serde_json::Value;

use super::resources::ResourceType;
use super::status::ApiError;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// The shape of a label, whatever its length.
fn is_label_form(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_form(s)
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_form)
}

/// Names: namespaces (and nodes' hostnames aside) must be DNS-1123 labels, the rest subdomains.
pub fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(
            rt,
            name,
            vec![(
                "FieldValueRequired",
                "metadata.name".into(),
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    let label_only = rt.group.is_empty() && matches!(rt.kind, "Namespace" | "Service");
    let (form_ok, msg, limit) = if label_only {
        (is_label_form(name), LABEL_MSG, 63)
    } else {
        (name.split('.').all(is_label_form), SUBDOMAIN_MSG, 253)
    };
    if form_ok && name.len() <= limit {
        return Ok(());
    }
    let mut msgs = Vec::new();
    if name.len() > limit {
        msgs.push(format!("must be no more than {limit} characters"));
    }
    if !form_ok {
        msgs.push(msg.to_string());
    }
    let detail = msgs.join(", ");
    Err(ApiError::invalid(
        rt,
        name,
        vec![(
            "FieldValueInvalid",
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": {detail}"),
        )],
    ))
}

/// Labels must be string maps; anything else is a 422 naming the field.
pub fn validate_metadata(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes = Vec::new();
    for field in ["labels", "annotations"] {
        match &obj["metadata"][field] {
            Value::Null => {}
            Value::Object(m) => {
                for (k, v) in m {
                    if !v.is_string() {
                        causes.push((
                            "FieldValueInvalid",
                            format!("metadata.{field}"),
                            format!("Invalid value: {v}: value of key {k} must be a string"),
                        ));
                    }
                }
            }
            other => causes.push((
                "FieldValueInvalid",
                format!("metadata.{field}"),
                format!("Invalid value: {other}: must be a map of strings"),
            )),
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, causes))
    }
}

/// The five characters `generateName` appends (upstream's alphabet: no vowels, no look-alikes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::apiserver::resources::find;

    #[test]
    fn dns_names_are_checked_like_upstream() {
        assert!(is_dns1123_label("kube-system"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label("-a"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("Upper"));
    }

    #[test]
    fn invalid_namespace_name_is_a_422_with_a_cause() {
        let e = validate_name(find("", "v1", "namespaces").unwrap(), "Bad_Name").unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.starts_with("Namespace \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"));
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn missing_name_is_required() {
        let e = validate_name(find("", "v1", "configmaps").unwrap(), "").unwrap_err();
        assert!(
            e.message
                .ends_with("metadata.name: Required value: name or generateName is required")
        );
    }

    #[test]
    fn generated_suffixes_are_five_safe_characters() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(is_dns1123_label(&s));
    }
}
