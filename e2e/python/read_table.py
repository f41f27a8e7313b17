"""Reads an Icehouse table with an independent Iceberg reader and prints its
rows as JSON lines, so Rust tests can compare them exactly.

usage: read_table.py --engine pyiceberg|duckdb --pg-url URL --catalog NAME
                     --warehouse file:///root|s3://bucket/prefix --table NS.NAME
                     [--columns a,b] [--property KEY=VALUE ...]
PyIceberg reads through its SqlCatalog on the same Postgres (the JDBC catalog
layout); DuckDB reads the current metadata file that catalog points at (local
tables only). Each --property is a catalog property, e.g. s3.endpoint,
s3.access-key-id, s3.secret-access-key, s3.region for an S3 warehouse.
"""
import argparse
import base64
import datetime
import decimal
import glob
import json
import os
import sys
import uuid


def plain(v):
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.isoformat(timespec="microseconds")
    if isinstance(v, (datetime.date, datetime.time, decimal.Decimal, uuid.UUID)):
        return str(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def sqlalchemy_url(url):
    # postgres://u:p@h:port/db -> postgresql+psycopg2://u:p@h:port/db
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def pyiceberg_rows(args):
    from pyiceberg.catalog.sql import SqlCatalog

    from pyiceberg.types import UUIDType

    catalog = SqlCatalog(args.catalog, uri=sqlalchemy_url(args.pg_url), warehouse=args.warehouse, **args.property)
    table = catalog.load_table(tuple(args.table.split(".")))
    uuids = [f.name for f in table.schema().fields if isinstance(f.field_type, UUIDType)]
    rows = table.scan().to_arrow().to_pylist()
    for row in rows:
        for name in uuids:
            if isinstance(row.get(name), (bytes, bytearray)):
                row[name] = str(uuid.UUID(bytes=bytes(row[name])))
    return rows


def duckdb_rows(args):
    import duckdb
    import psycopg2

    ns, name = args.table.split(".")
    with psycopg2.connect(args.pg_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = %s AND table_namespace = %s AND table_name = %s",
            (args.catalog, ns, name),
        )
        (location,) = cur.fetchone()
    if "://" in location and not location.startswith("file://"):
        sys.exit(f"the duckdb reader here reads local tables only, not {location}")
    path = location[len("file://"):] if location.startswith("file://") else location
    con = duckdb.connect()
    ext_dir = os.path.join(os.path.expanduser("~"), ".cache", "icehouse", "duckdb-extensions")
    os.makedirs(ext_dir, exist_ok=True)
    con.execute(f"SET extension_directory = '{ext_dir}'")
    for ext in ("avro", "iceberg"):
        files = []
        for site in sys.path:
            files += glob.glob(os.path.join(site, "**", f"{ext}.duckdb_extension"), recursive=True)
        if files:
            con.execute(f"INSTALL '{files[0]}'")
        con.execute(f"LOAD {ext}")
    select = ", ".join(f'"{c}"' for c in args.columns.split(",")) if args.columns else "*"
    rel = con.execute(f"SELECT {select} FROM iceberg_scan('{path}')")
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, row)) for row in rel.fetchall()]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", choices=["pyiceberg", "duckdb"], required=True)
    p.add_argument("--pg-url", required=True)
    p.add_argument("--catalog", required=True)
    p.add_argument("--warehouse", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--columns")
    p.add_argument("--property", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    props = {}
    for item in args.property:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--property needs KEY=VALUE, got {item!r}")
        props[key] = value
    args.property = props
    rows = pyiceberg_rows(args) if args.engine == "pyiceberg" else duckdb_rows(args)
    keep = args.columns.split(",") if args.columns else None
    out = sys.stdout
    for row in rows:
        if keep:
            row = {k: row[k] for k in keep}
        out.write(json.dumps(plain(row), sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
