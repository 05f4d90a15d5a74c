"""``python -m streams``: run one faust worker (several may run; they share the partitions)."""

import gc
import logging
import sys

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from prometheus_client import start_http_server

from streams.app import app, settings
from truyvet.stack.kafka import ensure_topics

logger = logging.getLogger(__name__)


def ensure_changelogs() -> None:
    """Create every table's changelog topic with the table's partition count before faust starts.

    Left to faust, a changelog can be auto-created by the broker (``num.partitions``, compaction off)
    when something touches it first; a changelog partitioned unlike ``scans`` puts a
    person's state on another partition than their scans.
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        for table in app.tables.values():
            topic = table.changelog_topic
            name = topic.get_topic_name()
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact", **(topic.config or {})}
            try:
                admin.create_topics([NewTopic(name, table.partitions or settings.scans_partitions, 1,
                                              topic_configs={k: str(v) for k, v in configs.items()})])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def main() -> None:
    start_http_server(settings.worker_metrics_port, addr=settings.bind_host)
    ensure_topics(settings)
    ensure_changelogs()
    (settings.data_dir / "streams").mkdir(parents=True, exist_ok=True)  # faust's datadir lives under it
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    # The worker allocates a few tuples and dicts per scan and holds every person's state: with
    # CPython's default thresholds (700, 10, 10) the cyclic collector ran often enough to show as
    # ~15% of the worker's GIL time (py-spy, on the allocation sites). Objects made at start-up are
    # frozen out of it and it runs less often; reference counting frees nearly everything anyway.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    app.main()


if __name__ == "__main__":
    main()
