"""The registered quality classifier: an MLflow `PythonModel`, texts in, `quality_score` out.

Logged as "models from code" (`model_code.py`), so loading it unpickles nothing; the model's
arrays are its one artifact (`quality_model.npz`, loaded with `allow_pickle=False`).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

ARTIFACT = "quality_model"
TEXT_COLUMN = "text"


class QualityScorer(mlflow.pyfunc.PythonModel):
    """A DataFrame with a `text` column (or a list of strings) in, one score per text out."""

    def load_context(self, context) -> None:
        from pipeline.quality.scorer import QualityModel

        self.model = QualityModel.load(context.artifacts[ARTIFACT])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[float]:
        # Hinted as a DataFrame (MLflow hands lists and strings over as one): no "Add type
        # hints" warning at every log, and no schema that would refuse a column's name.
        if hasattr(model_input, "columns"):
            column = TEXT_COLUMN if TEXT_COLUMN in model_input.columns else model_input.columns[0]
            texts = model_input[column].tolist()
        else:
            texts = [model_input] if isinstance(model_input, str) else list(model_input)
        return [float(s) for s in self.model.score([str(t) for t in texts])]
