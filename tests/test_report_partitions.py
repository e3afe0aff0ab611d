"""Report queries read only the partitions of their window.

On BigQuery a query is billed for the partitions it reads, so every read of a date-partitioned
table in a report must be bounded on the partition column (``settlement_date`` for P114, the event
time for IRIS). The check runs on DuckDB's optimised plan: each scan of a partitioned table must
carry a filter on its partition column once views, joins and windows have been seen through, which
is what BigQuery's partition pruning needs too. (``report NAME --dry-run`` shows BigQuery's figure.)
"""

from __future__ import annotations

import datetime as dt

import pytest

from ingest.iris.load import IrisLoader
from ingest.p114.load import load_file
from reporting.reports import REPORTS, ReportOptions, partition_columns, report_sql
from tests.s0142_builder import write_file
from tests.test_reports import LONG, SHORT, iris_message, load_iris, units

PARTITION_COLUMN = partition_columns()
#: read whole, on purpose: an outage published long ago can still be active (REMIT is small)
UNBOUNDED = {"bmrs_remit"}


@pytest.fixture
def loaded(tmp_path, wh):
    """Data inside and outside the window (DuckDB drops a filter its statistics prove always true)."""
    for day, run, created in [(SHORT, "SF", dt.datetime(2024, 4, 26, 12)), (LONG, "R1", dt.datetime(2024, 12, 16, 12))]:
        load_file(wh, write_file(tmp_path, day, run, created, units(run, day)))
    load_iris(wh)
    old = "2024-09-01T00:00:00.000Z"
    IrisLoader(wh).load([
        iris_message("old-F", "FREQ", [{"dataset": "FREQ", "measurementTime": old, "frequency": 50.1}]),
        iris_message("old-FU", "FUELINST", [{"dataset": "FUELINST", "publishTime": old, "startTime": old,
                                             "fuelType": "CCGT", "generation": 1}]),
        iris_message("old-B", "BOALF", [{"dataset": "BOALF", "acceptanceNumber": 9, "acceptanceTime": old,
                                         "bmUnit": "T_X-1", "timeFrom": old, "timeTo": old}]),
        *(iris_message(f"old-{d}", d, [{"dataset": d, "bmUnit": "A", "notificationSequence": 0, "timeFrom": old,
                                        "notificationTime": old, "timeTo": "2024-12-01T00:00:00.000Z",
                                        "levelFrom": 1, "levelTo": 1}])
          for d in ("MELS", "MILS")),
    ])
    return wh


@pytest.mark.parametrize("report", sorted(REPORTS))
def test_every_read_of_a_partitioned_table_is_bounded_by_the_report_window(loaded, report):
    wh = loaded
    params, queries = report_sql(wh, report, ReportOptions(date_from=LONG, date_to=LONG))
    checked = 0
    for section, sql in queries.items():
        for table, _, filters in wh.plan_scans(sql, params):
            column = PARTITION_COLUMN.get(table)
            if column is None or table in UNBOUNDED:
                continue
            static = " AND ".join(f for f in filters.split(" AND ") if not f.startswith("optional:"))
            assert column in static, f"{report}.{section} reads every partition of {table} (filters: {filters!r})"
            checked += 1
    if report == "alerts":  # reads only the alert tables: a few rows per event, not partitioned by the window
        assert checked == 0
        return
    assert checked, f"{report}: no partitioned table was read, so nothing was checked"
