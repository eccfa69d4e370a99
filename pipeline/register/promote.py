"""Aliases of registered versions: `challenger` for every new version, `champion` by the gate.

`champion` moves to a new version only when its evaluation gate passed and it beats the current
champion on the gate metric (policy `gate_and_better`); `lmpipe promote` forces the move and the
version carries a tag saying so.
"""

from __future__ import annotations

import getpass
import math
import time
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.register.config import RegistryConfig
from pipeline.register.lineage import TAG

CHAMPION, CHALLENGER = "champion", "challenger"
LOWER_IS_BETTER = ("loss", "ppl", "perplexity", "error", "bpb", "bits_per")


@dataclass
class Promotion:
    """Whether a version becomes champion, and why (recorded in a tag and the manifest)."""

    promote: bool
    reason: str
    previous: str | None = None
    """The champion version before this decision."""


def lower_is_better(metric: str, mode: str = "auto") -> bool:
    if mode != "auto":
        return mode == "min"
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def alias_version(client: MlflowClient, name: str, alias: str):
    """The model version an alias points to, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def decide(client: MlflowClient, name: str, gate: dict[str, Any], cfg: RegistryConfig) -> Promotion:
    """Should the version with this gate verdict replace the current champion?"""
    if cfg.promote == "never":
        return Promotion(False, "policy `never`: promote with `lmpipe promote`")
    if not gate.get("passed"):
        return Promotion(False, f"gate not passed ({gate.get('rule')})")
    champ = alias_version(client, name, CHAMPION)
    if champ is None:
        return Promotion(True, "gate passed; no champion yet")
    if cfg.promote == "gate":
        return Promotion(True, "gate passed (policy `gate`)", str(champ.version))
    metric, value = gate.get("metric"), _number(gate.get("value"))
    their_metric = champ.tags.get(TAG + "gate.metric")
    theirs = _number(champ.tags.get(TAG + "gate.value"))
    if their_metric != metric or theirs is None or value is None:
        why = f"champion v{champ.version} has no comparable `{metric}`"
        return Promotion(False, f"{why}; promote with `lmpipe promote`", str(champ.version))
    low = lower_is_better(str(metric), cfg.gate_metric_mode)
    if cfg.gate_metric_mode == "auto" and gate.get("higher_is_better") is not None:
        low = not gate["higher_is_better"]  # the evaluate stage says which way is better
    better = value < theirs if low else value > theirs
    verdict = "beats" if better else "does not beat"
    reason = f"{metric} {value:.6g} {verdict} champion v{champ.version} ({theirs:.6g})"
    return Promotion(better, reason, str(champ.version))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def apply(client: MlflowClient, name: str, version: str, decision: Promotion, how: str) -> None:
    """Record the decision on the version; move `champion` when it says so.

    The reason tag is written after the others and before the alias: a version with a reason
    holds the whole decision, which a rerun after a kill completes (`recorded`) as it is.
    """
    tags = {TAG + "promotion": how if decision.promote else "no"}
    if decision.promote:
        tags[TAG + "promotion.at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if decision.previous:
            tags[TAG + "promotion.previous"] = decision.previous
    tags[TAG + "promotion.reason"] = decision.reason
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)


def recorded(version_tags: dict[str, str]) -> Promotion | None:
    """The decision already written on a version (see `apply`), or None."""
    reason = version_tags.get(TAG + "promotion.reason")
    if reason is None:
        return None
    promoted = version_tags.get(TAG + "promotion", "no") != "no"
    return Promotion(promoted, reason, version_tags.get(TAG + "promotion.previous"))


def force_promote(client: MlflowClient, name: str, version: str, note: str = "") -> Promotion:
    """`lmpipe promote NAME VERSION`: make `version` champion whatever its gate said."""
    mv = client.get_model_version(name, version)  # a clear error if it does not exist
    champ = alias_version(client, name, CHAMPION)
    user = getpass.getuser()
    reason = f"forced by {user} with `lmpipe promote`" + (f": {note}" if note else "")
    decision = Promotion(True, reason, str(champ.version) if champ else None)
    apply(client, name, str(mv.version), decision, how="forced")
    return decision
