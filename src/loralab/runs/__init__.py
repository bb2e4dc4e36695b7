"""What a run leaves behind and reads back: atomic checkpoints with RNG state and resume checks
(checkpoints.py), the metrics CSV and W&B loggers (loggers.py), offline W&B run files read
without wandb (wandb_offline.py)."""
