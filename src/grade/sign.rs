//! Signing results: a canonical JSON form (sorted keys, no whitespace) under HMAC-SHA256 with
//! the class key, so an edited result file no longer verifies.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Error, Result};

/// The one algorithm results are signed with.
pub const ALGORITHM: &str = "HMAC-SHA256";
/// A class key shorter than this is guessable; `head -c 32 /dev/urandom | base64` is plenty.
pub const MIN_KEY_BYTES: usize = 16;
const BLOCK: usize = 64;

/// The class key: the key file's bytes without surrounding whitespace (so a trailing newline
/// written by an editor or `echo` does not change the key).
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id())
    }
}

impl Key {
    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key(bytes.trim_ascii().to_vec())
    }

    pub fn load(path: &Path) -> Result<Key> {
        let bytes = std::fs::read(path).map_err(|source| Error::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        let key = Key::from_bytes(&bytes);
        if key.0.len() < MIN_KEY_BYTES {
            return Err(Error::KeyShort {
                path: path.to_path_buf(),
                len: key.0.len(),
            });
        }
        Ok(key)
    }

    /// A short public name for the key, so a report can tell "signed with another key" from
    /// "edited" (the hash of a random key reveals nothing about it).
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"kindling class key id\0");
        h.update(&self.0);
        hex::encode(&h.finalize()[..6])
    }

    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, message)
    }
}

/// HMAC-SHA256 as RFC 2104 defines it: H((K ^ opad) || H((K ^ ipad) || m)), with keys longer
/// than a block hashed first. Written out to stay on the sha2 the crate already uses.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Compare MACs without an early exit, so timing does not reveal how much of one matched.
pub fn equal_mac(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The canonical form: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped
/// as serde_json escapes them, numbers as serde_json prints them. Independent of how the file
/// was indented or of the order its keys were written in.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("strings serialize"));
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("scalars serialize")),
    }
}

/// The field a result's signature lives in; everything else is signed.
pub const SIGNATURE_FIELD: &str = "signature";

/// The signature object stored in a result.
pub fn signature_for(unsigned: &Value, key: &Key) -> Value {
    let mac = key.mac(canonical(unsigned).as_bytes());
    serde_json::json!({
        "algorithm": ALGORITHM,
        "keyId": key.id(),
        "value": hex::encode(mac),
    })
}

/// Add a signature to a result (replacing any signature it had).
pub fn sign(result: &mut Value, key: &Key) {
    if let Value::Object(map) = result {
        map.remove(SIGNATURE_FIELD);
    }
    let sig = signature_for(result, key);
    if let Value::Object(map) = result {
        map.insert(SIGNATURE_FIELD.into(), sig);
    }
}

/// What checking a result's signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    Unsigned,
    /// Signed, but with another key (its key id differs from the class key's).
    OtherKey(String),
    /// Signed with the class key's id, but the content no longer matches: edited.
    Tampered,
    /// The signature field is there but is not a signature this version writes.
    Malformed(String),
}

pub fn verify(result: &Value, key: &Key) -> Verdict {
    let Value::Object(map) = result else {
        return Verdict::Malformed("the result is not a JSON object".into());
    };
    let Some(sig) = map.get(SIGNATURE_FIELD) else {
        return Verdict::Unsigned;
    };
    let algorithm = sig.get("algorithm").and_then(Value::as_str);
    if algorithm != Some(ALGORITHM) {
        return Verdict::Malformed(format!(
            "signature algorithm {algorithm:?} is not {ALGORITHM}"
        ));
    }
    let Some(value) = sig
        .get("value")
        .and_then(Value::as_str)
        .and_then(|v| hex::decode(v).ok())
    else {
        return Verdict::Malformed("signature value is not hex".into());
    };
    let mut unsigned = map.clone();
    unsigned.remove(SIGNATURE_FIELD);
    let want = key.mac(canonical(&Value::Object(unsigned)).as_bytes());
    if equal_mac(&want, &value) {
        return Verdict::Valid;
    }
    match sig.get("keyId").and_then(Value::as_str) {
        Some(id) if id != key.id() => Verdict::OtherKey(id.to_string()),
        _ => Verdict::Tampered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 4231 section 4: test cases 1-4, 6 and 7 (5 is a truncated MAC).
    #[test]
    fn hmac_matches_the_rfc_4231_test_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex::encode(hmac_sha256(&key, &data)), want);
        }
    }

    #[test]
    fn the_canonical_form_sorts_keys_and_drops_whitespace() {
        let a: Value = serde_json::from_str(
            r#"{ "b": [1, {"z": true, "a": null}], "a": "x\"y\u00e9", "c": {"k": -2.5} }"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&a),
            r#"{"a":"x\"yé","b":[1,{"a":null,"z":true}],"c":{"k":-2.5}}"#
        );
        // The same object written in another order and indentation is the same text.
        let b: Value = serde_json::from_str(
            "{\"c\":{\"k\":-2.5},\n  \"a\":\"x\\\"y\u{e9}\",\"b\":[1,{\"a\":null,\"z\":true}]}",
        )
        .unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }

    #[test]
    fn an_edited_result_no_longer_verifies() {
        let key = Key::from_bytes(b"a class key of enough length\n");
        let mut r = json!({"student": "ana", "score": 7, "steps": [{"id": "one", "score": 7}]});
        sign(&mut r, &key);
        assert_eq!(verify(&r, &key), Verdict::Valid);
        // Re-indenting or reordering keys keeps it valid: the canonical form is signed.
        let pretty: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&r).unwrap()).unwrap();
        assert_eq!(verify(&pretty, &key), Verdict::Valid);
        let mut edited = r.clone();
        edited["score"] = json!(10);
        assert_eq!(verify(&edited, &key), Verdict::Tampered);
        let mut edited = r.clone();
        edited["steps"][0]["score"] = json!(8);
        assert_eq!(verify(&edited, &key), Verdict::Tampered);
        let other = Key::from_bytes(b"somebody else's key, also long");
        assert!(matches!(verify(&r, &other), Verdict::OtherKey(_)));
        let mut unsigned = r.clone();
        unsigned.as_object_mut().unwrap().remove(SIGNATURE_FIELD);
        assert_eq!(verify(&unsigned, &key), Verdict::Unsigned);
        let mut bad = r.clone();
        bad[SIGNATURE_FIELD]["value"] = json!("zz");
        assert!(matches!(verify(&bad, &key), Verdict::Malformed(_)));
    }

    #[test]
    fn keys_ignore_surrounding_whitespace_and_short_ones_are_refused() {
        assert_eq!(
            Key::from_bytes(b"  secret-secret-secret\n").id(),
            Key::from_bytes(b"secret-secret-secret").id()
        );
        let dir = std::env::temp_dir().join(format!("kindling-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short.key");
        std::fs::write(&short, "tiny\n").unwrap();
        let e = Key::load(&short).unwrap_err().to_string();
        assert!(e.contains("short.key") && e.contains("/dev/urandom"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
