"""Accuracy: option scoring from next-token logits (fast, no parsing)."""
