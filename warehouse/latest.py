"""The statements of a latest-wins write (:class:`~warehouse.base.Replace`), for both engines.

Given staged rows (``source``: the batch plus an ``__ord`` column giving its order), four
statements, run in this order inside the write's transaction:

1. ``superseded``: rows of the batch beaten by a newer row of the same key *in the batch* that
   differ from it → history (replaced by the winner);
2. ``replaced``: stored rows whose key a batch winner carries with different values and a version
   not older → history (replaced by the winner);
3. ``stale``: batch winners older than the stored row, with different values → history (replaced
   by the stored row);
4. ``merge``: ``MERGE`` the winners: update the stored rows counted in 2, insert new keys.

Statements 1-3 read the table before 4 changes it. Identifiers come quoted by the engine's ``q``;
values travel as parameters (``@now``, and the prune bounds the caller passes in ``prune``).
On BigQuery JSON columns are staged as STRING: ``json`` names them so they are parsed on the way
in and compared in canonical form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from warehouse.base import HISTORY_COLUMNS, Replace


def latest_statements(
    q: Callable[[str], str],
    target: str,
    history: str,
    source: str,
    columns: Sequence[str],
    stored_columns: Sequence[str],
    key: Sequence[str],
    replace: Replace,
    *,
    prune: str = "",
    json: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """``(label, sql)`` for each statement; labels are superseded, replaced, stale, merge."""
    ver, by = q(replace.version), q(replace.by) if replace.by in columns else None
    compare = [c for c in replace.compare if c in columns and c in stored_columns]

    def staged(alias: str, c: str) -> str:
        return f"PARSE_JSON({alias}.{q(c)})" if c in json else f"{alias}.{q(c)}"

    def canonical(alias: str, c: str, stored: bool) -> str:
        if c not in json:
            return f"{alias}.{q(c)}"
        return f"TO_JSON_STRING({alias}.{q(c)})" if stored else f"TO_JSON_STRING(PARSE_JSON({alias}.{q(c)}))"

    def keymatch(a: str, b: str) -> str:
        return " AND ".join(f"{a}.{q(k)} IS NOT DISTINCT FROM {b}.{q(k)}" for k in key)

    def same(a: str, b: str, a_stored: bool) -> str:
        if not compare:
            return "TRUE"
        return "(" + " AND ".join(f"{canonical(a, c, a_stored)} IS NOT DISTINCT FROM {canonical(b, c, False)}"
                                  for c in compare) + ")"

    keys = ", ".join(q(k) for k in key)
    ranked = (f"(SELECT *, ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {ver} DESC, {q('__ord')} DESC) "
              f"AS {q('__rank')} FROM {source})")
    winners = f"(SELECT * FROM {ranked} AS r WHERE r.{q('__rank')} = 1)"
    where_prune = f" AND {prune}" if prune else ""
    newer = f"(t.{ver} IS NULL OR w.{ver} >= t.{ver})"
    hist_batch = ", ".join(q(c) for c in (*columns, *HISTORY_COLUMNS))
    hist_stored = ", ".join(q(c) for c in (*stored_columns, *HISTORY_COLUMNS))
    w_by = f"w.{by}" if by else "CAST(NULL AS STRING)"
    t_by = f"t.{q(replace.by)}" if replace.by in stored_columns else "CAST(NULL AS STRING)"

    superseded = (
        f"INSERT INTO {history} ({hist_batch}) "
        f"SELECT {', '.join(staged('l', c) for c in columns)}, {w_by}, @now "
        f"FROM {ranked} AS l JOIN {ranked} AS w ON {keymatch('l', 'w')} AND w.{q('__rank')} = 1 "
        f"WHERE l.{q('__rank')} > 1 AND NOT {same('l', 'w', False)}"
    )
    replaced = (
        f"INSERT INTO {history} ({hist_stored}) "
        f"SELECT {', '.join(f't.{q(c)}' for c in stored_columns)}, {w_by}, @now "
        f"FROM {target} AS t JOIN {winners} AS w ON {keymatch('t', 'w')}{where_prune} "
        f"WHERE {newer} AND NOT {same('t', 'w', True)}"
    )
    stale = (
        f"INSERT INTO {history} ({hist_batch}) "
        f"SELECT {', '.join(staged('w', c) for c in columns)}, {t_by}, @now "
        f"FROM {winners} AS w JOIN {target} AS t ON {keymatch('t', 'w')}{where_prune} "
        f"WHERE NOT {newer} AND NOT {same('t', 'w', True)}"
    )
    sets = ", ".join(f"{q(c)} = {staged('w', c)}" for c in columns if c not in key)
    merge = (
        f"MERGE INTO {target} AS t USING {winners} AS w ON {keymatch('t', 'w')}{where_prune} "
        f"WHEN MATCHED AND {newer} AND NOT {same('t', 'w', True)} THEN UPDATE SET {sets} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(q(c) for c in columns)}) "
        f"VALUES ({', '.join(staged('w', c) for c in columns)})"
    )
    return [("superseded", superseded), ("replaced", replaced), ("stale", stale), ("merge", merge)]
