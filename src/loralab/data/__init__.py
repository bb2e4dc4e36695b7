"""Turning task records into model inputs: tokenisation with label masking, batching and the
resumable sampler, and the LightningDataModule."""
