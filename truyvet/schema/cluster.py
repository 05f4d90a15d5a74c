"""The cluster form of the migrations (issue 12): the same single-node SQL files, turned mechanically into
``ON CLUSTER`` DDL with replicated local tables and ``Distributed`` tables in front of them.

Every ``CREATE TABLE t (...) ENGINE = XMergeTree(args) ...`` becomes

- ``t_local`` on every server: ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/<db>.t_local',
  '{replica}', args)`` with the same columns, partitioning, sorting key and settings;
- ``t``: ``Distributed(<cluster>, <db>, t_local, cityHash64(<first sorting-key column>))``, so every
  reader and writer keeps using the name ``t``.

Sharding by the first sorting-key column keeps every version of a row (ReplacingMergeTree) on one shard,
so ``FINAL`` and ``argMax(..., version)`` through the ``Distributed`` table see all of a key's versions
together: visits by person, cases by case, alerts by ward, tokens by token hash, venues by venue...
A materialized view ``v TO t AS SELECT ... FROM s`` runs on the local tables (``s_local`` -> ``t_local``)
of each server, so the rows it derives stay on the shard of their source (``visits_by_venue`` holds,
on each shard, that shard's persons' visits in venue order; readers go through ``visits_by_venue``).
``DROP``, ``RENAME``, ``ALTER`` and ``TRUNCATE`` are applied to both forms; ``INSERT ... SELECT`` runs
through the ``Distributed`` tables as written. Anything else is refused with :class:`ClusterSchemaError`
rather than guessed. docs/schema.md ("Cluster form") has the rules and an example.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from truyvet.exceptions import TruyvetError

LOCAL = "_local"
_IDENT = r"`?((?:[A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*)`?"  # [db.]name
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_IDENT}\s*\(", re.I | re.S)
_ENGINE = re.compile(r"^\s*ENGINE\s*=\s*([A-Za-z]*MergeTree)\s*(\((.*?)\))?(?=\s|$)", re.I | re.S)
_ANY_ENGINE = re.compile(r"^\s*ENGINE\s*=", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+(\(([^()]*(?:\([^()]*\))?[^()]*)\)|[^\s]+)", re.I | re.S)
_MV = re.compile(rf"^CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?{_IDENT}\s+TO\s+{_IDENT}\s+AS\s+(.*)$",
                 re.I | re.S)
_DROP = re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_IDENT}\s*$", re.I | re.S)
_RENAME = re.compile(r"^RENAME\s+TABLE\s+(.*)$", re.I | re.S)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+{_IDENT}\s+(.*)$", re.I | re.S)
_TRUNCATE = re.compile(rf"^TRUNCATE\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_IDENT}\s*$", re.I | re.S)
_INSERT = re.compile(r"^INSERT\s+INTO\s+", re.I)
_CREATE_DATABASE = re.compile(rf"^CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_IDENT}\s*$", re.I | re.S)
_COLUMN_ALTER = re.compile(r"^\s*(ADD|DROP|MODIFY|COMMENT|CLEAR)\s+COLUMN\b", re.I)
_FROM = re.compile(rf"\b(FROM|JOIN)\s+{_IDENT}", re.I)


class ClusterSchemaError(TruyvetError):
    """A migration statement the cluster transform does not know how to distribute."""


@dataclass
class ClusterSchema:
    """Turns single-node statements into their cluster form, remembering each table's sharding key.

    Feed it every migration in order (also those already applied, so renamed tables keep their key).
    """

    database: str
    cluster: str = "truyvet"
    shard_keys: dict[str, str] = field(default_factory=dict)  # table -> sharding expression
    views: set[str] = field(default_factory=set)

    @property
    def on(self) -> str:
        return f"ON CLUSTER {self.cluster}"

    def q(self, table: str) -> str:
        """``db.table``: names of the migrations' own database are qualified with it."""
        return table if "." in table else f"{self.database}.{table}"

    def key(self, table: str) -> str:
        """The name the registry knows a table by: ``db.table``."""
        return self.q(table)

    def parts(self, table: str) -> tuple[str, str]:
        database, _, name = self.q(table).partition(".")
        return database, name

    def create_database(self) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {self.database} {self.on}"

    def transform(self, sql: str) -> list[str]:
        """The cluster statements (in order) that stand for one single-node statement."""
        text = sql.strip().rstrip(";").strip()
        if m := _CREATE_DATABASE.match(text):
            return [f"CREATE DATABASE IF NOT EXISTS {m.group(1)} {self.on}"]
        if _CREATE_TABLE.match(text):
            return self._create_table(text)
        if m := _MV.match(text):
            return self._materialized_view(*m.groups())
        if m := _DROP.match(text):
            return self._drop(m.group(1))
        if m := _RENAME.match(text):
            return self._rename(m.group(1))
        if m := _ALTER.match(text):
            return self._alter(m.group(1), m.group(2))
        if m := _TRUNCATE.match(text):
            return [f"TRUNCATE TABLE IF EXISTS {self.q(m.group(1) + LOCAL)} {self.on}"]
        if _INSERT.match(text):
            return [text]  # through the Distributed tables (synchronous inserts on the cluster profile)
        raise ClusterSchemaError("no cluster form for this statement", sql=text[:200])

    # -- statements ---------------------------------------------------------------------------------
    def _create_table(self, text: str) -> list[str]:
        m = _CREATE_TABLE.match(text)
        assert m is not None
        name = m.group(1)
        close = _matching_paren(text, m.end() - 1)
        columns, rest = text[m.end() - 1:close + 1], text[close + 1:]
        engine = _ENGINE.match(rest)
        if engine is None:
            if _ANY_ENGINE.match(rest):
                # Not a MergeTree table (Memory, Log...): the same table on every server, not replicated.
                return [f"CREATE TABLE IF NOT EXISTS {self.q(name)} {self.on} {columns}{rest}"]
            raise ClusterSchemaError("CREATE TABLE without ENGINE", table=name)
        kind, args = engine.group(1), (engine.group(3) or "").strip()
        tail = rest[engine.end():]
        order = _ORDER_BY.search(tail)
        if order is None:
            raise ClusterSchemaError("a MergeTree table needs ORDER BY to be sharded", table=name)
        key_columns = order.group(2) if order.group(2) is not None else order.group(1)
        first = _split_top(key_columns)[0].strip() if key_columns.strip() else ""
        self.shard_keys[self.key(name)] = f"cityHash64({first})" if first and first.lower() != "tuple()" else "rand()"
        local = name + LOCAL
        path = f"'/clickhouse/tables/{{shard}}/{self.q(local)}', '{{replica}}'"
        replicated = f"Replicated{kind}({path}{', ' + args if args else ''})"
        return [
            f"CREATE TABLE IF NOT EXISTS {self.q(local)} {self.on} {columns} ENGINE = {replicated}{tail}",
            self._distributed(name),
        ]

    def _distributed(self, name: str) -> str:
        database, table = self.parts(name)
        return (f"CREATE TABLE IF NOT EXISTS {self.q(name)} {self.on} AS {self.q(name + LOCAL)} "
                f"ENGINE = Distributed({self.cluster}, {database}, {table + LOCAL}, {self.shard_keys[self.key(name)]})")

    def _materialized_view(self, name: str, target: str, select: str) -> list[str]:
        self.views.add(self.key(name))
        def local(m: re.Match[str]) -> str:
            source = m.group(2)
            return f"{m.group(1)} {self.q(source + LOCAL) if self.key(source) in self.shard_keys else source}"

        local_select = _FROM.sub(local, select)
        if self.key(target) not in self.shard_keys:
            raise ClusterSchemaError("a materialized view's target must be a table created before it", view=name)
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.q(name)} {self.on} TO {self.q(target + LOCAL)} "
                f"AS {local_select}"]

    def _drop(self, name: str) -> list[str]:
        statements = [f"DROP TABLE IF EXISTS {self.q(name)} {self.on}"]
        if self.key(name) in self.views:
            self.views.discard(self.key(name))
        else:  # a table, or a name this schema never saw: its local table goes too (IF EXISTS)
            statements.append(f"DROP TABLE IF EXISTS {self.q(name + LOCAL)} {self.on}")
        self.shard_keys.pop(self.key(name), None)
        return statements

    def _rename(self, pairs_text: str) -> list[str]:
        pairs = []
        for part in _split_top(pairs_text):
            m = re.fullmatch(rf"\s*{_IDENT}\s+TO\s+{_IDENT}\s*", part, re.I)
            if m is None:
                raise ClusterSchemaError("cannot read RENAME", part=part)
            pairs.append((m.group(1), m.group(2)))
        unknown = [a for a, _ in pairs if self.key(a) not in self.shard_keys]
        if unknown:
            raise ClusterSchemaError("RENAME of a table the migrations did not create", tables=unknown)
        # The local tables move; the Distributed tables name their local table, so they are made again.
        statements = ["RENAME TABLE " + ", ".join(f"{self.q(a + LOCAL)} TO {self.q(b + LOCAL)}" for a, b in pairs)
                      + f" {self.on}"]
        keys = {self.key(b): self.shard_keys.pop(self.key(a)) for a, b in pairs}
        names = dict.fromkeys(name for pair in pairs for name in pair)
        statements += [f"DROP TABLE IF EXISTS {self.q(name)} {self.on}" for name in names]
        self.shard_keys.update(keys)
        statements += [self._distributed(b) for _, b in pairs]
        return statements

    def added_columns(self, statement: str) -> tuple[str, str, list[str]] | None:
        """``(database, local table, column names)`` when ``statement`` is this form's ``ALTER TABLE
        <t>_local ON CLUSTER ... ADD COLUMN ...`` of a replicated table, else None."""
        match = _ALTER.match(statement.strip())
        if not match or not match.group(1).endswith(LOCAL) or not match.group(2).startswith(self.on):
            return None
        operations = _split_top(match.group(2)[len(self.on):])
        adds = [re.match(r"^\s*ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?`?([A-Za-z_][A-Za-z0-9_]*)", op, re.I)
                for op in operations]
        if not adds or not all(adds):
            return None
        database, table = self.parts(match.group(1))
        return database, table, [m.group(1) for m in adds if m]

    def _alter(self, name: str, operations: str) -> list[str]:
        if self.key(name) not in self.shard_keys:
            return [f"ALTER TABLE {self.q(name)} {self.on} {operations}"]
        statements = [f"ALTER TABLE {self.q(name + LOCAL)} {self.on} {operations}"]
        if all(_COLUMN_ALTER.match(op) for op in _split_top(operations)):
            # The Distributed table takes the new columns by being made again (18.16 refuses an ALTER
            # ON CLUSTER of a table that is not replicated when the shards replicate internally).
            statements += [f"DROP TABLE IF EXISTS {self.q(name)} {self.on}", self._distributed(name)]
        return statements


def _outside_quotes(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth after it) of each character outside quoted text."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = ""
            continue
        if c in "'`\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        yield i, c, depth


def _matching_paren(text: str, start: int) -> int:
    for i, c, depth in _outside_quotes(text, start):
        if c == ")" and depth == 0:
            return i
    raise ClusterSchemaError("unbalanced parentheses", sql=text[:200])


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    cuts = [i for i, c, depth in _outside_quotes(text) if c == "," and depth == 0]
    bounds = [-1, *cuts, len(text)]
    return [text[a + 1:b] for a, b in itertools.pairwise(bounds)]
