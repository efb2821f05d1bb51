"""Offline validation of the KubeRay manifests in k8s/ (no network, no cluster).

* Ray objects (ray.io/v1 RayCluster/RayJob) are validated against the `v1` openAPIV3Schema of the
  KubeRay CRDs in ../shared/k8s-crds with jsonschema, plus a strict unknown-field check (the API
  server prunes unknown fields silently, so a typo such as `rayStartParam` would otherwise pass).
* Core kinds, and every pod template embedded in a Ray object, are validated with
  kubernetes-validate in strict mode against a Kubernetes version it bundles.
* Policy: Ray 2.60.0 everywhere (CRs, Dockerfile, installed ray), resources and a restricted
  security context on every container (non-root uid 1000, no privilege escalation, no
  capabilities, RuntimeDefault seccomp, read-only root filesystem with writable volumes for the
  paths that are written), no literal credentials, MLflow URI reaching the Ray pods via envFrom,
  references between the manifests resolving.
* NetworkPolicies: who reaches which pod on which port is computed from the policies and from the
  pods' labels as KubeRay sets them (template labels plus KubeRay's own), and compared with what
  is intended: MLflow only from Ray nodes, a Ray cluster's pods only from its own pods, its head's
  dashboard also from the KubeRay operator and (RayJob) its submitter; nothing else.
* Negative tests: broken copies of the manifests must be rejected by the same validators.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import importlib.metadata
import ipaddress
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S_DIR = REPO / "k8s"
CRD_DIR = Path(__file__).resolve().parents[2] / "shared" / "k8s-crds"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
RAY_API_VERSION = "ray.io/v1"
RAY_VERSION = "2.60.0"
# A Kubernetes version that kubernetes-validate 1.37.0 bundles schemas for (1.30 ... 1.37).
K8S_VERSION = "1.33.0"
MANIFEST_FILES = ("mlflow.yaml", "raycluster.yaml", "rayjob.yaml", "networkpolicies.yaml")
ENTRYPOINT = (
    "python -m splitrl sweep /home/ray/splitrl/configs/sweeps/lyappo_fl.yaml --address auto "
    "--out /mnt/results/lyappo_fl"
)
CREDENTIAL_WORDS = ("PASSWORD", "TOKEN", "SECRET")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------------------- loading


def _load_manifest(name: str) -> list[dict]:
    with open(K8S_DIR / name) as f:
        return [d for d in yaml.load_all(f, Loader=_Loader) if d is not None]


def _all_docs() -> list[tuple[str, dict]]:
    return [(name, doc) for name in MANIFEST_FILES for doc in _load_manifest(name)]


DOCS = _all_docs()


def _doc_id(item: tuple[str, dict]) -> str:
    name, doc = item
    return f"{name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _is_ray(doc: dict) -> bool:
    return doc.get("kind") in CRD_FILES


RAY_DOCS = [d for d in DOCS if _is_ray(d[1])]
CORE_DOCS = [d for d in DOCS if not _is_ray(d[1])]


def _by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc.get("kind") == kind]


@functools.cache
def _crd_schema(kind: str) -> dict:
    path = CRD_DIR / CRD_FILES[kind]
    if not path.is_file():
        pytest.skip(f"KubeRay CRD {path} not found (expected ../shared/k8s-crds beside the repo)")
    with open(path) as f:
        crd = yaml.load(f, Loader=_Loader)
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"]
    return _int_or_string(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def _int_or_string(schema: Any) -> Any:
    """Give `x-kubernetes-int-or-string` nodes an explicit integer-or-string type where missing."""
    if isinstance(schema, dict):
        if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema and "type" not in schema:
            schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        for value in schema.values():
            _int_or_string(value)
    elif isinstance(schema, list):
        for value in schema:
            _int_or_string(value)
    return schema


# ---------------------------------------------------------------------------------- validators


def _unknown_fields(instance: Any, schema: dict, path: str = "") -> Iterator[str]:
    """Keys that the structural schema does not declare (the API server would prune them)."""
    if isinstance(instance, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        for key, value in instance.items():
            if props is not None and key in props:
                yield from _unknown_fields(value, props[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                yield from _unknown_fields(value, additional, f"{path}.{key}")
            elif props is not None and not additional and not preserve:
                yield f"{path}.{key}"
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            yield from _unknown_fields(item, schema["items"], f"{path}[{i}]")


def ray_errors(doc: dict) -> list[str]:
    """All problems of a Ray object: CRD schema violations and undeclared (pruned) fields."""
    schema = _crd_schema(doc["kind"])
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)]
    errors += [f"{p}: unknown field (would be pruned)" for p in _unknown_fields(doc, schema)]
    # The CRD leaves metadata as a free object; the API server validates it as ObjectMeta.
    errors += [
        f".metadata.{k}: unexpected"
        for k in doc.get("metadata", {})
        if k not in {"name", "namespace", "labels", "annotations"}
    ]
    if doc.get("apiVersion") != RAY_API_VERSION:
        errors.append(f"apiVersion {doc.get('apiVersion')!r} != {RAY_API_VERSION}")
    return errors


def core_errors(doc: dict) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    return []


def _as_pod_template(template: dict, name: str) -> dict:
    """Wrap an embedded PodTemplateSpec as a core v1 PodTemplate for kubernetes-validate."""
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}


def _ray_pod_templates(doc: dict) -> list[tuple[str, dict]]:
    spec = doc["spec"]
    cluster = spec if doc["kind"] == "RayCluster" else spec["rayClusterSpec"]
    out = [("head", cluster["headGroupSpec"]["template"])]
    out += [(f"worker-{g['groupName']}", g["template"]) for g in cluster.get("workerGroupSpecs", [])]
    if "submitterPodTemplate" in spec:
        out.append(("submitter", spec["submitterPodTemplate"]))
    return out


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def _pod_specs(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every pod spec (a mapping with a `containers` list) anywhere in a document."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield path, node
        for key, value in node.items():
            yield from _pod_specs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _pod_specs(value, f"{path}[{i}]")


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# ------------------------------------------------------------------------------- positive tests


def test_manifests_present():
    kinds = sorted(f"{name}:{doc['kind']}" for name, doc in DOCS)
    for expected in (
        "mlflow.yaml:ConfigMap",
        "mlflow.yaml:Deployment",
        "mlflow.yaml:Service",
        "mlflow.yaml:PersistentVolumeClaim",
        "raycluster.yaml:RayCluster",
        "rayjob.yaml:RayJob",
        "networkpolicies.yaml:NetworkPolicy",
    ):
        assert expected in kinds, kinds
    assert (K8S_DIR / "Dockerfile").is_file()
    assert (REPO / ".dockerignore").is_file()


@pytest.mark.parametrize("item", RAY_DOCS, ids=_doc_id)
def test_ray_object_matches_crd(item):
    _, doc = item
    assert ray_errors(doc) == []


@pytest.mark.parametrize("item", CORE_DOCS, ids=_doc_id)
def test_core_object_valid_strict(item):
    _, doc = item
    assert core_errors(doc) == []


@pytest.mark.parametrize("item", RAY_DOCS, ids=_doc_id)
def test_ray_pod_templates_valid_strict(item):
    _, doc = item
    for role, template in _ray_pod_templates(doc):
        assert core_errors(_as_pod_template(template, role)) == [], role


@pytest.mark.parametrize("item", RAY_DOCS, ids=_doc_id)
def test_ray_version_pinned(item):
    _, doc = item
    assert _cluster_spec(doc)["rayVersion"] == RAY_VERSION
    assert importlib.metadata.version("ray") == RAY_VERSION


def test_dockerfile_ray_image_and_install():
    text = (K8S_DIR / "Dockerfile").read_text()
    tags = re.findall(r"rayproject/ray(?:-ml)?:([\w.\-]+)", text)
    assert tags, "Dockerfile names no rayproject/ray image"
    for tag in tags:
        assert tag.split("-")[0] == RAY_VERSION == importlib.metadata.version("ray"), tag
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    assert froms == [f"FROM rayproject/ray:{RAY_VERSION}-py311-cpu"]
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users and users[-1] in {"1000", "ray"}, users
    workdirs = [line.split()[1] for line in instructions if line.upper().startswith("WORKDIR ")]
    assert workdirs[-1] == "/home/ray/splitrl"
    assert "pip install --no-cache-dir" in text
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    for needed in ("pyproject.toml", "README.md", "splitrl/", "configs/"):
        assert any(line.startswith("COPY") and needed in line for line in instructions), needed


def test_pyproject_pins_same_ray():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    ray = [d for d in deps if re.match(r"ray(\[|=)", d)]
    assert ray and all(d.endswith(f"=={RAY_VERSION}") for d in ray), ray


def test_dockerignore():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (
        ".venv",
        "runs",
        "mlflow.db",
        "mlruns",
        ".git",
        "*.egg-info",
        "sweeps",
        "__pycache__",
        ".pytest_cache",
    ):
        assert any(p == required or p == f"**/{required}" for p in patterns), required
    # Nothing the image needs may be excluded (configs/sweeps/ in particular).
    for needed in (
        "pyproject.toml",
        "README.md",
        "splitrl",
        "splitrl/__init__.py",
        "configs",
        "configs/sweeps",
        "configs/sweeps/lyappo_fl.yaml",
    ):
        assert not [p for p in patterns if fnmatch.fnmatch(needed, p)], needed


# Paths each container of the splitrl image writes, which must be writable volumes because its root
# filesystem is read-only. Every process of the image: tempfile and Ray's /tmp/ray, ~/.cache
# (splitrl's server-latency cache, torch, matplotlib), ~/.config (matplotlib, MLflow's telemetry
# id). Ray nodes also ~/ray_results: an RLlib Algorithm built inside a Tune trial creates its logdir
# there (ray.tune.Trainable without a Tune storage context). MLflow also its data volume.
SCRATCH_PATHS = ("/tmp", "/home/ray/.cache", "/home/ray/.config")
WRITABLE_PATHS = {
    "ray-head": (*SCRATCH_PATHS, "/home/ray/ray_results"),
    "ray-worker": (*SCRATCH_PATHS, "/home/ray/ray_results"),
    "ray-job-submitter": SCRATCH_PATHS,
    "autoscaler": SCRATCH_PATHS,  # KubeRay adds its `ray-logs` emptyDir at /tmp/ray itself
    "mlflow": (*SCRATCH_PATHS, "/mlflow"),
}


def _container_security_errors(sc: dict | None, where: str) -> list[str]:
    sc = sc or {}
    errors = []
    if sc.get("runAsNonRoot") is not True:
        errors.append(f"{where}: runAsNonRoot is not true")
    if sc.get("runAsUser") != 1000:  # the image's `ray` user (k8s/Dockerfile: USER 1000)
        errors.append(f"{where}: runAsUser {sc.get('runAsUser')!r} != 1000")
    if sc.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{where}: allowPrivilegeEscalation is not false")
    if sc.get("privileged"):
        errors.append(f"{where}: privileged")
    if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
        errors.append(f"{where}: capabilities are not drop [ALL] with nothing added")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.append(f"{where}: seccompProfile is not RuntimeDefault")
    if sc.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{where}: readOnlyRootFilesystem is not true")
    return errors


def _writable_mount_errors(mounts: list[dict], volumes: dict[str, dict], needed, where: str) -> list[str]:
    errors = []
    by_path = {m["mountPath"]: m for m in mounts}
    for path in needed:
        mount = by_path.get(path)
        if mount is None:
            errors.append(f"{where}: nothing writable mounted at {path} (the root filesystem is read-only)")
            continue
        volume = volumes.get(mount["name"])
        if volume is None:
            errors.append(f"{where}: {path} mounts volume {mount['name']!r}, which the pod does not define")
        elif mount.get("readOnly") or not ({"emptyDir", "persistentVolumeClaim"} & set(volume)):
            errors.append(f"{where}: {path} is not a writable emptyDir/PVC")
    return errors


def security_errors(doc: dict) -> list[str]:
    """Resources and the restricted security context on every pod and container of a document."""
    errors = []
    for path, pod in _pod_specs(doc):
        pod_sc = pod.get("securityContext", {})
        if pod_sc.get("runAsNonRoot") is not True or pod_sc.get("runAsUser") != 1000:
            errors.append(f"{path}: pod securityContext is not runAsNonRoot with runAsUser 1000")
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            errors.append(f"{path}: pod seccompProfile is not RuntimeDefault")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            errors.append(f"{path}: shares a host namespace")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{path}/{c['name']}"
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})):
                    errors.append(f"{where}: no cpu/memory {kind}")
            errors += _container_security_errors(c.get("securityContext"), where)
            if c["name"] not in WRITABLE_PATHS:
                errors.append(f"{where}: unknown container (add its writable paths to WRITABLE_PATHS)")
            else:
                errors += _writable_mount_errors(c.get("volumeMounts", []), volumes, WRITABLE_PATHS[c["name"]], where)
    if _is_ray(doc):
        # The autoscaler sidecar KubeRay adds to the head pod: its securityContext and volumeMounts
        # come from autoscalerOptions and its volumes from the head pod.
        cluster = _cluster_spec(doc)
        if cluster.get("enableInTreeAutoscaling"):
            options = cluster.get("autoscalerOptions", {})
            head_volumes = {v["name"]: v for v in cluster["headGroupSpec"]["template"]["spec"].get("volumes", [])}
            errors += _container_security_errors(options.get("securityContext"), "autoscaler")
            errors += _writable_mount_errors(
                options.get("volumeMounts", []), head_volumes, WRITABLE_PATHS["autoscaler"], "autoscaler"
            )
    return errors


@pytest.mark.parametrize("item", [d for d in DOCS if list(_pod_specs(d[1]))], ids=_doc_id)
def test_containers_have_resources_and_run_non_root(item):
    _, doc = item
    assert security_errors(doc) == []


@pytest.mark.parametrize("item", RAY_DOCS, ids=_doc_id)
def test_ray_cluster_shape(item):
    _, doc = item
    cluster = _cluster_spec(doc)
    assert cluster["enableInTreeAutoscaling"] is True
    autoscaler = cluster["autoscalerOptions"]
    assert autoscaler["idleTimeoutSeconds"] > 0
    assert {"cpu", "memory"} <= set(autoscaler["resources"]["requests"])
    assert {"cpu", "memory"} <= set(autoscaler["resources"]["limits"])
    assert autoscaler["securityContext"]["runAsNonRoot"] is True
    assert autoscaler["securityContext"]["allowPrivilegeEscalation"] is False
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    (worker,) = cluster["workerGroupSpecs"]
    assert (worker["groupName"], worker["minReplicas"], worker["replicas"], worker["maxReplicas"]) == ("cpu", 0, 1, 10)
    for group in (head, worker):
        pod = group["template"]["spec"]
        ray_container = pod["containers"][0]
        # The MLflow URI (and optional credentials) arrive via envFrom, never as literal env.
        assert {"configMapRef": {"name": "splitrl-tracking"}} in ray_container["envFrom"]
        assert {"secretRef": {"name": "splitrl-mlflow-credentials", "optional": True}} in ray_container["envFrom"]
        assert ray_container["image"] == "splitrl:0.1.0"
        # Tune's storage path on a volume every node shares.
        mounts = {m["mountPath"]: m["name"] for m in ray_container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts["/mnt/results"]]["persistentVolumeClaim"]["claimName"] == "splitrl-results"


def test_rayjob_spec():
    (job,) = _by_kind("RayJob")
    spec = job["spec"]
    assert job["metadata"]["name"] == "splitrl-sweep"
    assert spec["entrypoint"] == ENTRYPOINT
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] >= 0
    submitter = spec["submitterPodTemplate"]["spec"]
    assert submitter["restartPolicy"] == "Never"
    assert "command" not in submitter["containers"][0]  # KubeRay fills in `ray job submit`
    # The sweep spec the entrypoint names exists (it is copied into the image with configs/).
    assert (REPO / "configs/sweeps/lyappo_fl.yaml").is_file()
    assert "--out /mnt/results/" in spec["entrypoint"]


def test_raycluster_name_matches_readme_service():
    (cluster,) = _by_kind("RayCluster")
    assert cluster["metadata"]["name"] == "splitrl"
    assert "svc/splitrl-head-svc" in (K8S_DIR / "README.md").read_text()


def test_mlflow_service_and_tracking_configmap():
    (cm,) = [c for c in _by_kind("ConfigMap") if c["metadata"]["name"] == "splitrl-tracking"]
    assert cm["data"] == {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    (svc,) = [s for s in _by_kind("Service") if s["metadata"]["name"] == "mlflow"]
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert [p["port"] for p in svc["spec"]["ports"]] == [5000]
    (dep,) = [d for d in _by_kind("Deployment") if d["metadata"]["name"] == "mlflow"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    cmd = container["command"]
    assert cmd[:2] == ["mlflow", "server"]
    args = dict(zip(cmd[2::2], cmd[3::2]))
    assert args["--backend-store-uri"] == "sqlite:////mlflow/mlflow.db"
    assert args["--artifacts-destination"] == "/mlflow/artifacts"
    assert args["--host"] == "0.0.0.0" and args["--port"] == "5000"
    assert "--serve-artifacts" in cmd
    hosts = cmd[cmd.index("--allowed-hosts") + 1].split(",")
    for host in ("mlflow:5000", "mlflow.splitrl.svc:5000", "mlflow.splitrl.svc.cluster.local:5000", "localhost:5000"):
        assert any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in hosts), host
    assert "*" not in hosts
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/mlflow"


def test_mlflow_server_accepts_the_flags():
    """The flags used in the Deployment exist in the pinned MLflow's `mlflow server`."""
    from click.testing import CliRunner
    from mlflow.cli import cli

    help_text = CliRunner().invoke(cli, ["server", "--help"]).output
    (dep,) = _by_kind("Deployment")
    flags = [a for a in dep["spec"]["template"]["spec"]["containers"][0]["command"] if a.startswith("--")]
    for flag in flags:
        assert flag in help_text, flag


def test_references_resolve():
    """Every ConfigMap/PVC a pod references is defined in k8s/; Secrets are only optional."""
    defined = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCS}
    for name, doc in DOCS:
        for node in _walk(doc):
            if not isinstance(node, dict):
                continue
            if "configMapRef" in node:
                assert ("ConfigMap", node["configMapRef"]["name"]) in defined, name
            if "secretRef" in node:
                assert node["secretRef"].get("optional") is True, (name, node)
            if "persistentVolumeClaim" in node and "claimName" in node["persistentVolumeClaim"]:
                claim = node["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in defined, (name, claim)
    (results,) = [d for d in _by_kind("PersistentVolumeClaim") if d["metadata"]["name"] == "splitrl-results"]
    assert results["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("item", DOCS, ids=_doc_id)
def test_no_literal_credentials(item):
    _, doc = item
    assert doc["kind"] != "Secret", "credentials belong in a Secret created out of band"
    for node in _walk(doc):
        if isinstance(node, dict) and isinstance(node.get("name"), str) and "value" in node:
            assert not any(w in node["name"].upper() for w in CREDENTIAL_WORDS), node["name"]
    if doc["kind"] == "ConfigMap":
        for key in doc.get("data", {}):
            assert not any(w in key.upper() for w in CREDENTIAL_WORDS), key


# ------------------------------------------------------------------------------ network policies
#
# The policies are checked by what they do: for every source (each pod the manifests describe, the
# KubeRay operator, an unrelated pod in the namespace, a look-alike pod in another namespace, a
# client outside the cluster) and every destination pod and port, NetworkPolicy semantics decide
# whether the connection is allowed, and that is compared with what is intended.

NAMESPACE = "splitrl"  # k8s/README.md: every manifest is applied with `-n splitrl`
OPERATOR_NAMESPACE = "default"  # where `helm install kuberay-operator` and the kustomize install put it
MLFLOW_PORT = 5000
DASHBOARD_PORT = 8265
# Ports a connection is tried on: MLflow, GCS, dashboard/Jobs API, Ray client, metrics, dashboard
# agent, a random raylet/worker port, and one nothing listens on.
PROBE_PORTS = (MLFLOW_PORT, 6379, DASHBOARD_PORT, 10001, 8080, 52365, 23456, 22)
# KubeRay names a RayJob's cluster <RayJob name>-<5 random characters>.
RAYJOB_CLUSTER_SUFFIX = "-x7k2p"
# Labels KubeRay never takes from a pod template (ray-operator/controllers/ray/common/pod.go, labelPod).
KUBERAY_FIXED_LABELS = ("ray.io/node-type", "ray.io/group", "ray.io/cluster")
# Operator pod labels: the Helm chart's and the kustomize manifests' (ray-operator/config/manager).
OPERATOR_POD_LABELS = (
    {
        "app.kubernetes.io/name": "kuberay-operator",
        "app.kubernetes.io/instance": "kuberay-operator",
        "app.kubernetes.io/component": "kuberay-operator",
    },
    {"app.kubernetes.io/name": "kuberay", "app.kubernetes.io/component": "kuberay-operator"},
)


def _kuberay_node_labels(doc: dict, template: dict, node_type: str, group: str) -> dict[str, str]:
    """The labels of a Ray head/worker pod as KubeRay creates it: its own, then the template's."""
    name = doc["metadata"]["name"]
    cluster = name if doc["kind"] == "RayCluster" else name + RAYJOB_CLUSTER_SUFFIX
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": f"{cluster}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    for key, value in template.get("metadata", {}).get("labels", {}).items():
        if key not in KUBERAY_FIXED_LABELS:
            labels[key] = value
    return labels


def _kuberay_submitter_labels(doc: dict, template: dict) -> dict[str, str]:
    """A RayJob submitter pod's labels: the template's, then the three KubeRay sets on it."""
    return {
        **template.get("metadata", {}).get("labels", {}),
        "ray.io/originated-from-cr-name": doc["metadata"]["name"],
        "ray.io/originated-from-crd": "RayJob",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }


def _endpoint(name, role, labels, *, namespace=NAMESPACE, cluster=None, template=None) -> dict:
    ports = {}
    for c in (template or {}).get("spec", {}).get("containers", []):
        ports.update({p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p})
    return {"name": name, "role": role, "labels": labels, "namespace": namespace, "cluster": cluster, "ports": ports}


def _manifest_pods(docs) -> list[dict]:
    """Every pod the manifests make, labelled as it runs (KubeRay's labels included)."""
    pods = []
    for _, doc in docs:
        if doc.get("kind") == "Deployment":
            template = doc["spec"]["template"]
            name = doc["metadata"]["name"]
            pods.append(_endpoint(name, name, template["metadata"].get("labels", {}), template=template))
        elif _is_ray(doc):
            name = doc["metadata"]["name"]
            for role, template in _ray_pod_templates(doc):
                if role == "submitter":
                    labels = _kuberay_submitter_labels(doc, template)
                    kind = "submitter"
                elif role == "head":
                    labels = _kuberay_node_labels(doc, template, "head", "headgroup")
                    kind = "head"
                else:
                    labels = _kuberay_node_labels(doc, template, "worker", role.removeprefix("worker-"))
                    kind = "worker"
                pods.append(_endpoint(f"{name}/{role}", kind, labels, cluster=name, template=template))
    return pods


def _sources(pods: list[dict]) -> list[dict]:
    out = list(pods)
    out += [
        _endpoint(f"kuberay-operator#{i}", "operator", labels, namespace=OPERATOR_NAMESPACE)
        for i, labels in enumerate(OPERATOR_POD_LABELS)
    ]
    out.append(_endpoint("unrelated pod", "other", {"app": "debug-shell"}))
    # Pods KubeRay makes for objects that are not these manifests: a RayCluster without the splitrl
    # labels, and the submitter of another RayJob, both in the same namespace.
    scratch = {"metadata": {"name": "scratch"}, "kind": "RayCluster"}
    out.append(_endpoint("another RayCluster's worker", "other", _kuberay_node_labels(scratch, {}, "worker", "cpu")))
    other_job = {"metadata": {"name": "other-sweep"}, "kind": "RayJob"}
    out.append(_endpoint("another RayJob's submitter", "other", _kuberay_submitter_labels(other_job, {})))
    # Someone else's copy of the manifests in another namespace: same labels, other namespace.
    out += [{**p, "name": f"other-namespace {p['name']}", "role": "other", "namespace": "elsewhere"} for p in pods]
    out.append(_endpoint("client outside the cluster", "other", {}, namespace=None))
    return out


def _selects(selector: dict, labels: dict) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        elif op == "DoesNotExist":
            ok = not present
        else:
            raise ValueError(f"unknown selector operator {op!r}")
        if not ok:
            return False
    return True


def _peer_admits(peer: dict, src: dict, policy_namespace: str) -> bool:
    if "ipBlock" in peer or not peer:
        return True  # pod and client IPs are unknown offline: an IP block (or an empty peer) may match any
    if src["namespace"] is None:
        return False  # selectors match pods only
    namespace_labels = {"kubernetes.io/metadata.name": src["namespace"]}
    if "namespaceSelector" in peer:
        in_namespace = _selects(peer["namespaceSelector"], namespace_labels)
    else:
        in_namespace = src["namespace"] == policy_namespace
    return in_namespace and ("podSelector" not in peer or _selects(peer["podSelector"], src["labels"]))


def _port_admits(ports: list[dict] | None, dst: dict, port: int) -> bool:
    if not ports:
        return True  # no ports: every port
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        if "port" not in p:
            return True
        first = dst["ports"].get(p["port"]) if isinstance(p["port"], str) else p["port"]
        if first is not None and first <= port <= p.get("endPort", first):
            return True
    return False


def ingress_allowed(policies: list[dict], src: dict, dst: dict, port: int) -> bool:
    """NetworkPolicy semantics (networking.k8s.io/v1) for one TCP connection src -> dst:port."""
    isolating = [
        pol
        for pol in policies
        if pol["metadata"].get("namespace", NAMESPACE) == dst["namespace"]
        and _selects(pol["spec"]["podSelector"], dst["labels"])
        and "Ingress" in pol["spec"].get("policyTypes", ["Ingress"])
    ]
    if not isolating:
        return True  # a pod no policy selects accepts everything
    return any(
        (not rule.get("from") or any(_peer_admits(peer, src, dst["namespace"]) for peer in rule["from"]))
        and _port_admits(rule.get("ports"), dst, port)
        for pol in isolating
        for rule in pol["spec"].get("ingress") or []
    )


def intended(src: dict, dst: dict, port: int) -> bool:
    """What should get through: the security requirement, written independently of the policies."""
    ray_node = src["role"] in {"head", "worker"} and src["namespace"] == NAMESPACE
    if dst["role"] == "mlflow":
        return ray_node and port == MLFLOW_PORT
    if dst["role"] in {"head", "worker"}:
        if ray_node and src["cluster"] == dst["cluster"]:
            return True  # a cluster's own pods: every port (Ray picks most of them at random)
        if dst["role"] == "head" and port == DASHBOARD_PORT:
            return src["role"] == "operator" or (src["role"] == "submitter" and src["cluster"] == dst["cluster"])
        return False
    return False  # the submitter accepts nothing


def _open_peer(peer: dict) -> str | None:
    if not peer:
        return "an empty peer {} (every source)"
    if "ipBlock" in peer:
        if ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=False).prefixlen == 0:
            return f"ipBlock {peer['ipBlock']['cidr']} (every address)"
        return None
    if "podSelector" not in peer and peer.get("namespaceSelector") == {}:
        return "namespaceSelector {} (every pod in every namespace)"
    if "namespaceSelector" not in peer and peer.get("podSelector") == {}:
        return "podSelector {} (every pod in the namespace)"
    if peer.get("namespaceSelector") == {} and peer.get("podSelector") == {}:
        return "namespaceSelector {} with podSelector {} (every pod)"
    return None


def network_policy_errors(docs) -> list[str]:
    """Problems of the NetworkPolicies in `docs`: open rules, missing DNS for egress, and every
    connection the policies allow or deny against `intended`."""
    policies = [doc for _, doc in docs if doc.get("kind") == "NetworkPolicy"]
    errors = []
    for pol in policies:
        name = pol["metadata"]["name"]
        if "namespace" in pol["metadata"]:
            errors.append(f"{name}: sets a namespace (the manifests are applied with -n {NAMESPACE})")
        for i, rule in enumerate(pol["spec"].get("ingress") or []):
            if not rule.get("from"):
                errors.append(f"{name}: ingress[{i}] has no `from` (every source)")
            for peer in rule.get("from") or []:
                if reason := _open_peer(peer):
                    errors.append(f"{name}: ingress[{i}] allows {reason}")
        if "Egress" in pol["spec"].get("policyTypes", []):
            dns = [
                r
                for r in pol["spec"].get("egress") or []
                if {"UDP", "TCP"} <= {p.get("protocol", "TCP") for p in r.get("ports", []) if p.get("port") == 53}
            ]
            if not dns:
                errors.append(f"{name}: restricts egress without allowing DNS (UDP and TCP 53)")
    for _, doc in docs:
        if _is_ray(doc):
            for role, template in _ray_pod_templates(doc):
                instance = template.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/instance")
                if instance != doc["metadata"]["name"]:
                    errors.append(f"{doc['metadata']['name']}/{role}: app.kubernetes.io/instance {instance!r}")
    pods = _manifest_pods(docs)
    for dst in pods:
        for src in _sources(pods):
            for port in PROBE_PORTS:
                allowed, wanted = ingress_allowed(policies, src, dst, port), intended(src, dst, port)
                if allowed != wanted:
                    verdict = "allowed" if allowed else "denied"
                    errors.append(f"{src['name']} ({src['namespace']}) -> {dst['name']}:{port} {verdict}")
    return errors


def test_network_policies_allow_exactly_what_is_intended():
    assert network_policy_errors(DOCS) == []


def test_network_policies_select_the_pods_they_mean():
    """Each policy's podSelector picks the pods its name says, labelled as KubeRay labels them."""
    pods = _manifest_pods(DOCS)
    policies = {doc["metadata"]["name"]: doc for doc in _by_kind("NetworkPolicy")}

    def selected(name):
        return {p["name"] for p in pods if _selects(policies[name]["spec"]["podSelector"], p["labels"])}

    by_role = {}
    for p in pods:
        by_role.setdefault(p["role"], set()).add(p["name"])
    assert selected("splitrl-default-deny-ingress") == {p["name"] for p in pods}
    assert not policies["splitrl-default-deny-ingress"]["spec"].get("ingress")
    (dep,) = _by_kind("Deployment")
    assert selected("mlflow-from-ray-nodes") == {dep["metadata"]["name"]}
    ports = [p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]]
    assert ports == [MLFLOW_PORT]
    for _, doc in RAY_DOCS:
        name = doc["metadata"]["name"]
        members = {p["name"] for p in pods if p["cluster"] == name and p["role"] in {"head", "worker"}}
        assert selected(f"{name}-ray-members") == members
    assert selected("splitrl-ray-head-from-kuberay-operator") == by_role["head"]
    (job,) = _by_kind("RayJob")
    assert selected(f"{job['metadata']['name']}-head-from-submitter") == {f"{job['metadata']['name']}/head"}
    head_ports = {
        p["containerPort"]
        for _, doc in RAY_DOCS
        for p in _cluster_spec(doc)["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
        if p["name"] == "dashboard"
    }
    assert head_ports == {DASHBOARD_PORT}
    # The README says what each one allows.
    readme = (K8S_DIR / "README.md").read_text()
    for name in policies:
        assert f"`{name}`" in readme, name


# ------------------------------------------------------------------------------- negative tests


def _raycluster() -> dict:
    (cluster,) = _by_kind("RayCluster")
    return copy.deepcopy(cluster)


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


def _mut_misspelt_ray_start_params(doc):
    _rename(doc["spec"]["headGroupSpec"], "rayStartParams", "rayStartParam")


def _mut_max_replicas_string(doc):
    doc["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "ten"


def _mut_misspelt_container_field(doc):
    _rename(doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0], "resources", "resource")


def _mut_missing_group_name(doc):
    del doc["spec"]["workerGroupSpecs"][0]["groupName"]


def _mut_bad_upscaling_mode(doc):
    doc["spec"]["autoscalerOptions"]["upscalingMode"] = "Fast"


def _mut_misspelt_top_level(doc):
    _rename(doc["spec"], "enableInTreeAutoscaling", "enableInTreeAutoScaling")


@pytest.mark.parametrize(
    "mutate",
    [
        _mut_misspelt_ray_start_params,
        _mut_max_replicas_string,
        _mut_misspelt_container_field,
        _mut_missing_group_name,
        _mut_bad_upscaling_mode,
        _mut_misspelt_top_level,
    ],
    ids=lambda f: f.__name__.removeprefix("_mut_"),
)
def test_broken_raycluster_is_rejected(mutate):
    doc = _raycluster()
    assert ray_errors(doc) == []
    mutate(doc)
    assert ray_errors(doc), "mutated RayCluster passed validation"


def test_broken_rayjob_is_rejected():
    (job,) = _by_kind("RayJob")
    doc = copy.deepcopy(job)
    _rename(doc["spec"], "shutdownAfterJobFinishes", "shutdownAfterJobFinish")
    assert ray_errors(doc)
    doc = copy.deepcopy(job)
    doc["spec"]["ttlSecondsAfterFinished"] = "600"
    assert ray_errors(doc)


def test_broken_core_objects_are_rejected():
    (dep,) = _by_kind("Deployment")
    doc = copy.deepcopy(dep)
    _rename(doc["spec"], "replicas", "replica")
    assert core_errors(doc)
    doc = copy.deepcopy(dep)
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = "yes"
    assert core_errors(doc)
    # A typo inside an embedded Ray pod template is caught by the PodTemplate check as well.
    template = copy.deepcopy(_raycluster()["spec"]["headGroupSpec"]["template"])
    _rename(template["spec"]["containers"][0], "envFrom", "envfrom")
    assert core_errors(_as_pod_template(template, "head"))


def test_policy_checks_can_fail():
    """The security/credential checks reject a container that breaks them."""
    doc = _raycluster()
    container = doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "MLFLOW_TRACKING_PASSWORD", "value": "hunter2"}]
    with pytest.raises(AssertionError):
        test_no_literal_credentials(("raycluster.yaml", doc))
    doc = _raycluster()
    del doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]
    with pytest.raises(AssertionError):
        test_containers_have_resources_and_run_non_root(("raycluster.yaml", doc))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.__setitem__("allowPrivilegeEscalation", True),
        lambda c: c.__setitem__("readOnlyRootFilesystem", False),
        lambda c: c.pop("readOnlyRootFilesystem"),
        lambda c: c.__setitem__("runAsUser", 0),
        lambda c: c["capabilities"].__setitem__("add", ["NET_ADMIN"]),
        lambda c: c.__setitem__("capabilities", {"drop": ["NET_RAW"]}),
        lambda c: c.__setitem__("seccompProfile", {"type": "Unconfined"}),
    ],
    ids=[
        "privilege-escalation",
        "writable-root",
        "no-read-only-root",
        "root-user",
        "added-capability",
        "not-all-dropped",
        "unconfined",
    ],
)
@pytest.mark.parametrize("where", ["mlflow", "worker", "submitter", "autoscaler"])
def test_insecure_container_is_rejected(mutate, where):
    name, doc = {
        "mlflow": ("mlflow.yaml", _by_kind("Deployment")[0]),
        "worker": ("raycluster.yaml", _raycluster()),
        "submitter": ("rayjob.yaml", _by_kind("RayJob")[0]),
        "autoscaler": ("rayjob.yaml", _by_kind("RayJob")[0]),
    }[where]
    doc = copy.deepcopy(doc)
    assert security_errors(doc) == []
    mutate(
        {
            "mlflow": lambda: doc["spec"]["template"]["spec"]["containers"][0],
            "worker": lambda: doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0],
            "submitter": lambda: doc["spec"]["submitterPodTemplate"]["spec"]["containers"][0],
            "autoscaler": lambda: doc["spec"]["rayClusterSpec"]["autoscalerOptions"],
        }[where]()["securityContext"]
    )
    assert security_errors(doc)
    with pytest.raises(AssertionError):
        test_containers_have_resources_and_run_non_root((name, doc))


def test_missing_writable_volume_is_rejected():
    """With a read-only root filesystem, each written path needs a writable volume."""
    (dep,) = _by_kind("Deployment")
    doc = copy.deepcopy(dep)
    pod = doc["spec"]["template"]["spec"]
    pod["containers"][0]["volumeMounts"] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] != "/tmp"]
    assert any("/tmp" in e for e in security_errors(doc))
    doc = _raycluster()
    pod = doc["spec"]["workerGroupSpecs"][0]["template"]["spec"]
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "home-ray-results"]
    assert any("ray_results" in e for e in security_errors(doc))
    doc = _raycluster()
    for m in doc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["volumeMounts"]:
        m["readOnly"] = m["mountPath"] == "/home/ray/.cache" or m.get("readOnly", False)
    assert any(".cache" in e for e in security_errors(doc))
    doc = _raycluster()
    del doc["spec"]["autoscalerOptions"]["volumeMounts"]
    assert any(e.startswith("autoscaler: nothing writable mounted at /tmp") for e in security_errors(doc))


def _docs_with_policies(mutate) -> list[tuple[str, dict]]:
    """A copy of all manifests whose NetworkPolicies (by name) `mutate` may change or remove."""
    docs = copy.deepcopy(DOCS)
    policies = {doc["metadata"]["name"]: doc for _, doc in docs if doc["kind"] == "NetworkPolicy"}
    mutate(policies, docs)
    kept = {id(doc) for doc in policies.values()}
    return [(n, d) for n, d in docs if d["kind"] != "NetworkPolicy" or id(d) in kept]


def _rule(policies, name) -> dict:
    return policies[name]["spec"]["ingress"][0]


def _from(policies, name) -> list:
    return _rule(policies, name)["from"]


def _peer_labels(policies, name) -> dict:
    return _from(policies, name)[0]["podSelector"]["matchLabels"]


def _rayjob_worker_labels(docs) -> dict:
    (job,) = [d for _, d in docs if d["kind"] == "RayJob"]
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["metadata"]["labels"]


MLFLOW_NP, OPERATOR_NP = "mlflow-from-ray-nodes", "splitrl-ray-head-from-kuberay-operator"
NETWORK_MUTATIONS = {
    "no-mlflow-policy": lambda ps, _: ps.pop(MLFLOW_NP),
    "no-default-deny": lambda ps, _: ps.pop("splitrl-default-deny-ingress"),
    "no-members-policy": lambda ps, _: ps.pop("splitrl-sweep-ray-members"),
    "mlflow-from-empty-peer": lambda ps, _: _from(ps, MLFLOW_NP).__setitem__(0, {}),
    "mlflow-from-whole-namespace": lambda ps, _: _from(ps, MLFLOW_NP).__setitem__(0, {"podSelector": {}}),
    "mlflow-from-every-namespace": lambda ps, _: _from(ps, MLFLOW_NP).__setitem__(0, {"namespaceSelector": {}}),
    "mlflow-from-everywhere": lambda ps, _: _rule(ps, MLFLOW_NP).pop("from"),
    "mlflow-from-any-ip": lambda ps, _: _from(ps, MLFLOW_NP).append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
    "mlflow-every-port": lambda ps, _: _rule(ps, MLFLOW_NP).pop("ports"),
    "head-from-empty-peer": lambda ps, _: _from(ps, "splitrl-ray-members").append({}),
    "members-include-submitter": lambda ps, _: _peer_labels(ps, "splitrl-sweep-ray-members").pop("ray.io/is-ray-node"),
    "operator-every-port": lambda ps, _: _rule(ps, OPERATOR_NP).pop("ports"),
    "operator-any-namespace": lambda ps, _: _from(ps, OPERATOR_NP)[0].pop("namespaceSelector"),
    "submitter-of-any-rayjob": lambda ps, _: _peer_labels(ps, "splitrl-sweep-head-from-submitter").pop(
        "ray.io/originated-from-cr-name"
    ),
    "egress-without-dns": lambda ps, _: ps["splitrl-default-deny-ingress"]["spec"].__setitem__(
        "policyTypes", ["Ingress", "Egress"]
    ),
    "worker-without-instance-label": lambda _, docs: _rayjob_worker_labels(docs).pop("app.kubernetes.io/instance"),
}


@pytest.mark.parametrize("mutate", NETWORK_MUTATIONS.values(), ids=NETWORK_MUTATIONS.keys())
def test_broken_network_policies_are_rejected(mutate):
    assert network_policy_errors(_docs_with_policies(lambda ps, docs: None)) == []
    assert network_policy_errors(_docs_with_policies(mutate)), "mutated NetworkPolicies passed the checks"


def test_broken_network_policy_fails_strict_validation():
    (pol,) = [p for p in _by_kind("NetworkPolicy") if p["metadata"]["name"] == "mlflow-from-ray-nodes"]
    doc = copy.deepcopy(pol)
    _rename(doc["spec"], "podSelector", "podSelecter")
    assert core_errors(doc)
    doc = copy.deepcopy(pol)
    doc["spec"]["ingress"][0]["ports"][0]["port"] = [5000]
    assert core_errors(doc)
