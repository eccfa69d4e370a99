"""The model-from-code entry MLflow runs when it loads a registered quality classifier."""

from mlflow.models import set_model

from pipeline.quality.pyfunc import QualityScorer

set_model(QualityScorer())
