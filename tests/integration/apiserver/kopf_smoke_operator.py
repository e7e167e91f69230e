"""A minimal kopf operator: each Widget gets a Pod it owns, and a status saying so."""

import os

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: object) -> None:
    settings.posting.level = 0
    settings.watching.server_timeout = 10
    settings.persistence.finalizer = "smoke.example.com/finalizer"


@kopf.on.login()
def login(**kwargs: object) -> kopf.ConnectionInfo | None:
    # kopf's own kubeconfig reader, so the test does not depend on which client library
    # happened to read $KUBECONFIG first.
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.create("conformance.example.com", "v1", "widgets")
def create_pod(name: str, namespace: str, spec: dict, body: dict, patch: kopf.Patch,
               **_: object) -> dict:
    import kubernetes

    kubernetes.config.load_kube_config(config_file=os.environ["KUBECONFIG"])
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"{name}-pod", "labels": {"widget": name}},
           "spec": {"containers": [{"name": "main", "image": "busybox",
                                    "env": [{"name": "COLOR", "value": spec["color"]}]}]}}
    kopf.adopt(pod, owner=body)
    kubernetes.client.CoreV1Api().create_namespaced_pod(namespace, pod)
    kopf.info(body, reason="PodCreated", message=f"created {name}-pod")
    patch.status["phase"] = "PodCreated"
    return {"pod": f"{name}-pod"}


@kopf.on.delete("conformance.example.com", "v1", "widgets")
def say_goodbye(name: str, body: dict, **_: object) -> None:
    # A deletion handler makes kopf hold the object with its finalizer until this has run.
    kopf.info(body, reason="Goodbye", message=f"{name} is going")
