"""Data-recipe ablations: variants of the data stages, one fixed eval set, bits per byte, paired
bootstrap, report. The flow (`flows/ablate.py`) trains one proxy model per variant and seed."""
