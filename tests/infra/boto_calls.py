"""Which AWS operations gateway/ calls, read from its source, and the IAM actions they need.

The gateway's IAM policy must grant exactly what the code calls. Rather than
keep a second list by hand, the calls are found in the code: every method call
whose name is an S3 or KMS operation of botocore's service models and whose
arguments look like a boto3 client call (keywords only, each capitalised, or
``**params``), plus the string operation names given to ``get_paginator`` and
``generate_presigned_url``, plus boto3's S3 transfer methods. Calls such as
``AESGCM(key).encrypt(nonce, data, aad)`` take positional arguments and are
not AWS calls. What cannot be read statically (an operation name in a
variable, a boto3 resource object) is an error, so nothing is missed quietly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import botocore.session
from botocore import xform_name

SERVICES = ("s3", "kms")
# Methods boto3 adds to an S3 client on top of the API: managed (multipart) transfers.
_UPLOAD_PARTS = (
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",  # s3transfer aborts a multipart upload that fails
)
TRANSFER_METHODS: dict[str, tuple[str, ...]] = {
    "upload_fileobj": _UPLOAD_PARTS,
    "upload_file": _UPLOAD_PARTS,
    "download_fileobj": ("HeadObject", "GetObject"),
    "download_file": ("HeadObject", "GetObject"),
}
# Calls that name another operation in their first argument.
_NAMING_METHODS = ("get_paginator", "can_paginate", "generate_presigned_url")
_UNKNOWN = None  # the keyword names of a call whose ``**params`` could not be resolved


class UnreadableCall(Exception):
    """A call whose AWS operation cannot be read from the source."""


@dataclass(frozen=True)
class AwsCall:
    module: str  # path relative to the repository root, e.g. gateway/storage/s3.py
    line: int
    service: str  # "s3" or "kms"
    operation: str  # the API name, e.g. PutObject
    # Parameter names passed (Bucket, Key, VersionId...); None when **params hides them.
    parameters: frozenset[str] | None

    def __str__(self) -> str:
        return f"{self.module}:{self.line} {self.service} {self.operation}"


def _operations() -> dict[str, tuple[str, str]]:
    """Python method name -> (service, API operation name), for every service in SERVICES."""
    session = botocore.session.get_session()
    found: dict[str, tuple[str, str]] = {}
    for service in SERVICES:
        for operation in session.get_service_model(service).operation_names:
            method = xform_name(operation)
            if method in found:
                raise UnreadableCall(
                    f"{method} is an operation of both {found[method][0]} and {service}"
                )
            found[method] = (service, operation)
    return found


OPERATIONS = _operations()


def _looks_like_client_call(call: ast.Call) -> bool:
    # boto3 client operations take keyword arguments only, named as in the API.
    return not call.args and all(kw.arg is None or kw.arg[:1].isupper() for kw in call.keywords)


def _dict_keys(node: ast.expr, assignments: dict[str, ast.expr]) -> frozenset[str] | None:
    if isinstance(node, ast.Name):
        node = assignments.get(node.id, node)
    if isinstance(node, ast.Dict) and all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys
    ):
        return frozenset(str(k.value) for k in node.keys if isinstance(k, ast.Constant))
    return _UNKNOWN


def _parameters(
    keywords: Iterable[ast.keyword], assignments: dict[str, ast.expr]
) -> frozenset[str] | None:
    names: set[str] = set()
    for keyword in keywords:
        if keyword.arg is not None:
            names.add(keyword.arg)
            continue
        spread = _dict_keys(keyword.value, assignments)
        if spread is None:
            return _UNKNOWN
        names |= spread
    return frozenset(names)


def _assignments(scope: ast.AST) -> dict[str, ast.expr]:
    """Names bound once to a value in ``scope`` (``params = {...}``), to resolve ``**params``."""
    bound: dict[str, ast.expr] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                bound[target.id] = node.value
    return bound


def _scopes(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.Call]]:
    """Each call with the innermost function (or the module) it sits in."""

    def visit(node: ast.AST, scope: ast.AST) -> Iterator[tuple[ast.AST, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            if isinstance(child, ast.Call):
                yield scope, child
            yield from visit(child, inner)

    yield from visit(tree, tree)


def calls_in_source(source: str, module: str) -> list[AwsCall]:
    tree = ast.parse(source, filename=module)
    found: list[AwsCall] = []
    for scope, call in _scopes(tree):
        if not isinstance(call.func, ast.Attribute):
            continue
        method, line = call.func.attr, call.lineno
        first = call.args[0] if call.args else None
        if method == "resource" and isinstance(first, ast.Constant) and first.value in SERVICES:
            raise UnreadableCall(f"{module}:{line}: boto3 resources are not derived; use a client")
        if method in _NAMING_METHODS:
            named = first
            if not isinstance(named, ast.Constant) or not isinstance(named.value, str):
                raise UnreadableCall(f"{module}:{line}: {method} with an operation not written out")
            if named.value not in OPERATIONS:
                continue  # e.g. another service's paginator; not S3 or KMS
            service, operation = OPERATIONS[named.value]
            params = next((kw.value for kw in call.keywords if kw.arg == "Params"), None)
            keys = _dict_keys(params, _assignments(scope)) if params is not None else frozenset()
            found.append(AwsCall(module, line, service, operation, keys))
        elif method in TRANSFER_METHODS and len(call.args) >= 3:
            # upload_fileobj(source, bucket, key, ExtraArgs={...}): boto3's own signature;
            # ExtraArgs are the request parameters of every part of the transfer.
            extra = next((kw.value for kw in call.keywords if kw.arg == "ExtraArgs"), None)
            keys = _dict_keys(extra, _assignments(scope)) if extra is not None else frozenset()
            for operation in TRANSFER_METHODS[method]:
                found.append(AwsCall(module, line, "s3", operation, keys))
        elif method in OPERATIONS and _looks_like_client_call(call):
            service, operation = OPERATIONS[method]
            keys = _parameters(call.keywords, _assignments(scope))
            found.append(AwsCall(module, line, service, operation, keys))
    return found


def calls_in_tree(root: Path, package: str = "gateway") -> list[AwsCall]:
    found: list[AwsCall] = []
    for path in sorted((root / package).rglob("*.py")):
        module = path.relative_to(root).as_posix()
        found += calls_in_source(path.read_text(encoding="utf-8"), module)
    return found
