"""The SQL templates stay inside what DuckDB and BigQuery both mean the same way.

Known traps between the engines (see README "BigQuery"): NUMERIC's scale, DATE_TRUNC and DATE_ADD
returning TIMESTAMP on DuckDB, TIMESTAMP_DIFF counting boundaries on DuckDB, COUNTIF over no rows
giving NULL on DuckDB, FORMAT/FORMAT_TIMESTAMP, EXTRACT(WEEK/DAYOFWEEK), QUALIFY and SAFE_DIVIDE
spellings. Templates avoid them; the few constructs spelled differently live in
``warehouse/dialects.py`` and are exercised on both engines by the report tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from warehouse.sqltemplates import SQL_DIR

TRAPS = [r"\bNUMERIC\b", r"\bDECIMAL\b", r"\bDATE_TRUNC\b", r"\bTIMESTAMP_DIFF\b", r"\bDATE_DIFF\b", r"\bCOUNTIF\b",
         r"\bFORMAT(_TIMESTAMP|_DATE)?\s*\(", r"\bEXTRACT\s*\(\s*(WEEK|DAYOFWEEK|ISOWEEK)", r"\bQUALIFY\b",
         r"\bSAFE_DIVIDE\b", r"\bDATE_ADD\b", r"\bDATE_SUB\b", r"\bGENERATE_\w+\b", r"\bUNNEST\b", r"\$\w+",
         r"\bCAST\s*\([^()]*\bAS\s+(TEXT|VARCHAR|DOUBLE|BIGINT|INT)\b", r"\bLIKE\s+'[^']*_"]
TEMPLATES = sorted(SQL_DIR.rglob("*.sql.j2"))


@pytest.mark.parametrize("path", TEMPLATES, ids=[str(p.relative_to(SQL_DIR)) for p in TEMPLATES])
def test_templates_avoid_constructs_the_engines_disagree_on(path: Path):
    text = re.sub(r"--[^\n]*|\{#.*?#\}", "", path.read_text(), flags=re.DOTALL)  # comments may name them
    found = [t for t in TRAPS if re.search(t, text, flags=re.IGNORECASE)]
    assert not found, f"{path.name} uses {found}: write it with a macro from warehouse/dialects.py instead"
