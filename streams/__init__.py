"""Stream processing: validate scans, deduplicate, build visits, write them to ClickHouse."""
