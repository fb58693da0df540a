"""Kindling's API server through the official Python client (PyPI `kubernetes`), used the way
a script author uses it: typed models, watches, patches, the scale subresource, errors.

Usage: client.py KUBECONFIG NAMESPACE. Prints "ok" when every check passed.
"""
import sys
import threading

from kubernetes import client, config, watch


def main(kubeconfig, ns):
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    apps = client.AppsV1Api()

    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    names = [n.metadata.name for n in v1.list_namespace().items]
    assert ns in names and "kube-system" in names, names

    cm = v1.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}),
            data={"k": "v"},
        ),
    )
    assert cm.metadata.uid and cm.metadata.creation_timestamp, cm.metadata

    # A watch from the creation's resourceVersion sees exactly what followed it.
    events = []
    w = watch.Watch()

    def follow():
        for ev in w.stream(
            v1.list_namespaced_config_map,
            ns,
            resource_version=cm.metadata.resource_version,
            timeout_seconds=20,
        ):
            events.append((ev["type"], ev["object"].metadata.name, dict(ev["object"].data or {})))
            if len(events) == 2:
                w.stop()

    t = threading.Thread(target=follow)
    t.start()
    v1.patch_namespaced_config_map("settings", ns, {"data": {"k": "changed"}})
    v1.delete_namespaced_config_map("settings", ns)
    t.join(25)
    want = [("MODIFIED", "settings", {"k": "changed"}), ("DELETED", "settings", {"k": "changed"})]
    assert events == want, events

    try:
        v1.read_namespaced_config_map("settings", ns)
        raise AssertionError("a deleted ConfigMap was found")
    except client.ApiException as e:
        assert e.status == 404 and "NotFound" in e.body, (e.status, e.body)

    labels = {"app": "web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="kindling/whoami")]
                ),
            ),
        ),
    )
    apps.create_namespaced_deployment(ns, deployment)
    got = apps.read_namespaced_deployment("web", ns)
    assert got.spec.strategy.type == "RollingUpdate", got.spec.strategy
    assert got.spec.template.spec.containers[0].image_pull_policy == "Always"
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment_scale("web", ns).spec.replicas == 3
    listed = apps.list_namespaced_deployment(ns, label_selector="app!=other")
    assert [d.metadata.name for d in listed.items] == ["web"], listed.items

    try:
        v1.create_namespaced_pod(
            ns,
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
             "spec": {"containers": [{"name": "c"}]}},
        )
        raise AssertionError("a pod without an image was accepted")
    except client.ApiException as e:
        assert e.status == 422, (e.status, e.body)
        assert "spec.containers[0].image: Required value" in e.body, e.body

    v1.delete_namespace(ns)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
