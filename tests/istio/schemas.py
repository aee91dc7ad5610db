"""Offline validation of rendered resources, as an API server with strict field validation would do it.

Istio and Gateway API kinds are checked against the ``openAPIV3Schema`` of their CRD in
``tests/istio/crds`` (the served version named by ``apiVersion``; its README names the upstream
releases); core kinds against the upstream
JSON schemas ``kubernetes-validate`` ships, in its strict flavour.

A CRD schema is OpenAPI v3.0's dialect of JSON Schema (Wright draft 00, which Draft 4 validates), with
Kubernetes' structural-schema meaning on top, which :func:`strict_schema` turns into plain JSON Schema:

- an object that lists ``properties`` knows no other field unless it says
  ``x-kubernetes-preserve-unknown-fields: true`` or gives ``additionalProperties``: the API server prunes
  an unknown field (and ``kubectl --validate=strict`` refuses it), so here it is an error;
- the root always allows ``apiVersion``, ``kind`` and ``metadata``, and ``metadata`` is an ObjectMeta;
- ``nullable: true`` admits null; ``x-kubernetes-int-or-string`` admits an integer or a string.

CEL rules (``x-kubernetes-validations``) are not evaluated: there is no CEL interpreter here. The tests
check the ones that matter for what we render (HTTPRoute match limits) by hand.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

SCHEMAS = Path(__file__).resolve().parent / "crds"
# A Kubernetes release kubernetes-validate ships schemas for; Istio supports it.
KUBERNETES_VERSION = "1.33"
CRD_GROUPS = ("istio.io", "gateway.networking.k8s.io")
JUNCTORS = ("allOf", "anyOf", "oneOf")

Schema = dict[str, Any]


class SchemasMissing(RuntimeError):
    """The vendored CRD folder is missing or incomplete."""


def schemas_dir() -> Path:
    """``tests/istio/crds``, vendored in the repository; an error when it is missing."""
    if not (SCHEMAS / "istio").is_dir() or not (SCHEMAS / "gateway-api").is_dir():
        raise SchemasMissing(
            f"{SCHEMAS} with istio/ and gateway-api/ is needed to validate the manifests offline: "
            "restore tests/istio/crds from git"
        )
    return SCHEMAS


@functools.cache
def object_meta() -> Schema:
    """Kubernetes' ObjectMeta, from kubernetes-validate's strict definitions, refs resolved."""
    base = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    folder = f"v{KUBERNETES_VERSION}.0-local-strict"
    definitions = json.loads((base / folder / "_definitions.json").read_text())["$defs"]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return resolve(definitions[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    meta: Schema = resolve(definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"])
    return meta


def strict_schema(node: Schema, *, in_junctor: bool = False) -> Schema:
    """A structural schema as strict JSON Schema (see the module docstring); the input is not changed."""
    out: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_schema(value, in_junctor=in_junctor or key == "not")
        elif key in JUNCTORS:
            out[key] = [strict_schema(sub, in_junctor=True) for sub in value]
        else:
            out[key] = value
    # Inside allOf/anyOf/oneOf/not a schema only adds checks to fields declared outside it: closing it
    # there would refuse the fields its siblings declare.
    closed = "properties" in node and "additionalProperties" not in node
    if closed and not in_junctor and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _root(schema: Schema) -> Schema:
    root = strict_schema(schema)
    properties = root.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = object_meta()
    root["additionalProperties"] = False
    root["required"] = sorted({*root.get("required", []), "apiVersion", "kind", "metadata"})
    return root


@functools.cache
def crd_schemas() -> Mapping[tuple[str, str], Schema]:
    """The ``openAPIV3Schema`` per ``(apiVersion, kind)`` of every served version of every shared CRD."""
    # libyaml's loader when present: the Istio file is 19,000 lines, ten times faster to read with it.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas: dict[tuple[str, str], Schema] = {}
    for path in sorted(schemas_dir().rglob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator | None:
    """The strict validator of one CRD version; None when no shared CRD serves it."""
    schema = crd_schemas().get((api_version, kind))
    if schema is None:
        return None
    strict = _root(schema)
    jsonschema.Draft4Validator.check_schema(strict)
    return jsonschema.Draft4Validator(strict)


def is_custom(resource: Mapping[str, Any]) -> bool:
    """Whether a resource is an Istio or Gateway API kind (as opposed to a core Kubernetes one)."""
    group = str(resource["apiVersion"]).partition("/")[0]
    return group.endswith(CRD_GROUPS)


def errors(resource: Mapping[str, Any]) -> list[str]:
    """Every reason the API server would refuse ``resource``; empty when it validates."""
    if is_custom(resource):
        api_version, kind = str(resource["apiVersion"]), str(resource["kind"])
        validator = crd_validator(api_version, kind)
        if validator is None:
            return [f"no CRD in {SCHEMAS} serves {api_version} {kind}"]
        found = sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path))
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]
    try:
        kubernetes_validate.validate(dict(resource), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path)) or '<root>'}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [str(error.message)]
    return []
