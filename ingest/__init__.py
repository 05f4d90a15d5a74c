"""Ingest edge: venue registration, signed QR codes, scan intake into Kafka."""
