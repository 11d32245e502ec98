"""Model classification: the facts decide 4E091; an operator may be stricter, never looser."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.errors import InvalidInput
from gateway.policy.classification import classify
from gateway.policy.pack import Eccn

E4 = Eccn.AI_MODEL_WEIGHTS


@pytest.mark.parametrize(
    ("ops", "published", "below", "declared", "expected", "basis"),
    [
        ("1e26", False, None, E4, E4, "at least 1E+26"),
        ("3e26", False, None, E4, E4, "weights unpublished"),
        ("9.99e25", False, None, Eccn.EAR99, Eccn.EAR99, "below 1E+26"),
        ("5e26", True, None, Eccn.EAR99, Eccn.EAR99, "weights are published"),
        (
            "5e26",
            False,
            "scores below Llama-4 on MMLU-Pro",
            Eccn.EAR99,
            Eccn.EAR99,
            "scores below Llama-4",
        ),
        ("1e24", False, None, E4, E4, "stricter than the facts require"),
        (None, False, None, Eccn.EAR99, Eccn.EAR99, "not recorded"),
    ],
    ids=[
        "at-threshold",
        "above",
        "just-below",
        "published",
        "below-frontier",
        "operator-stricter",
        "undeclared-ops",
    ],
)
def test_classification_and_its_basis(
    ops: str | None, published: bool, below: str | None, declared: Eccn, expected: Eccn, basis: str
) -> None:
    result = classify(
        declared=declared,
        training_ops=None if ops is None else Decimal(ops),
        weights_published=published,
        below_frontier_reason=below,
    )
    assert result.eccn is expected
    assert basis in result.basis


def test_frontier_model_cannot_be_declared_ear99() -> None:
    with pytest.raises(InvalidInput, match="so it is 4E091"):
        classify(declared=Eccn.EAR99, training_ops=Decimal("2e26"))


def test_fine_tuning_counts_toward_the_threshold() -> None:
    pretraining, fine_tuning = Decimal("9e25"), Decimal("2e25")
    assert classify(declared=E4, training_ops=pretraining + fine_tuning).eccn is E4
    with pytest.raises(InvalidInput):
        classify(declared=Eccn.EAR99, training_ops=pretraining + fine_tuning)


@pytest.mark.parametrize("ops", ["-1", "NaN", "Infinity"])
def test_nonsense_operation_counts_are_refused(ops: str) -> None:
    with pytest.raises(InvalidInput, match="non-negative"):
        classify(declared=E4, training_ops=Decimal(ops))


def test_below_frontier_finding_needs_a_reason() -> None:
    with pytest.raises(InvalidInput, match="needs a reason"):
        classify(declared=Eccn.EAR99, training_ops=Decimal("2e26"), below_frontier_reason="  ")
