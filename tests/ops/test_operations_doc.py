"""docs/OPERATIONS.md and the alert rules cannot drift from the metrics of gateway/metrics.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway import metrics

REPO = Path(__file__).parents[2]
OPERATIONS = REPO / "docs" / "OPERATIONS.md"
RULES = REPO / "infra" / "prometheus" / "alerts.yml"
DEFINED = [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]


def exposed_name(metric: MetricWrapperBase) -> str:
    """The name a scrape shows: a counter's carries ``_total``."""
    [family] = metric.describe()
    return f"{family.name}_total" if family.type == "counter" else family.name


def series(metric: MetricWrapperBase) -> dict[str, set[str]]:
    """Every series name a query may use for ``metric``, with the labels it carries."""
    [family] = metric.describe()
    labels = set(metric._labelnames)
    if family.type == "histogram":
        return {
            f"{family.name}_bucket": labels | {"le"},
            f"{family.name}_count": labels,
            f"{family.name}_sum": labels,
        }
    return {exposed_name(metric): labels}


SERIES = {name: labels for metric in DEFINED for name, labels in series(metric).items()}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_metrics_module_defines_the_metrics_the_issue_asks_for() -> None:
    names = {exposed_name(m) for m in DEFINED}
    assert {
        "weightgate_decisions_total",
        "weightgate_grant_seconds",
        "weightgate_redirect_seconds",
        "weightgate_audit_append_batch_size",
        "weightgate_audit_append_queue_depth",
        "weightgate_audit_commit_seconds",
        "weightgate_checkpoint_lag_seconds",
        "weightgate_checkpoint_publish_failures_total",
        "weightgate_webhook_queue_depth",
        "weightgate_webhook_notifications_dropped_total",
        "weightgate_jwks_refresh_failures_total",
        "weightgate_quota_refusals_total",
        "weightgate_keystore_errors_total",
    } <= names


@pytest.mark.parametrize("metric", DEFINED, ids=exposed_name)
def test_every_metric_is_documented_with_its_labels(metric: MetricWrapperBase) -> None:
    name = exposed_name(metric)
    rows = [
        line
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"| `{name}` |")
    ]
    assert len(rows) == 1, f"{name} has no row of its own in docs/OPERATIONS.md"
    for label in metric._labelnames:
        assert f"`{label}`" in rows[0], f"{name}: label {label} is not documented"


def test_the_rules_file_is_prometheus_rules_each_documented() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    doc = OPERATIONS.read_text(encoding="utf-8")
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert f"| `{rule['alert']}` |" in doc, f"{rule['alert']} is not in docs/OPERATIONS.md"
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_names_only_metrics_and_labels_that_exist(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    used = re.findall(r"\bweightgate_\w+", expr)
    assert used, "a rule about weightgate names one of its metrics"
    for name in used:
        assert name in SERIES, f"{name} is not a series gateway/metrics.py exposes"
    for name, matchers in re.findall(r"\b(weightgate_\w+)\{([^}]*)\}", expr):
        for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
            assert label in SERIES[name], f"{name} has no label {label}"
    known = set().union(*(SERIES[name] for name in used))
    for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        for label in (part.strip() for part in grouping.split(",")):
            assert label in known, f"no metric of the rule has the label {label}"
    for label in re.findall(r"\$labels\.(\w+)", str(rule["annotations"])):
        assert label in known
