"""The evaluation harness (scripts/eval/)."""
