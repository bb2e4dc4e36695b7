"""Tasks, prompt templates, tokenisation with label masking, and the LightningDataModule."""
