"""streamserve: score Kafka events in real time, learn from delayed labels, hot-swap snapshots."""

__version__ = "0.1.0"
