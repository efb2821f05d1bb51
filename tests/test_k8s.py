"""Offline validation of the KubeRay manifests in k8s/ (no network, no cluster).

* Ray objects (ray.io/v1 RayCluster/RayJob) are validated against the `v1` openAPIV3Schema of the
  KubeRay CRDs in ../shared/k8s-crds with jsonschema, plus a strict unknown-field check (the API
  server prunes unknown fields silently, so a typo such as `rayStartParam` would otherwise pass).
* Core kinds, and every pod template embedded in a Ray object, are validated with
  kubernetes-validate in strict mode against a Kubernetes version it bundles.
* Policy: Ray 2.60.0 everywhere (CRs, Dockerfile, installed ray), resources and a non-root security
  context on every container, no literal credentials, MLflow URI reaching the Ray pods via
  envFrom, references between the manifests resolving.
* Negative tests: broken copies of the manifests must be rejected by the same validators.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import importlib.metadata
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
MANIFEST_FILES = ("mlflow.yaml", "raycluster.yaml", "rayjob.yaml")
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


@pytest.mark.parametrize("item", [d for d in DOCS if list(_pod_specs(d[1]))], ids=_doc_id)
def test_containers_have_resources_and_run_non_root(item):
    _, doc = item
    for path, pod in _pod_specs(doc):
        pod_sc = pod.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, path
        assert pod_sc.get("runAsUser") == 1000, path
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", path
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{path}/{c['name']}"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), (where, kind)
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


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
