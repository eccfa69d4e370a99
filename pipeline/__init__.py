"""lmpipe: raw web text to a registered, servable language model.

`pipeline` is the library: every stage is a plain function `run_<stage>(cfg, inputs, output_dir)`.
It never imports prefect; the Prefect layer lives in `flows/`.
"""

__version__ = "0.1.0"
