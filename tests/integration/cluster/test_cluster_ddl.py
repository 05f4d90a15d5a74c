"""ClickHouse 18.16's ON CLUSTER DDL worker can end for good after ZooKeeper was away ("Server expects
that DDL task ... should be processed, but it was already processed according to ZK ... will terminate").
The server keeps serving, but every later ``ON CLUSTER`` statement waits for it until its timeout.
``truyvet status`` names such a server ``ddl-stalled`` and ``truyvet up --cluster`` restarts it
(truyvet/stack/cluster.py ``ddl_stalled``); the ZooKeeper fault scenario meets the real thing now and then
(tests/integration/cluster/test_cluster_faults.py), this test writes the worker's last words into one
server's error log, as 18.16 does, to see both steps every run."""

from __future__ import annotations

from datetime import datetime

import pytest

from truyvet.schema import connect
from truyvet.stack.cluster import DDL_WORKER_ENDED, DDL_WORKER_ENDED_ZK, ddl_stalled
from truyvet.stack.cluster_stack import ClusterStack

pytestmark = [pytest.mark.integration]


def _health(cluster, name: str) -> str:  # noqa: ANN001
    return next(row["health"] for row in ClusterStack(cluster.nodes.settings).infra_status() if row["name"] == name)


LAST_WORDS = {
    "already processed": f"{DDL_WORKER_ENDED}:: Code: 49, e.displayText() = DB::Exception: Server expects that "
                         "DDL task query-0000000067 should be processed, but it was already processed according to ZK",
    "replicated ALTER race": f"{DDL_WORKER_ENDED_ZK}: Code: 999, e.displayText() = Coordination::Exception: Node "
                             "exists, path: /clickhouse/task_queue/ddl/query-0000000354/shards/a,b/executed, Stack "
                             "trace:",  # ... the trace, then ". Terminating."
}


@pytest.mark.parametrize("words", list(LAST_WORDS))
def test_a_server_whose_ddl_worker_ended_is_shown_and_restarted_by_up(cluster, words: str) -> None:  # noqa: ANN001
    node = cluster.nodes.clickhouse[3]
    assert not ddl_stalled(node), "stalled before the test"
    assert _health(cluster, node.name) == "up"
    with (node.home / "logs" / "error.log").open("a") as log:
        log.write(f"{datetime.now().strftime('%Y.%m.%d %H:%M:%S.%f')} [ 40 ] {{}} <Error> {LAST_WORDS[words]} "
                  "(written by the test)\n")
    assert ddl_stalled(node)
    assert _health(cluster, node.name) == "ddl-stalled"

    before = node.server_pid()
    cluster.nodes.up()  # what `truyvet up --cluster` does
    assert node.server_pid() not in (None, before)
    # (once the restarted server, up within a second, was taken for the one whose words were written)
    assert not ddl_stalled(node), "still stalled after the restart"
    assert _health(cluster, node.name) == "up"
    db = connect(cluster.settings)
    try:  # an ON CLUSTER statement is done by all four servers again
        name = f"{cluster.settings.clickhouse_database}.ddl_probe"
        cluster_name = cluster.settings.clickhouse_cluster
        hosts = db.execute(f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER {cluster_name} (x UInt8) ENGINE = Log")
        assert len(hosts) == 4, hosts
        db.execute(f"DROP TABLE IF EXISTS {name} ON CLUSTER {cluster_name}")
    finally:
        db.close()
