//! A small protobuf encoder and the Swagger 2.0 → gnostic `openapi.v2.Document` conversion that
//! kubectl (≤ 1.2x) downloads from `/openapi/v2` for client-side validation and `explain`.
//!
//! Field numbers are those of gnostic-models `openapiv2/OpenAPIv2.proto`. Only what kubectl
//! reads is converted: the document header and every definition's schema.

use serde_json::Value;

/// Protobuf wire types used here.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

/// Appends protobuf fields to a buffer; a nested message is encoded into its own buffer first,
/// since its length prefix must come before it.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint((u64::from(field) << 3) | wire);
    }

    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// proto3 leaves empty strings out.
    pub fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A repeated string field: one entry per element, empty ones included.
    pub fn strings<'a>(&mut self, field: u32, items: impl IntoIterator<Item = &'a str>) {
        for s in items {
            self.bytes(field, s.as_bytes());
        }
    }

    pub fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    pub fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, VARINT);
            self.varint(v as u64);
        }
    }

    pub fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A nested message, written even when empty (presence matters for message fields).
    pub fn message(&mut self, field: u32, f: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        f(&mut inner);
        self.bytes(field, &inner.buf);
    }
}

/// A Swagger 2.0 JSON document (`swagger`, `info`, `definitions`) as a gnostic `Document`.
pub fn document(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    w.message(2, |info| {
        info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
        info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
    });
    if let Some(defs) = doc["definitions"].as_object() {
        // Definitions { repeated NamedSchema additional_properties = 1 }
        w.message(9, |d| {
            for (name, schema) in defs {
                d.message(1, |n| named_schema(n, name, schema));
            }
        });
    }
    w.into_bytes()
}

/// NamedSchema { name = 1; Schema value = 2 }
fn named_schema(w: &mut Writer, name: &str, schema: &Value) {
    w.string(1, name);
    w.message(2, |s| self::schema(s, schema));
}

/// gnostic `Schema`: the JSON Schema keywords Swagger 2.0 allows, vendor extensions last.
pub fn schema(w: &mut Writer, s: &Value) {
    let str_of = |k: &str| s[k].as_str().unwrap_or_default();
    w.string(1, str_of("$ref"));
    w.string(2, str_of("format"));
    w.string(3, str_of("title"));
    w.string(4, str_of("description"));
    if let Some(d) = s.get("default") {
        w.message(5, |a| any(a, d));
    }
    w.double(6, s["multipleOf"].as_f64().unwrap_or_default());
    w.double(7, s["maximum"].as_f64().unwrap_or_default());
    w.bool(8, s["exclusiveMaximum"].as_bool().unwrap_or_default());
    w.double(9, s["minimum"].as_f64().unwrap_or_default());
    w.bool(10, s["exclusiveMinimum"].as_bool().unwrap_or_default());
    w.int64(11, s["maxLength"].as_i64().unwrap_or_default());
    w.int64(12, s["minLength"].as_i64().unwrap_or_default());
    w.string(13, str_of("pattern"));
    w.int64(14, s["maxItems"].as_i64().unwrap_or_default());
    w.int64(15, s["minItems"].as_i64().unwrap_or_default());
    w.bool(16, s["uniqueItems"].as_bool().unwrap_or_default());
    if let Some(req) = s["required"].as_array() {
        w.strings(19, req.iter().filter_map(Value::as_str));
    }
    for e in s["enum"].as_array().into_iter().flatten() {
        w.message(20, |a| any(a, e));
    }
    match s.get("additionalProperties") {
        // AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2 } }
        Some(Value::Bool(b)) => w.message(21, |a| {
            a.key(2, VARINT);
            a.varint(u64::from(*b));
        }),
        Some(sub @ Value::Object(_)) => w.message(21, |a| a.message(1, |x| schema(x, sub))),
        _ => {}
    }
    match &s["type"] {
        // TypeItem { repeated string value = 1 }
        Value::String(t) => w.message(22, |ti| ti.strings(1, [t.as_str()])),
        Value::Array(ts) => w.message(22, |ti| ti.strings(1, ts.iter().filter_map(Value::as_str))),
        _ => {}
    }
    if let Some(items) = s.get("items") {
        // ItemsItem { repeated Schema schema = 1 }
        w.message(23, |ii| match items {
            Value::Array(list) => list.iter().for_each(|i| ii.message(1, |x| schema(x, i))),
            one => ii.message(1, |x| schema(x, one)),
        });
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        w.message(24, |x| schema(x, sub));
    }
    if let Some(props) = s["properties"].as_object() {
        // Properties { repeated NamedSchema additional_properties = 1 }
        w.message(25, |p| {
            for (name, sub) in props {
                p.message(1, |n| named_schema(n, name, sub));
            }
        });
    }
    w.bool(27, s["readOnly"].as_bool().unwrap_or_default());
    for (k, v) in s.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            // NamedAny { name = 1; Any value = 2 }
            w.message(31, |n| {
                n.string(1, k);
                n.message(2, |a| any(a, v));
            });
        }
    }
}

/// gnostic `Any { string yaml = 2 }`: the value as YAML text, as gnostic itself stores it.
fn any(w: &mut Writer, v: &Value) {
    w.string(2, &yaml(v));
}

/// YAML for vendor extension values. Lists of flat maps (the group-version-kind list) are
/// written in block style like gnostic's; anything else as JSON, which YAML parsers accept.
pub fn yaml(v: &Value) -> String {
    let flat = |o: &Value| {
        o.as_object()
            .is_some_and(|m| !m.is_empty() && m.values().all(|x| !x.is_object() && !x.is_array()))
    };
    match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(flat) => {
            let mut out = String::new();
            for item in items {
                for (i, (k, x)) in item.as_object().expect("checked").iter().enumerate() {
                    out.push_str(if i == 0 { "- " } else { "  " });
                    out.push_str(&format!("{k}: {x}\n"));
                }
            }
            out
        }
        other => format!("{other}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_use_seven_bits_per_byte_low_first() {
        let mut w = Writer::default();
        w.int64(1, 300);
        assert_eq!(w.into_bytes(), [0x08, 0xac, 0x02]);
    }

    #[test]
    fn strings_and_nested_messages_are_length_prefixed() {
        let mut w = Writer::default();
        w.string(1, "2.0");
        w.message(2, |i| i.string(1, "K"));
        assert_eq!(
            w.into_bytes(),
            [0x0a, 3, b'2', b'.', b'0', 0x12, 3, 0x0a, 1, b'K']
        );
    }

    #[test]
    fn proto3_defaults_are_left_out_but_empty_messages_are_kept() {
        let mut w = Writer::default();
        w.string(1, "");
        w.bool(2, false);
        w.int64(3, 0);
        w.double(4, 0.0);
        w.message(5, |_| {});
        assert_eq!(w.into_bytes(), [0x2a, 0]);
    }

    #[test]
    fn doubles_are_fixed64_little_endian() {
        let mut w = Writer::default();
        w.double(7, 1.5);
        let mut want = vec![(7 << 3) | 1];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(w.into_bytes(), want);
    }

    #[test]
    fn a_schema_encodes_ref_type_properties_and_extensions() {
        let mut w = Writer::default();
        schema(
            &mut w,
            &json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/X"}},
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]}),
        );
        let b = w.into_bytes();
        // type (22) = TypeItem{value: "object"}: key 22<<3|2 = 0xb2 0x01
        let type_item = [0xb2, 0x01, 8, 0x0a, 6, b'o', b'b', b'j', b'e', b'c', b't'];
        assert!(b.windows(type_item.len()).any(|x| x == type_item), "{b:?}");
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("#/definitions/X"));
        assert!(text.contains("x-kubernetes-group-version-kind"));
        assert!(text.contains("- group: \"\"\n  kind: \"Pod\"\n  version: \"v1\"\n"));
    }

    #[test]
    fn additional_properties_false_is_the_boolean_branch() {
        let mut w = Writer::default();
        schema(&mut w, &json!({"additionalProperties": false}));
        // field 21, LEN (0xaa 0x01), length 2, field 2 varint 0
        assert_eq!(w.into_bytes(), [0xaa, 0x01, 2, 0x10, 0]);
    }
}
