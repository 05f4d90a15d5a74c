"""``python -m streams``: run one faust worker (several may run; they share the partitions)."""

import sys

from prometheus_client import start_http_server

from streams.app import app, settings


def main() -> None:
    start_http_server(settings.worker_metrics_port, addr=settings.bind_host)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
