//! Tier-2 tests of what clients send: field validation (Strict, Warn, Ignore) with kubectl and
//! raw requests, and a seeded fuzz of the decode and patch paths that must never break the server.

#[path = "common/api.rs"]
mod api;

use std::path::Path;

use api::ApiServer;
use serde_json::{Value, json};

const POD_WITH_UNKNOWN_FIELDS: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  foo: 1
  containers:
  - name: app
    image: registry.local/app:1
    bar: true
"#;

fn manifest(s: &ApiServer, name: &str) -> std::path::PathBuf {
    let path = s.dir.join(format!("{name}.yaml"));
    std::fs::write(&path, POD_WITH_UNKNOWN_FIELDS.replace("NAME", name)).unwrap();
    path
}

fn get(s: &ApiServer, kubectl: &Path, name: &str) -> Value {
    let (ok, out, err) = s.kubectl(kubectl, &["get", "pod", name, "-o", "json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// One request through kube-rs's client: status, `Warning` headers and body.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<String>, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        warnings,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn unknown_fields_are_refused_all_at_once_warned_about_or_dropped_as_asked() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    if let Some(kubectl) = api::kubectl_current() {
        // Strict (current kubectl's default): every unknown field in one error.
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &["create", "-f", manifest(&s, "strict").to_str().unwrap()],
        );
        assert!(!ok);
        assert!(
            err.contains(r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].bar", unknown field "spec.foo""#),
            "{err}"
        );
        // Warn: one warning per field, the object stored without them.
        let (ok, out, err) = s.kubectl(
            &kubectl,
            &[
                "create",
                "--validate=warn",
                "-f",
                manifest(&s, "warned").to_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        assert!(out.contains("pod/warned created"), "{out}");
        assert!(
            err.contains(r#"Warning: unknown field "spec.foo""#),
            "{err}"
        );
        assert!(
            err.contains(r#"Warning: unknown field "spec.containers[0].bar""#),
            "{err}"
        );
        let pod = get(&s, &kubectl, "warned");
        assert!(pod["spec"]["foo"].is_null() && pod["spec"]["containers"][0]["bar"].is_null());
        // Ignore: silently dropped.
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &[
                "create",
                "--validate=false",
                "-f",
                manifest(&s, "ignored").to_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        assert!(!err.contains("Warning"), "{err}");
        assert!(get(&s, &kubectl, "ignored")["spec"]["foo"].is_null());
    }
    if let Some(kubectl) = api::kubectl_120() {
        // kubectl 1.20 sends no fieldValidation: the server's default is Warn, which it prints.
        let (ok, _, err) = s.kubectl(
            &kubectl,
            &[
                "create",
                "--validate=false",
                "-f",
                manifest(&s, "old").to_str().unwrap(),
            ],
        );
        assert!(ok, "{err}");
        assert!(
            err.contains(r#"Warning: unknown field "spec.foo""#),
            "{err}"
        );
    }

    let client = s.client().await;
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"},"foo":1}"#;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, _, body) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(r#"ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"foo\", duplicate field \"data.a\""#),
        "{body}"
    );
    let (code, warnings, body) = send(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Warn"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        warnings,
        vec![
            r#"299 - "duplicate field \"data.a\"""#,
            r#"299 - "unknown field \"foo\"""#
        ]
    );
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stored["data"], json!({"a": "2"}));
    assert!(stored.get("foo").is_none());
    // A patch adding an unknown field is warned about too.
    let (code, warnings, _) = send(
        &client,
        "PATCH",
        &format!("{path}/dup"),
        "application/merge-patch+json",
        br#"{"data":{"b":"3"},"spec":{"x":1}}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(warnings, vec![r#"299 - "unknown field \"spec\"""#]);
}

fn server_log(s: &ApiServer) -> String {
    std::fs::read_to_string(s.dir.join("apiserver.err")).unwrap_or_default()
}

/// A tiny seeded PRNG (xorshift64*), so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A value a hostile or confused client might put anywhere.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(1.5e300),
        4 => json!(""),
        5 => json!("ünïcødé\u{0}\u{7f}"),
        6 => json!([]),
        7 => json!({}),
        8 => json!([{"name": null}, 3, "x"]),
        9 => json!({"$patch": "delete"}),
        10 => json!(true),
        _ => json!("x".repeat(rng.below(5000))),
    }
}

/// `v` with one node somewhere replaced by an odd value (or a key added or removed).
fn mutate_value(rng: &mut Rng, v: &mut Value, depth: usize) {
    let stop = depth > 6 || rng.below(4) == 0;
    match v {
        Value::Object(m) if !m.is_empty() && !stop => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(6) {
                0 => {
                    m.remove(&k);
                }
                1 => {
                    m.insert(format!("{k}x"), odd_value(rng));
                }
                _ => mutate_value(rng, m.get_mut(&k).unwrap(), depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && !stop => {
            let i = rng.below(a.len());
            mutate_value(rng, &mut a[i], depth + 1)
        }
        _ => *v = odd_value(rng),
    }
}

/// `b` with bytes flipped, cut, doubled or spliced.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        if b.is_empty() {
            b.push(b'{');
        }
        let i = rng.below(b.len());
        match rng.below(5) {
            0 => b[i] ^= 1 << rng.below(8),
            1 => b[i] = rng.next() as u8,
            2 => b.truncate(i),
            3 => {
                let end = (i + rng.below(16)).min(b.len());
                let chunk = b[i..end].to_vec();
                b.splice(i..i, chunk);
            }
            _ => {
                b.insert(i, *rng.pick(b"{}[]\":,-0e\\\n "));
            }
        }
    }
}

fn pb_bytes(field: u32, b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let varint = |mut v: u64, out: &mut Vec<u8>| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    varint(u64::from(field) << 3 | 2, &mut out);
    varint(b.len() as u64, &mut out);
    out.extend_from_slice(b);
    out
}

/// A valid protobuf Pod body as kubectl sends it, to be mangled.
fn protobuf_pod(name: &str) -> Vec<u8> {
    let meta = pb_bytes(1, name.as_bytes());
    let container = [pb_bytes(1, b"app"), pb_bytes(2, b"registry.local/app:1")].concat();
    let spec = pb_bytes(2, &container);
    let pod = [pb_bytes(1, &meta), pb_bytes(2, &spec)].concat();
    let type_meta = [pb_bytes(1, b"v1"), pb_bytes(2, b"Pod")].concat();
    let unknown = [
        pb_bytes(1, &type_meta),
        pb_bytes(2, &pod),
        pb_bytes(4, b"application/vnd.kubernetes.protobuf"),
    ]
    .concat();
    [b"k8s\0".as_slice(), &unknown].concat()
}

fn json_patch(rng: &mut Rng) -> Value {
    let paths = [
        "/metadata/labels/a",
        "/metadata/labels/~1x~0",
        "/spec/containers/0/image",
        "/spec/containers/-",
        "/spec/containers/99",
        "/spec/containers/0/env/-",
        "/spec/template/spec/containers/0",
        "/data/k",
        "/",
        "",
        "/metadata/name",
        "/spec/replicas",
        "/status",
        "/~2bad",
        "/spec/containers/01",
    ];
    let ops = ["add", "remove", "replace", "move", "copy", "test", "bogus"];
    let n = rng.below(4) + 1;
    let mut out = Vec::new();
    for _ in 0..n {
        let mut op = json!({"op": rng.pick(&ops), "path": rng.pick(&paths)});
        if rng.below(3) > 0 {
            op["value"] = odd_value(rng);
        }
        if rng.below(2) == 0 {
            op["from"] = json!(rng.pick(&paths));
        }
        out.push(op);
    }
    json!(out)
}

fn strategic_patch(rng: &mut Rng) -> Value {
    let mut patches = vec![
        json!({"spec": {"containers": [{"name": "app", "$patch": "delete"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "app"}],
            "containers": [{"name": "b", "image": "x"}]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"]}}),
        json!({"spec": {"$retainKeys": ["containers"], "containers": [{"name": "app"}]}}),
        json!({"spec": {"containers": {"$patch": "replace"}}}),
        json!({"$patch": "replace", "metadata": {"name": "other"}}),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "$patch": "merge"}]}]}}}}),
        json!({"data": {"k": null}, "metadata": {"labels": null}}),
        json!({"spec": {"replicas": "three", "selector": [1]}}),
    ];
    let i = rng.below(patches.len());
    let mut p = patches.swap_remove(i);
    if rng.below(2) == 0 {
        mutate_value(rng, &mut p, 0);
    }
    p
}

/// Mangled JSON, YAML, protobuf and patch bodies of every kind: the server answers each with
/// a 2xx or 4xx Status, never a 5xx, a dropped connection or a panic.
#[tokio::test]
async fn mangled_bodies_and_patches_never_break_the_server() {
    let Some(s) = ApiServer::start().await else {
        return;
    };
    let seed = std::env::var("KINDLING_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    let mut rng = Rng(seed);
    let ns = "/api/v1/namespaces/default";
    let deploy = "/apis/apps/v1/namespaces/default/deployments";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "base", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
            "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]}]}});
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "base"}, "data": {"k": "v"}});
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "base"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}});
    for (path, obj) in [
        (format!("{ns}/pods"), &pod),
        (format!("{ns}/configmaps"), &cm),
        (deploy.to_string(), &dep),
    ] {
        let (code, body) = s
            .request(
                "POST",
                &path,
                Some(&s.admin),
                Some(("application/json", obj.to_string().into_bytes())),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
    }
    let targets = [
        (format!("{ns}/pods"), pod.clone()),
        (format!("{ns}/configmaps"), cm.clone()),
        (deploy.to_string(), dep.clone()),
    ];
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_yaml = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_yaml = (0..5000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect::<String>();
    let fixed: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", deep_json.clone().into_bytes()),
        ("application/yaml", deep_yaml.into_bytes()),
        ("application/yaml", nested_yaml.into_bytes()),
        ("application/yaml", b"a: &x [*x, *x]\nb: *x\n".to_vec()),
        ("application/yaml", b"- &a [a, a, a]\n- &b [*a, *a, *a]\n- &c [*b, *b, *b]\n- &d [*c, *c, *c]\n- &e [*d, *d, *d]\n- &f [*e, *e, *e]\n- &g [*f, *f, *f]\n- &h [*g, *g, *g]\n- &i [*h, *h, *h]\n".to_vec()),
        ("application/vnd.kubernetes.protobuf", b"k8s\0".to_vec()),
        ("application/vnd.kubernetes.protobuf", [b"k8s\0".as_slice(), &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]].concat()),
        ("application/json", b"\xff\xfe".to_vec()),
        ("text/plain", b"hello".to_vec()),
    ];
    let mut checked = 0;
    let mut check = |code: u16, what: &str, body: &str| {
        assert!(
            (200..500).contains(&code),
            "seed {seed:#x}: {what} answered {code}: {body}"
        );
        checked += 1;
    };
    for (ct, body) in &fixed {
        for (path, _) in &targets {
            let r = s
                .request("POST", path, Some(&s.admin), Some((ct, body.clone())))
                .await;
            let (code, text) = r.unwrap_or_else(|e| {
                panic!("POST {ct} to {path}: no answer: {e}\n{}", server_log(&s))
            });
            check(code, &format!("POST {ct} {path}"), &text);
        }
    }
    let patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
    let rounds = std::env::var("KINDLING_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let mut codes = std::collections::BTreeMap::new();
    for round in 0..rounds {
        let (path, base) = rng.pick(&targets).clone();
        let (method, url, ct, body) = match rng.below(6) {
            0 | 1 => {
                let mut v = base.clone();
                v["metadata"]["name"] = json!(format!("f{round}"));
                mutate_value(&mut rng, &mut v, 0);
                let mut b = v.to_string().into_bytes();
                if rng.below(3) == 0 {
                    mutate_bytes(&mut rng, &mut b);
                }
                ("POST", path.clone(), "application/json", b)
            }
            2 => {
                let mut v = base.clone();
                v["metadata"]["name"] = json!(format!("y{round}"));
                mutate_value(&mut rng, &mut v, 0);
                let mut b = serde_json::to_string(&v).unwrap().into_bytes();
                mutate_bytes(&mut rng, &mut b);
                ("POST", path.clone(), "application/yaml", b)
            }
            3 => {
                let mut b = protobuf_pod(&format!("p{round}"));
                mutate_bytes(&mut rng, &mut b);
                let pods = format!("{ns}/pods");
                ("POST", pods, "application/vnd.kubernetes.protobuf", b)
            }
            4 => {
                let mut v = base.clone();
                mutate_value(&mut rng, &mut v, 0);
                (
                    "PUT",
                    format!("{path}/base"),
                    "application/json",
                    v.to_string().into_bytes(),
                )
            }
            _ => {
                let ct = *rng.pick(&patch_types);
                let patch = match ct {
                    "application/json-patch+json" => json_patch(&mut rng),
                    "application/strategic-merge-patch+json" => strategic_patch(&mut rng),
                    _ => {
                        let mut v = base.clone();
                        mutate_value(&mut rng, &mut v, 0);
                        v
                    }
                };
                let mut b = patch.to_string().into_bytes();
                if rng.below(4) == 0 {
                    mutate_bytes(&mut rng, &mut b);
                }
                let q = match ct {
                    "application/apply-patch+yaml" => "?fieldManager=fuzz&force=true",
                    _ => "",
                };
                ("PATCH", format!("{path}/base{q}"), ct, b)
            }
        };
        let r = s
            .request(method, &url, Some(&s.admin), Some((ct, body.clone())))
            .await;
        let what = format!(
            "round {round}: {method} {url} ({ct}) {:?}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        let (code, text) = r.unwrap_or_else(|e| {
            panic!("seed {seed:#x}: {what}: no answer: {e}\n{}", server_log(&s))
        });
        check(code, &what, &text);
        *codes.entry(code).or_insert(0) += 1;
    }
    eprintln!("seed {seed:#x}: answers by status {codes:?}");
    assert!(checked > rounds);
    let (code, _) = s
        .request("GET", "/readyz", Some(&s.admin), None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let log = std::fs::read_to_string(s.dir.join("apiserver.err")).unwrap_or_default();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}
