"""Model classification: is this model's weights ECCN 4E091 or EAR99, and on what basis.

ECCN 4E091 controls the weights of a model trained with 10^26 or more
operations (all training counts, fine-tuning included), unless the weights
are published, or the model is less capable than the most capable model whose
weights are published. An operator may always classify more strictly than
the facts require, never more loosely.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gateway.errors import InvalidInput
from gateway.policy.pack import Eccn

CONTROL_THRESHOLD_OPS = Decimal("1e26")
_CITATION = "ECCN 4E091, 15 CFR Part 774 Supp. No. 1 (90 FR 4544)"


@dataclass(frozen=True)
class Classification:
    eccn: Eccn
    basis: str


def parse_training_ops(value: str) -> Decimal:
    """Operations used in training, exactly; scientific notation welcome (``3e26``)."""
    try:
        ops = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"training operations {value!r} is not a number") from None
    if not ops.is_finite() or ops < 0:
        raise InvalidInput("training operations must be a non-negative number")
    return ops


def classify(
    *,
    declared: Eccn,
    training_ops: Decimal | None,
    weights_published: bool = False,
    below_frontier_reason: str | None = None,
) -> Classification:
    """The classification the facts support, or the operator's stricter one."""
    if training_ops is not None and (not training_ops.is_finite() or training_ops < 0):
        raise InvalidInput("training operations must be a non-negative number")
    if below_frontier_reason is not None and not below_frontier_reason.strip():
        raise InvalidInput("a below-frontier finding needs a reason")
    computed = _computed(training_ops, weights_published, below_frontier_reason)
    if computed is None:
        return Classification(
            declared, f"declared {declared.value} by the operator; training operations not recorded"
        )
    if computed.eccn is declared:
        return computed
    if declared is Eccn.AI_MODEL_WEIGHTS:
        return Classification(
            declared,
            f"declared 4E091 by the operator, stricter than the facts require ({computed.basis})",
        )
    raise InvalidInput(
        f"cannot classify as {declared.value}: {computed.basis}, so it is {computed.eccn.value}"
    )


def _computed(
    training_ops: Decimal | None, weights_published: bool, below_frontier_reason: str | None
) -> Classification | None:
    if weights_published:
        return Classification(Eccn.EAR99, "weights are published (15 CFR 734.7), so not 4E091")
    if training_ops is None:
        return None
    ops = f"{training_ops:.2E}"
    if training_ops < CONTROL_THRESHOLD_OPS:
        return Classification(Eccn.EAR99, f"trained with {ops} operations, below 1E+26")
    if below_frontier_reason is not None:
        return Classification(
            Eccn.EAR99,
            f"trained with {ops} operations but less capable than the most capable "
            f"published model: {below_frontier_reason.strip()}",
        )
    return Classification(
        Eccn.AI_MODEL_WEIGHTS,
        f"trained with {ops} operations (at least 1E+26), weights unpublished; {_CITATION}",
    )
