//! Unit tests: bodies hand-encoded with a tiny protobuf encoder, decoded and compared as JSON.

use serde_json::json;

use super::*;

/// A message under construction, field by field, as gogo-protobuf would write it.
#[derive(Default, Clone)]
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Self::default()
    }
    fn varint_raw(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint_raw(u64::from(field) << 3 | u64::from(wire));
    }
    fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, 0);
        self.varint_raw(v as u64);
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.key(field, 2);
        self.varint_raw(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Enc) -> Self {
        self.bytes(field, &m.0)
    }
    fn entry(self, field: u32, k: &str, v: &str) -> Self {
        self.msg(field, Enc::new().str(1, k).str(2, v))
    }
}

/// The full request body: magic, then runtime.Unknown around the typed message.
fn body(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
    let unknown = Enc::new()
        .msg(1, Enc::new().str(1, api_version).str(2, kind))
        .msg(2, raw)
        .str(4, CONTENT_TYPE);
    [MAGIC, &unknown.0].concat()
}

/// ObjectMeta the way Go writes it: every non-pointer field, empty or not.
fn meta(name: &str) -> Enc {
    Enc::new()
        .str(1, name)
        .str(2, "")
        .str(3, "")
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Enc::new().int(1, 0).int(2, 0))
}

#[test]
fn namespace_decodes_to_the_json_kubectl_would_have_sent() {
    let raw = Enc::new()
        .msg(1, meta("lab").entry(11, "team", "blue"))
        .msg(2, Enc::new())
        .msg(3, Enc::new().str(1, ""));
    let v = decode(&body("v1", "Namespace", raw)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "lab", "labels": {"team": "blue"}},
               "spec": {}, "status": {}})
    );
}

#[test]
fn configmap_and_secret_maps_decode_with_bytes_in_base64() {
    let raw = Enc::new()
        .msg(1, meta("settings"))
        .entry(2, "color", "blue")
        .entry(2, "size", "")
        .msg(3, Enc::new().str(1, "bin").bytes(2, &[0, 1, 2]));
    let v = decode(&body("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(v["data"], json!({"color": "blue", "size": ""}));
    assert_eq!(v["binaryData"], json!({"bin": "AAEC"}));

    let raw = Enc::new()
        .msg(1, meta("pw"))
        .msg(2, Enc::new().str(1, "password").bytes(2, b"hunter2"))
        .str(3, "Opaque");
    let v = decode(&body("v1", "Secret", raw)).unwrap();
    assert_eq!(v["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(v["type"], "Opaque");
}

#[test]
fn deployment_keeps_pointer_zeros_and_drops_plain_zeros() {
    let container = Enc::new()
        .str(1, "nginx")
        .str(2, "nginx:1.27")
        .str(3, "sleep")
        .str(4, "3600")
        .msg(6, Enc::new().str(1, "http").int(3, 80).str(4, "TCP"))
        .msg(
            8,
            Enc::new().msg(
                1,
                Enc::new().str(1, "cpu").msg(2, Enc::new().str(1, "500m")),
            ),
        )
        .str(9, "");
    let template = Enc::new()
        .msg(1, meta("").entry(11, "app", "web"))
        .msg(2, Enc::new().msg(2, container).int(11, 0));
    let spec = Enc::new()
        .int(1, 0)
        .msg(2, Enc::new().entry(1, "app", "web"))
        .msg(3, template)
        .msg(
            4,
            Enc::new().msg(
                2,
                Enc::new()
                    .msg(1, Enc::new().int(1, 1).str(3, "25%"))
                    .msg(2, Enc::new().int(1, 0).int(2, 1)),
            ),
        )
        .int(5, 0);
    let raw = Enc::new().msg(1, meta("web")).msg(2, spec);
    let v = decode(&body("apps/v1", "Deployment", raw)).unwrap();
    let spec = &v["spec"];
    assert_eq!(spec["replicas"], 0, "a set *int32 of 0 is kept: {v}");
    assert!(spec.get("minReadySeconds").is_none(), "{v}");
    assert_eq!(spec["selector"], json!({"matchLabels": {"app": "web"}}));
    assert_eq!(
        spec["strategy"]["rollingUpdate"],
        json!({"maxUnavailable": "25%", "maxSurge": 1})
    );
    let c = &spec["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:1.27");
    assert_eq!(c["command"], json!(["sleep"]));
    assert_eq!(c["args"], json!(["3600"]));
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(c["resources"], json!({"limits": {"cpu": "500m"}}));
    assert!(c.get("workingDir").is_none());
    assert!(spec["template"]["spec"].get("hostNetwork").is_none());
    assert_eq!(
        spec["template"]["metadata"],
        json!({"labels": {"app": "web"}})
    );
}

#[test]
fn timestamps_durations_and_inlined_structs_take_their_json_forms() {
    // A pod with a deletion timestamp, a probe (ProbeHandler is inlined) and a volume
    // (VolumeSource is inlined), a secretKeyRef (LocalObjectReference is inlined).
    let pod_meta = meta("p").msg(9, Enc::new().int(1, 1_700_000_000).int(2, 5));
    let probe = Enc::new()
        .msg(
            1,
            Enc::new().msg(
                2,
                Enc::new()
                    .str(1, "/healthz")
                    .msg(2, Enc::new().int(1, 0).int(2, 8080)),
            ),
        )
        .int(2, 3);
    let env = Enc::new().str(1, "PW").msg(
        3,
        Enc::new().msg(
            4,
            Enc::new().msg(1, Enc::new().str(1, "creds")).str(2, "pw"),
        ),
    );
    let container = Enc::new().str(1, "c").msg(7, env).msg(10, probe);
    let volume = Enc::new()
        .str(1, "data")
        .msg(2, Enc::new().msg(2, Enc::new().str(1, "Memory")));
    let raw = Enc::new()
        .msg(1, pod_meta)
        .msg(2, Enc::new().msg(1, volume).msg(2, container).int(4, 0));
    let v = decode(&body("v1", "Pod", raw)).unwrap();
    assert_eq!(v["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
    assert!(v["metadata"].get("creationTimestamp").is_none());
    assert_eq!(
        v["spec"]["terminationGracePeriodSeconds"], 0,
        "a set *int64 of 0 is kept"
    );
    assert_eq!(
        v["spec"]["volumes"],
        json!([{"name": "data", "emptyDir": {"medium": "Memory"}}])
    );
    let c = &v["spec"]["containers"][0];
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 3})
    );
    assert_eq!(
        c["env"],
        json!([{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}])
    );

    let lease = Enc::new().msg(1, meta("l")).msg(
        2,
        Enc::new()
            .str(1, "node-1")
            .int(2, 40)
            .msg(3, Enc::new().int(1, 1_700_000_000).int(2, 123_456_789)),
    );
    let v = decode(&body("coordination.k8s.io/v1", "Lease", lease)).unwrap();
    assert_eq!(v["spec"]["acquireTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["spec"]["leaseDurationSeconds"], 40);

    let job = Enc::new()
        .msg(1, meta("j"))
        .msg(2, Enc::new().int(1, -1).int(7, 6).msg(6, Enc::new()));
    let v = decode(&body("batch/v1", "Job", job)).unwrap();
    assert_eq!(v["spec"]["parallelism"], -1, "negative int32s survive");
    assert_eq!(v["spec"]["backoffLimit"], 6);
}

#[test]
fn go_durations_read_like_go_prints_them() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(90_000_000_000), "1m30s");
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(250_000_000), "250ms");
    assert_eq!(go_duration(1_500), "1.5µs");
    assert_eq!(go_duration(-7), "-7ns");
}

#[test]
fn unknown_fields_are_skipped() {
    let raw = Enc::new()
        .msg(1, meta("x").int(99, 7).str(98, "future"))
        .int(77, 1)
        .msg(2, Enc::new().str(1, "kubernetes"));
    let v = decode(&body("v1", "Namespace", raw)).unwrap();
    assert_eq!(v["metadata"], json!({"name": "x"}));
    assert_eq!(v["spec"], json!({"finalizers": ["kubernetes"]}));
}

#[test]
fn bad_bodies_are_errors_never_panics() {
    let good = body(
        "v1",
        "ConfigMap",
        Enc::new().msg(1, meta("c")).entry(2, "k", "v"),
    );
    assert!(matches!(decode(b"{\"kind\":1}"), Err(Error::NoMagic)));
    assert!(matches!(decode(b""), Err(Error::NoMagic)));
    // Every truncation of a valid body fails cleanly.
    for cut in MAGIC.len()..good.len() {
        let _ = decode(&good[..cut]);
    }
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(Error::Truncated)
    ));
    // Corrupting any single byte gives an error or some object, not a panic.
    for i in 0..good.len() {
        for b in [0x00, 0x07, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] = b;
            let _ = decode(&bad);
        }
    }
    // Pseudo-random garbage after the magic.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in 0..400 {
        let garbage: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = decode(&[MAGIC, &garbage].concat());
    }
    let err = decode(&body("v1", "Frobnicator", Enc::new())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "v1 Frobnicator cannot be decoded from protobuf by this server; send it as JSON instead"
    );
    // A string where a message belongs.
    let err = decode(&body("v1", "Namespace", Enc::new().int(1, 5))).unwrap_err();
    assert!(
        err.to_string()
            .contains("field metadata of core.v1.Namespace"),
        "{err}"
    );
    assert!(matches!(
        decode(&body("", "", Enc::new())),
        Err(Error::NoTypeMeta)
    ));
}

#[test]
fn embedded_objects_nest_only_so_deep() {
    // ControllerRevision.data is a RawExtension, which may hold another protobuf object.
    let mut inner = body("v1", "ConfigMap", Enc::new().msg(1, meta("leaf")));
    for _ in 0..(MAX_DEPTH + 2) {
        inner = body(
            "apps/v1",
            "ControllerRevision",
            Enc::new().msg(2, Enc::new().bytes(1, &inner)),
        );
    }
    assert!(matches!(decode(&inner), Err(Error::TooDeep)));
    let one = body(
        "apps/v1",
        "ControllerRevision",
        Enc::new()
            .msg(2, Enc::new().bytes(1, br#"{"a":1}"#))
            .int(3, 2),
    );
    assert_eq!(
        decode(&one).unwrap(),
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "data": {"a": 1}, "revision": 2})
    );
}
