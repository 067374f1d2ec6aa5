"""`make query SQL="…"`: DuckDB over the parquet outputs, printed as a table.

    python -m jobs.query "select domain, count(*) from 'out/demo/extract/*.parquet' group by 1"
"""
from __future__ import annotations

import sys

import duckdb


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit('usage: python -m jobs.query "SQL"')
    duckdb.sql(argv[0]).show(max_rows=50, max_width=200)


if __name__ == "__main__":
    main(sys.argv[1:])
