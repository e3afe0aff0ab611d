"""Run local-bigquery (in its own Python 3.13 venv) with one fix: MERGE inside a transaction.

local-bigquery 0.3.2 (and 0.4.0) runs MERGE by first trying ``BEGIN`` on its DuckDB cursor to find
out whether a transaction is open; inside ``BEGIN TRANSACTION … COMMIT TRANSACTION`` that second
BEGIN fails, and a failed statement aborts DuckDB's transaction, so every MERGE in a transaction
fails with "Current transaction is aborted". Real BigQuery runs MERGE in transactions, and the
warehouse relies on it. This launcher tracks open transactions per job and tells the MERGE code
so without touching DuckDB. Usage: python launch.py serve --host 127.0.0.1 --port N --data-dir D
"""

import sys

import duckdb
from local_bigquery.cli import main
from local_bigquery.jobs import merge, query
from sqlglot import exp

_open: set[int] = set()  # ids of cursors inside BEGIN TRANSACTION
_run_statement, _run_merge, _execute_job = query._run, merge.run, query.execute


def run_statement(cur, tree, *args):
    statistics = _run_statement(cur, tree, *args)
    if isinstance(tree, exp.Transaction):
        _open.add(id(cur))
    elif isinstance(tree, (exp.Commit, exp.Rollback)):
        _open.discard(id(cur))
    return statistics


def execute_job(cur, *args, **kwargs):
    _open.discard(id(cur))  # a job that failed inside a transaction was rolled back
    try:
        return _execute_job(cur, *args, **kwargs)
    finally:
        _open.discard(id(cur))


class _InTransaction:
    """The cursor, except that BEGIN reports "already in a transaction" without running."""

    def __init__(self, cur):
        self._cur = cur

    def execute(self, sql, *args, **kwargs):
        if sql.strip().upper() == "BEGIN":
            raise duckdb.TransactionException("a transaction is already open")
        return self._cur.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._cur, name)


def run_merge(cur, tree, context):
    return _run_merge(_InTransaction(cur) if id(cur) in _open else cur, tree, context)


query._run, merge.run, query.execute = run_statement, run_merge, execute_job

if __name__ == "__main__":
    sys.argv[0] = "local-bigquery"
    main()
