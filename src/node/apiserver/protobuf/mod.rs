//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) decoded to JSON values.
//!
//! kubectl's typed commands (`create namespace`, `create deployment`, `run`, ...) send protobuf
//! and never fall back to JSON, so the API server turns such a body into the very
//! `serde_json::Value` the JSON path would have produced, and everything after stays JSON
//! (responses too: client-go decodes a response by its Content-Type).
//!
//! A body is the magic `k8s\0` then a `runtime.Unknown`: {1 typeMeta {1 apiVersion, 2 kind},
//! 2 raw, 3 contentEncoding, 4 contentType}; `raw` is the typed message, decoded with the table
//! in `schema.txt`.

pub mod schema;
pub mod wire;

use base64::Engine;
use serde_json::{Map, Number, Value};

use schema::{Field, Message, Scalar, Schema, Type};
use wire::{Reader, WireType};

/// Every Kubernetes protobuf body starts with these four bytes.
pub const MAGIC: &[u8] = b"k8s\0";
/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// Nesting bound, so a hostile body cannot exhaust the stack through embedded objects.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the body does not start with the Kubernetes protobuf magic \"k8s\\0\"")]
    NoMagic,
    #[error("the body ends in the middle of a field")]
    Truncated,
    #[error("a varint is longer than 10 bytes")]
    VarintTooLong,
    #[error("field number {0} is out of range")]
    BadFieldNumber(u64),
    #[error("wire type {0} is not supported (Kubernetes never uses groups)")]
    UnsupportedWireType(u64),
    #[error("field {field} of {message} has wire type {found:?}, which its type cannot have")]
    WireType {
        message: &'static str,
        field: &'static str,
        found: WireType,
    },
    #[error("field {field} of {message} is not valid UTF-8")]
    Utf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("the runtime.Unknown envelope names no apiVersion and kind")]
    NoTypeMeta,
    #[error(
        "{api_version} {kind} cannot be decoded from protobuf by this server; send it as JSON instead"
    )]
    UnknownKind { api_version: String, kind: String },
    #[error("content encoding {0:?} is not supported; send the object unencoded")]
    ContentEncoding(String),
    #[error("field {field} of {message} holds a timestamp out of range")]
    BadTime {
        message: &'static str,
        field: &'static str,
    },
    #[error("field {field} of {message} embeds an object that is neither JSON nor protobuf")]
    EmbeddedObject {
        message: &'static str,
        field: &'static str,
    },
    #[error("objects nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the protobuf table has no message {0}")]
    MissingMessage(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decode a protobuf request body into the object's JSON form, `apiVersion` and `kind` included.
pub fn decode(body: &[u8]) -> Result<Value> {
    decode_at(body, 0)
}

fn decode_at(body: &[u8], depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep);
    }
    let rest = body.strip_prefix(MAGIC).ok_or(Error::NoMagic)?;
    let unknown = Unknown::parse(rest)?;
    if !unknown.content_encoding.is_empty() {
        return Err(Error::ContentEncoding(unknown.content_encoding));
    }
    if unknown.api_version.is_empty() || unknown.kind.is_empty() {
        return Err(Error::NoTypeMeta);
    }
    let schema = Schema::get();
    let message = schema
        .kind(&unknown.api_version, &unknown.kind)
        .ok_or_else(|| Error::UnknownKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        })?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(unknown.api_version));
    obj.insert("kind".into(), Value::String(unknown.kind));
    Decoder { schema }.message(message, unknown.raw, &mut obj, depth + 1)?;
    Ok(Value::Object(obj))
}

/// The `runtime.Unknown` envelope around every typed message.
#[derive(Default)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

const UNKNOWN: &str = "runtime.Unknown";
const TYPE_META: &str = "runtime.TypeMeta";

impl<'a> Unknown<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut u = Unknown::default();
        let mut r = Reader::new(bytes);
        while let Some((number, wire)) = r.key()? {
            match number {
                1 => {
                    let mut tm = Reader::new(len(&mut r, wire, UNKNOWN, "typeMeta")?);
                    while let Some((number, wire)) = tm.key()? {
                        match number {
                            1 => u.api_version = string(&mut tm, wire, TYPE_META, "apiVersion")?,
                            2 => u.kind = string(&mut tm, wire, TYPE_META, "kind")?,
                            _ => tm.skip(wire)?,
                        }
                    }
                }
                2 => u.raw = len(&mut r, wire, UNKNOWN, "raw")?,
                3 => u.content_encoding = string(&mut r, wire, UNKNOWN, "contentEncoding")?,
                _ => r.skip(wire)?,
            }
        }
        Ok(u)
    }
}

fn len<'a>(
    r: &mut Reader<'a>,
    wire: WireType,
    message: &'static str,
    field: &'static str,
) -> Result<&'a [u8]> {
    match wire {
        WireType::Len => r.bytes(),
        found => Err(Error::WireType {
            message,
            field,
            found,
        }),
    }
}

fn string(
    r: &mut Reader<'_>,
    wire: WireType,
    message: &'static str,
    field: &'static str,
) -> Result<String> {
    let bytes = len(r, wire, message, field)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::Utf8 { message, field })
}

fn varint(
    r: &mut Reader<'_>,
    wire: WireType,
    message: &'static str,
    field: &'static str,
) -> Result<u64> {
    match wire {
        WireType::Varint => r.varint(),
        found => Err(Error::WireType {
            message,
            field,
            found,
        }),
    }
}

/// Messages whose Go types marshal to JSON as something other than an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// meta/v1 Time {1 seconds, 2 nanos}: RFC 3339 to the second.
    Time,
    /// meta/v1 MicroTime: RFC 3339 with microseconds.
    MicroTime,
    /// meta/v1 Duration {1 nanoseconds}: Go's `1h2m3s` form.
    Duration,
    /// util/intstr IntOrString {1 type, 2 intVal, 3 strVal}: a number or a string.
    IntOrString,
    /// api/resource Quantity {1 string}: the string.
    Quantity,
    /// runtime RawExtension and meta/v1 FieldsV1 {1 raw}: the embedded JSON (or protobuf object).
    RawJson,
}

impl Special {
    pub(crate) fn of(name: &str) -> Option<Self> {
        Some(match name {
            "meta.v1.Time" => Self::Time,
            "meta.v1.MicroTime" => Self::MicroTime,
            "meta.v1.Duration" => Self::Duration,
            "intstr.IntOrString" => Self::IntOrString,
            "resource.Quantity" => Self::Quantity,
            "runtime.RawExtension" | "meta.v1.FieldsV1" => Self::RawJson,
            _ => return None,
        })
    }
}

struct Decoder<'s> {
    schema: &'s Schema,
}

impl Decoder<'_> {
    /// Decode `bytes` as `message` into `out`; repeated occurrences of a message merge, as
    /// protobuf requires.
    fn message(
        &self,
        message: &Message,
        bytes: &[u8],
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let mut r = Reader::new(bytes);
        while let Some((number, wire)) = r.key()? {
            match message.field(number) {
                Some(field) => self.field(message, field, wire, &mut r, out, depth)?,
                None => r.skip(wire)?,
            }
        }
        Ok(())
    }

    fn field(
        &self,
        message: &Message,
        field: &Field,
        wire: WireType,
        r: &mut Reader<'_>,
        out: &mut Map<String, Value>,
        depth: usize,
    ) -> Result<()> {
        let wrong = |found| Error::WireType {
            message: message.name,
            field: field.json,
            found,
        };
        match &field.ty {
            Type::Map(key, value) => {
                let entry = len(r, wire, message.name, field.json)?;
                let (k, v) = self.map_entry(message, field, *key, value, entry, depth)?;
                object_at(out, field.json).insert(k, v);
            }
            // Repeated numbers may come packed into one length-delimited value.
            Type::Scalar(scalar)
                if field.repeated
                    && wire == WireType::Len
                    && !matches!(scalar, Scalar::String | Scalar::Bytes) =>
            {
                let mut packed = Reader::new(r.bytes()?);
                let each = match scalar {
                    Scalar::Double => WireType::Fixed64,
                    Scalar::Float => WireType::Fixed32,
                    _ => WireType::Varint,
                };
                while !packed.is_empty() {
                    let v = self.scalar(message, field, *scalar, each, &mut packed)?;
                    array_at(out, field.json).push(v);
                }
            }
            Type::Scalar(scalar) => {
                let v = self.scalar(message, field, *scalar, wire, r)?;
                if field.repeated {
                    array_at(out, field.json).push(v);
                } else if field.pointer || !is_zero(&v) {
                    // Go's non-pointer fields are always on the wire; their zero values are
                    // what `omitempty` leaves out of JSON.
                    out.insert(field.json.to_string(), v);
                }
            }
            Type::Message(name) => {
                let bytes = match wire {
                    WireType::Len => r.bytes()?,
                    found => return Err(wrong(found)),
                };
                if field.inline {
                    let sub = self.lookup(name)?;
                    return self.message(sub, bytes, out, depth + 1);
                }
                if !field.repeated && Special::of(name).is_none() && !self.lookup(name)?.list {
                    let slot = out
                        .entry(field.json)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    let Value::Object(obj) = slot else {
                        unreachable!("slot was just made an object")
                    };
                    return self.message(self.lookup(name)?, bytes, obj, depth + 1);
                }
                let Some(v) = self.value(message, field, name, bytes, depth)? else {
                    return Ok(());
                };
                if field.repeated {
                    array_at(out, field.json).push(v);
                } else {
                    out.insert(field.json.to_string(), v);
                }
            }
        }
        Ok(())
    }

    fn lookup(&self, name: &'static str) -> Result<&Message> {
        self.schema.message(name).ok_or(Error::MissingMessage(name))
    }

    /// A whole message as one JSON value; `None` for a zero timestamp, which Go leaves out.
    fn value(
        &self,
        message: &Message,
        field: &Field,
        name: &'static str,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Option<Value>> {
        if let Some(special) = Special::of(name) {
            return self.special(message, field, special, bytes, depth);
        }
        let sub = self.lookup(name)?;
        let mut obj = Map::new();
        self.message(sub, bytes, &mut obj, depth + 1)?;
        if sub.list {
            return Ok(Some(
                obj.remove(sub.fields[0].json)
                    .unwrap_or(Value::Array(vec![])),
            ));
        }
        Ok(Some(Value::Object(obj)))
    }

    fn map_entry(
        &self,
        message: &Message,
        field: &Field,
        key: Scalar,
        value: &Type,
        entry: &[u8],
        depth: usize,
    ) -> Result<(String, Value)> {
        let mut k = String::new();
        let mut v = None;
        let mut r = Reader::new(entry);
        while let Some((number, wire)) = r.key()? {
            match (number, value) {
                (1, _) => {
                    k = match self.scalar(message, field, key, wire, &mut r)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }
                }
                (2, Type::Scalar(s)) => v = Some(self.scalar(message, field, *s, wire, &mut r)?),
                (2, Type::Message(name)) => {
                    let bytes = len(&mut r, wire, message.name, field.json)?;
                    v = self.value(message, field, name, bytes, depth)?;
                }
                _ => r.skip(wire)?,
            }
        }
        let v = v.unwrap_or_else(|| match value {
            Type::Scalar(Scalar::String | Scalar::Bytes) => Value::String(String::new()),
            Type::Scalar(Scalar::Bool) => Value::Bool(false),
            Type::Scalar(_) => Value::from(0),
            Type::Message(name) if Special::of(name) == Some(Special::Quantity) => {
                Value::String("0".into())
            }
            _ => Value::Null,
        });
        Ok((k, v))
    }

    fn scalar(
        &self,
        message: &Message,
        field: &Field,
        scalar: Scalar,
        wire: WireType,
        r: &mut Reader<'_>,
    ) -> Result<Value> {
        let (m, f) = (message.name, field.json);
        Ok(match scalar {
            Scalar::String => Value::String(string(r, wire, m, f)?),
            Scalar::Bytes => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(len(r, wire, m, f)?))
            }
            Scalar::Bool => Value::Bool(varint(r, wire, m, f)? != 0),
            // int32 is sign-extended to 64 bits on the wire; truncating recovers it.
            Scalar::Int32 => Value::from(varint(r, wire, m, f)? as i32),
            Scalar::Int64 => Value::from(varint(r, wire, m, f)? as i64),
            Scalar::Uint32 => Value::from(varint(r, wire, m, f)? as u32),
            Scalar::Uint64 => Value::from(varint(r, wire, m, f)?),
            Scalar::Double => match wire {
                WireType::Fixed64 => float(f64::from_bits(r.fixed64()?)),
                found => {
                    return Err(Error::WireType {
                        message: m,
                        field: f,
                        found,
                    });
                }
            },
            Scalar::Float => match wire {
                WireType::Fixed32 => float(f64::from(f32::from_bits(r.fixed32()?))),
                found => {
                    return Err(Error::WireType {
                        message: m,
                        field: f,
                        found,
                    });
                }
            },
        })
    }

    fn special(
        &self,
        message: &Message,
        field: &Field,
        special: Special,
        bytes: &[u8],
        depth: usize,
    ) -> Result<Option<Value>> {
        let (m, f) = (message.name, field.json);
        let mut r = Reader::new(bytes);
        let (mut n1, mut n2, mut s3) = (0u64, 0u64, String::new());
        let mut raw: &[u8] = &[];
        while let Some((number, wire)) = r.key()? {
            match (special, number) {
                (Special::Quantity, 1) => s3 = string(&mut r, wire, m, f)?,
                (Special::RawJson, 1) => raw = len(&mut r, wire, m, f)?,
                (Special::IntOrString, 3) => s3 = string(&mut r, wire, m, f)?,
                (Special::Quantity | Special::RawJson, _) => r.skip(wire)?,
                (_, 1) => n1 = varint(&mut r, wire, m, f)?,
                (_, 2) => n2 = varint(&mut r, wire, m, f)?,
                _ => r.skip(wire)?,
            }
        }
        Ok(Some(match special {
            Special::Time | Special::MicroTime => {
                let (seconds, nanos) = (n1 as i64, n2 as i32);
                if seconds == 0 && nanos == 0 {
                    return Ok(None);
                }
                let bad = || Error::BadTime {
                    message: m,
                    field: f,
                };
                let ts = jiff::Timestamp::new(seconds, nanos).map_err(|_| bad())?;
                let whole = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
                Value::String(if special == Special::Time {
                    format!("{whole}Z")
                } else {
                    format!("{whole}.{:06}Z", ts.subsec_nanosecond() / 1000)
                })
            }
            Special::Duration => Value::String(go_duration(n1 as i64)),
            Special::IntOrString if n1 == 1 => Value::String(s3),
            Special::IntOrString => Value::from(n2 as i32),
            Special::Quantity => Value::String(s3),
            Special::RawJson if raw.is_empty() => return Ok(None),
            Special::RawJson if raw.starts_with(MAGIC) => decode_at(raw, depth + 1)?,
            Special::RawJson => serde_json::from_slice(raw).map_err(|_| Error::EmbeddedObject {
                message: m,
                field: f,
            })?,
        }))
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn object_at<'m>(out: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let slot = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("slot was just made an object"),
    }
}

fn array_at<'m>(out: &'m mut Map<String, Value>, key: &str) -> &'m mut Vec<Value> {
    let slot = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(a) => a,
        _ => unreachable!("slot was just made an array"),
    }
}

/// Nanoseconds in Go's `time.Duration.String()` form: `1h0m0s`, `1m30s`, `1.5s`, `250ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    fn with_fraction(v: u64, unit: u64, digits: usize) -> String {
        let (whole, frac) = (v / unit, v % unit);
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:0digits$}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
    if ns == 0 {
        return "0s".into();
    }
    let u = ns.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", with_fraction(u, 1_000, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", with_fraction(u, 1_000_000, 6))
    } else {
        let (h, m) = (u / 3_600_000_000_000, u / 60_000_000_000 % 60);
        let s = format!("{}s", with_fraction(u % 60_000_000_000, 1_000_000_000, 9));
        match (h, m) {
            (0, 0) => s,
            (0, m) => format!("{m}m{s}"),
            (h, m) => format!("{h}h{m}m{s}"),
        }
    };
    if ns < 0 { format!("-{body}") } else { body }
}

#[cfg(test)]
mod tests;
