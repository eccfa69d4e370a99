"""The champion rule on a real sqlite registry (versions created directly: no model logging)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from pipeline.register.config import RegistryConfig
from pipeline.register.promote import CHAMPION, apply, decide, force_promote, lower_is_better


def gate(value, passed=True, metric="val_loss", **extra):
    return {"metric": metric, "value": value, "passed": passed, "rule": "r", **extra}


@pytest.fixture
def registry(local_store):
    client = MlflowClient()
    client.create_registered_model("m")

    def version(value=None, metric="val_loss", champion=False) -> str:
        tags = (
            {} if value is None else {"lmpipe.gate.metric": metric, "lmpipe.gate.value": str(value)}
        )
        v = str(client.create_model_version("m", "file:///nowhere", tags=tags).version)
        if champion:
            client.set_registered_model_alias("m", CHAMPION, v)
        return v

    return client, version


def test_lower_loss_beats_the_champion(registry):
    client, version = registry
    version(4.0, champion=True)
    cfg = RegistryConfig()
    assert decide(client, "m", gate(3.9), cfg).promote
    worse = decide(client, "m", gate(4.1), cfg)
    assert not worse.promote and worse.previous == "1" and "does not beat" in worse.reason
    assert not decide(client, "m", gate(4.0), cfg).promote  # a tie keeps the champion


def test_direction_comes_from_the_gate_or_the_config(registry):
    client, version = registry
    version(0.5, metric="accuracy", champion=True)
    assert decide(
        client, "m", gate(0.6, metric="accuracy", higher_is_better=True), RegistryConfig()
    ).promote
    assert not decide(
        client, "m", gate(0.6, metric="accuracy"), RegistryConfig(gate_metric_mode="min")
    ).promote
    assert decide(
        client, "m", gate(0.6, metric="accuracy"), RegistryConfig(gate_metric_mode="max")
    ).promote
    assert lower_is_better("val_ppl") and not lower_is_better("accuracy")


def test_policies_and_incomparable_champions(registry):
    client, version = registry
    assert decide(client, "m", gate(9.0), RegistryConfig()).reason == "gate passed; no champion yet"
    assert not decide(client, "m", gate(1.0), RegistryConfig(promote="never")).promote
    assert not decide(client, "m", gate(1.0, passed=False), RegistryConfig()).promote
    version(4.0, metric="val_ppl", champion=True)
    other = decide(client, "m", gate(1.0), RegistryConfig())
    assert not other.promote and "lmpipe promote" in other.reason
    assert decide(client, "m", gate(9.0), RegistryConfig(promote="gate")).promote


def test_apply_and_force_record_why(registry):
    client, version = registry
    first, second = version(4.0, champion=True), version(5.0)
    apply(client, "m", second, decide(client, "m", gate(5.0), RegistryConfig()), how="auto")
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == first
    assert client.get_model_version("m", second).tags["lmpipe.promotion"] == "no"
    force_promote(client, "m", second)
    tags = client.get_model_version("m", second).tags
    assert str(client.get_model_version_by_alias("m", CHAMPION).version) == second
    assert tags["lmpipe.promotion"] == "forced" and tags["lmpipe.promotion.previous"] == first
    with pytest.raises(Exception, match="not found|does not exist|RESOURCE_DOES_NOT_EXIST"):
        force_promote(client, "m", "99")
