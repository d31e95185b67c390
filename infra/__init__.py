"""Local infrastructure helpers (single-node Kafka for tests, demo and CI)."""
