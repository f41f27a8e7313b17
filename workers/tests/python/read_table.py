"""Reads an Icehouse table with two external Iceberg readers and prints what
each one sees, as JSON on stdout, for the Rust tests to compare exactly:

- PyIceberg's SqlCatalog on the same Postgres rows (the JDBC-catalog layout),
- DuckDB's iceberg extension, iceberg_scan() of the current metadata file
  (the one the catalog row points at).

    read_table.py --uri postgresql+psycopg2://... --warehouse file:///root \
                  --catalog NAME --table NAMESPACE.TABLE

Output: {"columns": [...], "metadata_location": "...",
         "pyiceberg": [[...], ...], "duckdb": [[...], ...],
         "snapshots": [{"snapshot_id", "parent_id", "sequence_number",
                        "operation", "summary"}, ...]}
Rows are lists in schema order, sorted by their JSON text; timestamps are
integer microseconds since the epoch (UTC), so no reader's time zone or
datetime formatting can blur the comparison.
"""

import argparse
import json
import os
import sys
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog


def normalized_rows(table: pa.Table) -> list:
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            # Same instant whatever the unit or zone: integer microseconds.
            column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
        columns.append(column.to_pylist())
    rows = [list(row) for row in zip(*columns)]
    rows.sort(key=lambda row: json.dumps(row))
    return rows


def extension_file(package: str, name: str) -> str:
    module = __import__(package)
    root = os.path.join(os.path.dirname(module.__file__), "extensions", f"v{duckdb.__version__}")
    path = os.path.join(root, f"{name}.duckdb_extension")
    if not os.path.exists(path):
        sys.exit(f"{package} has no extension for DuckDB {duckdb.__version__} ({path})")
    return path


def read_with_duckdb(metadata_location: str) -> pa.Table:
    con = duckdb.connect()
    con.execute(f"SET extension_directory = '{tempfile.mkdtemp(prefix='duckdb-ext-')}'")
    for package, name in [("duckdb_extension_avro", "avro"), ("duckdb_extension_iceberg", "iceberg")]:
        con.execute(f"INSTALL '{extension_file(package, name)}'")
        con.execute(f"LOAD {name}")
    path = metadata_location.removeprefix("file://")
    return con.execute("SELECT * FROM iceberg_scan(?)", [path]).fetch_arrow_table()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--table", required=True)
    args = parser.parse_args()

    catalog = SqlCatalog(args.catalog, uri=args.uri, warehouse=args.warehouse)
    table = catalog.load_table(args.table)
    columns = [field.name for field in table.schema().fields]
    from_pyiceberg = table.scan().to_arrow().select(columns)
    from_duckdb = read_with_duckdb(table.metadata_location).select(columns)

    snapshots = [
        {
            "snapshot_id": s.snapshot_id,
            "parent_id": s.parent_snapshot_id,
            "sequence_number": s.sequence_number,
            "operation": s.summary.operation.value if s.summary else None,
            "summary": {k: v for k, v in (s.summary.additional_properties.items() if s.summary else [])},
        }
        for s in table.snapshots()
    ]
    json.dump(
        {
            "columns": columns,
            "metadata_location": table.metadata_location,
            "pyiceberg": normalized_rows(from_pyiceberg),
            "duckdb": normalized_rows(from_duckdb),
            "snapshots": snapshots,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
