//! The table of Kubernetes protobuf messages (`schema.txt`): field numbers, JSON names and types.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The table, extracted from upstream's `generated.proto` files by `extract_schema.py`.
const SCHEMA_TEXT: &str = include_str!("schema.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Double,
    Float,
}

impl Scalar {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "bytes" => Self::Bytes,
            "bool" => Self::Bool,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "uint32" => Self::Uint32,
            "uint64" => Self::Uint64,
            "double" => Self::Double,
            "float" => Self::Float,
            _ => return None,
        })
    }
}

/// What a field holds: a scalar, another message (by name), or a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Scalar(Scalar),
    Message(&'static str),
    Map(Scalar, Box<Type>),
}

impl Type {
    fn parse(s: &'static str) -> Self {
        if let Some(kv) = s.strip_prefix("map:") {
            let (k, v) = kv.split_once(':').unwrap_or((kv, "string"));
            let key = Scalar::parse(k).unwrap_or(Scalar::String);
            return Self::Map(key, Box::new(Self::parse(v)));
        }
        match Scalar::parse(s) {
            Some(scalar) => Self::Scalar(scalar),
            None => Self::Message(s),
        }
    }
}

#[derive(Debug)]
pub struct Field {
    pub number: u32,
    pub json: &'static str,
    pub ty: Type,
    pub repeated: bool,
    /// A Go pointer: present on the wire only when set, so even a zero value is kept.
    pub pointer: bool,
    /// A Go embedded struct whose fields JSON puts beside the parent's (`json:",inline"`).
    pub inline: bool,
}

#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    /// A top-level object that may be the body of a request.
    pub kind: bool,
    /// A Go slice type wrapped in a message: its JSON is the list in field 1.
    pub list: bool,
    pub fields: Vec<Field>,
}

impl Message {
    pub fn field(&self, number: u32) -> Option<&Field> {
        self.fields.iter().find(|f| f.number == number)
    }
}

#[derive(Debug, Default)]
pub struct Schema {
    messages: HashMap<&'static str, Message>,
    /// apiVersion (`apps/v1`) → proto package as named in the table (`apps.v1`).
    packages: HashMap<&'static str, &'static str>,
}

impl Schema {
    /// The embedded table, parsed once.
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse(SCHEMA_TEXT).expect("the embedded schema.txt parses"))
    }

    pub fn message(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// The message of a top-level object, e.g. `apps/v1` `Deployment` → `apps.v1.Deployment`.
    /// Options types (`DeleteOptions`) live in meta/v1 whatever group a request is sent to.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&Message> {
        let in_package = |package: &str| {
            self.messages
                .get(format!("{package}.{kind}").as_str())
                .filter(|m| m.kind)
        };
        self.packages
            .get(api_version)
            .and_then(|p| in_package(p))
            .or_else(|| in_package("meta.v1"))
    }

    /// Parse the table; a malformed line is reported with its number.
    pub fn parse(text: &'static str) -> Result<Schema, String> {
        let mut schema = Schema::default();
        let mut current: Option<Message> = None;
        for (i, line) in text.lines().enumerate() {
            let words: Vec<&'static str> = line.split_whitespace().collect();
            let bad = || format!("schema.txt line {}: cannot parse {line:?}", i + 1);
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["package", package, api_version] => {
                    schema.packages.insert(api_version, package);
                }
                ["message", name, flags @ ..] => {
                    if let Some(m) = current.take() {
                        schema.messages.insert(m.name, m);
                    }
                    current = Some(Message {
                        name,
                        kind: flags.contains(&"kind"),
                        list: flags.contains(&"list"),
                        fields: Vec::new(),
                    });
                }
                [number, json, ty, flags @ ..] => {
                    let message = current.as_mut().ok_or_else(bad)?;
                    message.fields.push(Field {
                        number: number.parse().map_err(|_| bad())?,
                        json,
                        ty: Type::parse(ty),
                        repeated: flags.contains(&"repeated"),
                        pointer: flags.contains(&"pointer"),
                        inline: flags.contains(&"inline"),
                    });
                }
                _ => return Err(bad()),
            }
        }
        if let Some(m) = current.take() {
            schema.messages.insert(m.name, m);
        }
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_parses_and_every_referenced_message_is_known_or_special() {
        let schema = Schema::get();
        let mut referenced = Vec::new();
        for m in schema.messages.values() {
            for f in &m.fields {
                match &f.ty {
                    Type::Message(name) => referenced.push(*name),
                    Type::Map(_, v) => {
                        if let Type::Message(name) = **v {
                            referenced.push(name)
                        }
                    }
                    Type::Scalar(_) => {}
                }
            }
        }
        for name in referenced {
            assert!(
                schema.message(name).is_some() || super::super::Special::of(name).is_some(),
                "{name} is referenced but not in schema.txt"
            );
        }
    }

    #[test]
    fn kinds_are_found_by_api_version_and_options_in_meta() {
        let schema = Schema::get();
        let d = schema.kind("apps/v1", "Deployment").unwrap();
        assert_eq!(d.name, "apps.v1.Deployment");
        assert_eq!(schema.kind("v1", "Pod").unwrap().name, "core.v1.Pod");
        assert_eq!(
            schema.kind("v1", "DeleteOptions").unwrap().name,
            "meta.v1.DeleteOptions"
        );
        assert!(schema.kind("v1", "PodSpec").is_none());
        assert!(schema.kind("nonsense/v9", "Pod").is_none());
        let replicas = schema
            .message("apps.v1.DeploymentSpec")
            .unwrap()
            .field(1)
            .unwrap();
        assert_eq!((replicas.json, replicas.pointer), ("replicas", true));
    }
}
