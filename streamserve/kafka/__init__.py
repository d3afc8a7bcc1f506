"""Thin Kafka clients: configs, delivery tracking, dead letters, topic admin."""
