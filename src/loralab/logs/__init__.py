"""Reading logged runs back: the metrics CSV and offline W&B run files."""
