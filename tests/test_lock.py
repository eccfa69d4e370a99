"""The install is the lock: every package pinned in requirements.lock is installed at exactly that
version, and the lock satisfies every requirement of pyproject.toml (so it was refreshed after the
last dependency change). A fresh `make setup` therefore reproduces the environment CI tested."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def locked() -> dict[str, Version]:
    text = (REPO / "requirements.lock").read_text()
    return {canonicalize_name(name): Version(v) for name, v in PIN.findall(text)}


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]
    ]


def test_every_locked_package_is_installed_at_its_locked_version():
    wrong = {}
    for name, version in locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (str(version), str(installed))
    assert not wrong, f"installed differs from requirements.lock (locked, installed): {wrong}"


def test_the_lock_satisfies_pyproject():
    pins = locked()
    unmet = [
        str(req)
        for req in declared()
        if req.marker is None or req.marker.evaluate()
        if canonicalize_name(req.name) not in pins
        or not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)
    ]
    assert not unmet, f"requirements.lock is stale, run `make lock`: {unmet}"


def test_prefect_gets_the_sqlalchemy_its_scheduler_works_with():
    # prefect 3.8.8's scheduler service creates no runs on SQLAlchemy 2.1 (bulk DML error).
    pins = locked()
    assert pins["prefect"] == Version("3.8.8")
    assert Version("2.0") <= pins["sqlalchemy"] < Version("2.1")
    assert pins["torch"].local == "cpu"  # never the multi-GB CUDA build
