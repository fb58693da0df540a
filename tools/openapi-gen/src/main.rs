//! Writes the OpenAPI definitions kindling's API server serves (`/openapi/v2`, `/openapi/v3`),
//! named like upstream's (`io.k8s.api.core.v1.Pod`), from k8s-openapi's JSON Schemas.
//!
//! Usage (from this folder): `cargo run --release > ../../src/node/apiserver/openapi/definitions.json`

use k8s_openapi::Resource;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

/// Lists of objects kubectl's strategic merge patch merges by key, as upstream's definitions
/// mark them (k8s-openapi's schemas drop these extensions): (definition, field, strategy, key).
const PATCH_META: &[(&str, &str, &str, &str)] = &[
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        "merge,retainKeys",
        "name",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        "merge",
        "name",
    ),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    ("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "merge",
        "containerPort",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        "merge",
        "mountPath",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        "merge",
        "devicePath",
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        "secrets",
        "merge",
        "name",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        "uid",
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        "retainKeys",
        "",
    ),
];

/// A served kind: its definition name, GVK, and the list definition built beside it
/// (k8s-openapi's generic `List<T>` has no schema of its own).
struct Kind {
    name: String,
    gvk: Value,
    list_name: String,
    list: Value,
}

fn add<T: JsonSchema + Resource>(g: &mut SchemaGenerator) -> Kind {
    g.subschema_for::<T>();
    g.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
    let name = T::schema_name().into_owned();
    let gvk = |kind: String| json!([{"group": T::GROUP, "version": T::VERSION, "kind": kind}]);
    let list = json!({
        "description": format!("{}List is a list of {} objects.", T::KIND, T::KIND),
        "type": "object",
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "items": {"description": format!("List of {} objects.", T::KIND), "type": "array", "items": {"$ref": format!("#/definitions/{name}")}},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta", "description": "Standard list metadata."},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": gvk(format!("{}List", T::KIND)),
    });
    Kind {
        list_name: format!("{name}List"),
        gvk: gvk(T::KIND.to_string()),
        name,
        list,
    }
}

/// `{"allOf": [{"$ref": X}], "description": ..}` (schemars' draft-07 way of describing a
/// reference) becomes `{"$ref": X, "description": ..}`, Swagger 2.0's form, which kubectl 1.20
/// needs: it treats a schema without `$ref`, type or properties as "anything goes".
fn unwrap_all_of(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let single_ref = m
                .get("allOf")
                .and_then(Value::as_array)
                .filter(|a| a.len() == 1 && a[0].get("$ref").is_some())
                .map(|a| a[0]["$ref"].clone());
            if let Some(r) = single_ref {
                m.remove("allOf");
                m.insert("$ref".into(), r);
            }
            m.values_mut().for_each(unwrap_all_of);
        }
        Value::Array(a) => a.iter_mut().for_each(unwrap_all_of),
        _ => {}
    }
}

fn main() {
    use k8s_openapi::api::{
        apps::v1 as apps, authorization::v1 as authz, autoscaling::v2 as autoscaling,
        batch::v1 as batch, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc,
        events::v1 as events, networking::v1 as net, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling, storage::v1 as storage,
    };
    let mut g = SchemaSettings::draft07().into_generator();
    // Every kind resources.rs registers, and the common ones it may register next (a served
    // kind without a schema fails the openapi unit tests, so this list cannot fall behind).
    let kinds = [
        add::<core::Namespace>(&mut g),
        add::<core::Node>(&mut g),
        add::<core::Service>(&mut g),
        add::<core::Endpoints>(&mut g),
        add::<core::ConfigMap>(&mut g),
        add::<core::Secret>(&mut g),
        add::<core::ServiceAccount>(&mut g),
        add::<core::Event>(&mut g),
        add::<core::Pod>(&mut g),
        add::<core::PersistentVolumeClaim>(&mut g),
        add::<core::PersistentVolume>(&mut g),
        add::<core::ReplicationController>(&mut g),
        add::<core::ResourceQuota>(&mut g),
        add::<core::LimitRange>(&mut g),
        add::<core::PodTemplate>(&mut g),
        add::<coord::Lease>(&mut g),
        add::<disc::EndpointSlice>(&mut g),
        add::<events::Event>(&mut g),
        add::<apps::Deployment>(&mut g),
        add::<apps::ReplicaSet>(&mut g),
        add::<apps::StatefulSet>(&mut g),
        add::<apps::DaemonSet>(&mut g),
        add::<apps::ControllerRevision>(&mut g),
        add::<batch::Job>(&mut g),
        add::<batch::CronJob>(&mut g),
        add::<rbac::Role>(&mut g),
        add::<rbac::RoleBinding>(&mut g),
        add::<rbac::ClusterRole>(&mut g),
        add::<rbac::ClusterRoleBinding>(&mut g),
        add::<authz::SelfSubjectAccessReview>(&mut g),
        add::<authz::SelfSubjectRulesReview>(&mut g),
        add::<net::Ingress>(&mut g),
        add::<net::IngressClass>(&mut g),
        add::<net::NetworkPolicy>(&mut g),
        add::<policy::PodDisruptionBudget>(&mut g),
        add::<autoscaling::HorizontalPodAutoscaler>(&mut g),
        add::<scheduling::PriorityClass>(&mut g),
        add::<storage::StorageClass>(&mut g),
    ];
    let mut defs: Map<String, Value> = g.take_definitions(true);
    for k in kinds {
        defs.insert(k.list_name, k.list);
        let d = defs.get_mut(&k.name).expect("added above");
        d["x-kubernetes-group-version-kind"] = k.gvk;
        // k8s-openapi requires metadata (its field is not optional); upstream does not, and
        // kubectl's client-side validation would reject a manifest without it.
        if let Some(req) = d.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|r| r != "metadata");
            if req.is_empty() {
                d.as_object_mut().expect("object").remove("required");
            }
        }
    }
    // Upstream publishes both as strings of a known format, which kubectl 1.20 expects.
    for (name, format) in [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            Some("int-or-string"),
        ),
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", None),
    ] {
        if let Some(d) = defs.get_mut(name).and_then(Value::as_object_mut) {
            d.remove("x-kubernetes-int-or-string");
            d.insert("type".into(), json!("string"));
            if let Some(f) = format {
                d.insert("format".into(), json!(f));
            }
        }
    }
    for (def, field, strategy, key) in PATCH_META {
        if let Some(p) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        {
            p["x-kubernetes-patch-strategy"] = json!(strategy);
            if !key.is_empty() {
                p["x-kubernetes-patch-merge-key"] = json!(key);
            }
        }
    }
    for d in defs.values_mut() {
        unwrap_all_of(d);
    }
    // One definition per line: valid JSON whose diffs stay readable.
    let mut names: Vec<&String> = defs.keys().collect();
    names.sort();
    println!("{{\"definitions\": {{");
    for (i, name) in names.iter().enumerate() {
        let comma = if i + 1 < names.len() { "," } else { "" };
        println!("{}: {}{comma}", json!(name), defs[*name]);
    }
    println!("}}}}");
}
