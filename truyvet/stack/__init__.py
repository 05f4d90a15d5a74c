"""Starts, stops and reports the local stack (Kafka, ClickHouse, the three services) under ``.local/``.

The files operators edit live in ``deploy/``; this package only reads them.
"""
