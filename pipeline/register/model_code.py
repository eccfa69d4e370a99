"""The model-from-code entry MLflow runs when it loads a registered version (no pickle)."""

from mlflow.models import set_model

from pipeline.register.pyfunc import TextGenerator

set_model(TextGenerator())
