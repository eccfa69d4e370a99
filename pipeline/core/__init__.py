"""The stage skeleton and what every stage shares: the run layout, the column contract, the
base config model, file integrity and shard reading/writing."""
