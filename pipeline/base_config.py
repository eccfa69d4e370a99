"""The base every config model inherits: strict keys, documented fields."""

import hashlib
import json

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; field docstrings become descriptions (CLI help, UI form)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


def config_hash(section: BaseModel) -> str:
    """Stable hash of a config section; part of each stage's manifest and cache key."""
    blob = json.dumps(section.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
