"""msqcore: Apache Druid SQL-based ingestion (MSQ) without Java."""

__version__ = "0.1.0"
