"""infra/terraform read with python-hcl2, as plain values (no quotes kept, blocks as lists)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "infra" / "terraform"
_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_REFERENCE = re.compile(r"^\$\{([a-z0-9_]+\.[a-z0-9_]+)\.(arn|id)\}(/\*)?$")


def load(directory: Path = TERRAFORM_DIR) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"resource.aws_s3_bucket": {"weights": {...}}, "data.aws_iam_policy_document": ...}``."""
    blocks: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open(encoding="utf-8") as source:
            parsed = hcl2.load(source, serialization_options=_OPTIONS)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_, named in block.items():
                    for name, body in named.items():
                        blocks.setdefault(f"{kind}.{type_}", {})[name] = body
    return blocks


def reference(expression: str) -> str:
    """``${aws_s3_bucket.weights.arn}/*`` -> ``aws_s3_bucket.weights/*``; anything else fails."""
    match = _REFERENCE.fullmatch(expression)
    if match is None:
        raise ValueError(f"{expression!r} is not a reference to one resource's arn or id")
    return match[1] + (match[3] or "")
