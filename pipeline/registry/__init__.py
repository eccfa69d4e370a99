"""The model registry: MLflow pyfunc packaging, registration with lineage, aliases, HF export.

Light on purpose: this package ships inside every registered model (`code_paths`), and the
serving process imports it without the rest of the pipeline's dependencies.
"""
