"""spark-control: the thin control plane for WhisperX on the Spark nodes (CONTRACT section 3)."""

__version__ = "0.1.0"
