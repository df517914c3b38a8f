"""Commit one staged batch to its Iceberg table, exactly once (EMR Serverless Spark job).

Started by the offload state machine with ``--batch <batch spec JSON>`` (see src/pipeline/events.ts).
Every decision (table, window, batch id, staging prefix) comes from the spec; this job re-derives none.

1. If a snapshot in the table's current ancestry carries ``k2.offload.batch-id`` = this batch, stop:
   the batch is already in Iceberg (a retry after a crash or a lost response).
2. If the newest marker in the ancestry ends after this window's start, stop with an error: Iceberg
   already holds rows of this window under another batch (the next cycle re-plans from there).
3. Otherwise read the staged Parquet files and append them in one Iceberg commit whose snapshot
   summary carries the offload marker (``snapshot-property.k2.offload.*`` write options).

Pure helpers (argument parsing, marker lookup, SQL) import nothing from Spark, so they are unit tested
with plain ``python3 -m unittest``; Spark is imported only in ``main``.
"""

import argparse
import datetime
import json
import re
import sys

MARKER = "k2.offload."
BATCH_ID_KEY = MARKER + "batch-id"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DEFAULT_CATALOG = "glue"


class BatchSpecError(ValueError):
    """The job was started with a batch spec it cannot act on; nothing was written."""


class OverlapError(RuntimeError):
    """Iceberg already holds rows after this window's start; appending would duplicate them."""


def _require(spec, key, check, expectation):
    value = spec.get(key)
    if not check(value):
        raise BatchSpecError(
            "batch spec field %s: %s %s" % (key, json.dumps(value), expectation)
        )
    return value


def _is_str(value):
    return isinstance(value, str) and len(value) > 0


def _instant(value):
    """ISO 8601 to an aware datetime; Python before 3.11 does not read a trailing Z."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_batch_spec(text):
    """Parses and checks the ``--batch`` JSON; returns the spec as a dict."""
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise BatchSpecError("--batch is not valid JSON: %s" % error)
    if not isinstance(spec, dict):
        raise BatchSpecError("--batch must be a JSON object, got %s" % type(spec).__name__)
    _require(spec, "table", lambda v: _is_str(v) and IDENTIFIER.match(v), "must be a table name")
    _require(spec, "batchId", lambda v: _is_str(v) and BATCH_ID.match(v), "must be 32 hex digits")
    _require(spec, "windowStart", lambda v: _is_str(v) and INSTANT.match(v), "must be an ISO 8601 instant")
    _require(spec, "windowEnd", lambda v: _is_str(v) and INSTANT.match(v), "must be an ISO 8601 instant")
    _require(spec, "committer", lambda v: v == "emr", 'must be "emr" for this job')
    _require(
        spec,
        "stagingPrefix",
        lambda v: _is_str(v) and re.match(r"^(s3a?|file)://", v),
        "must be an s3:// or file:// prefix",
    )
    target = _require(spec, "target", lambda v: isinstance(v, dict), "must be {namespace, name}")
    for key in ("namespace", "name"):
        value = target.get(key)
        if not (isinstance(value, str) and IDENTIFIER.match(value)):
            raise BatchSpecError(
                "batch spec field target.%s: %s must be an identifier" % (key, json.dumps(value))
            )
    try:
        inverted = _instant(spec["windowStart"]) >= _instant(spec["windowEnd"])
    except ValueError as error:
        raise BatchSpecError("batch spec window: %s" % error)
    if inverted:
        raise BatchSpecError(
            "batch spec window [%s, %s) is empty or inverted" % (spec["windowStart"], spec["windowEnd"])
        )
    return spec


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Commit one staged k2 offload batch to Iceberg")
    parser.add_argument("--batch", required=True, help="batch spec JSON (src/pipeline/events.ts)")
    args = parser.parse_args(argv)
    return parse_batch_spec(args.batch)


def table_identifier(catalog, spec):
    if not IDENTIFIER.match(catalog):
        raise BatchSpecError("catalog name %s must be an identifier" % json.dumps(catalog))
    return "%s.%s.%s" % (catalog, spec["target"]["namespace"], spec["target"]["name"])


def marker_query(identifier, batch_id):
    """Snapshots of the current ancestry whose summary carries this batch id (ids are validated hex)."""
    if not BATCH_ID.match(batch_id):
        raise BatchSpecError("batch id %s must be 32 hex digits" % json.dumps(batch_id))
    return (
        "SELECT s.snapshot_id, s.summary FROM {t}.snapshots s "
        "JOIN {t}.history h ON s.snapshot_id = h.snapshot_id "
        "WHERE h.is_current_ancestor AND s.summary['{key}'] = '{id}'"
    ).format(t=identifier, key=BATCH_ID_KEY, id=batch_id)


def newest_marker_query(identifier):
    """The most recent snapshot of the current ancestry that carries any offload marker."""
    return (
        "SELECT s.snapshot_id, s.summary FROM {t}.snapshots s "
        "JOIN {t}.history h ON s.snapshot_id = h.snapshot_id "
        "WHERE h.is_current_ancestor AND s.summary['{key}'] IS NOT NULL "
        "ORDER BY h.made_current_at DESC LIMIT 1"
    ).format(t=identifier, key=BATCH_ID_KEY)


def check_no_overlap(newest, spec):
    """Refuses a window that starts before the end of what Iceberg already holds (the newest marker)."""
    if newest is None:
        return
    summary = newest.get("summary") or {}
    end = summary.get(MARKER + "window-end")
    if end is not None and _instant(end) > _instant(spec["windowStart"]):
        raise OverlapError(
            "Iceberg table %s.%s already holds rows up to %s (batch %s), after this batch's start %s; "
            "nothing was written, the next cycle re-plans from there"
            % (
                spec["target"]["namespace"],
                spec["target"]["name"],
                end,
                summary.get(BATCH_ID_KEY),
                spec["windowStart"],
            )
        )


def find_marker(snapshots, batch_id):
    """The first ``{snapshot_id, summary}`` whose summary names this batch, else None."""
    for snapshot in snapshots:
        summary = snapshot.get("summary") or {}
        if summary.get(BATCH_ID_KEY) == batch_id:
            return snapshot
    return None


def marker_properties(spec, rows):
    return {
        MARKER + "batch-id": spec["batchId"],
        MARKER + "table": spec["table"],
        MARKER + "window-start": spec["windowStart"],
        MARKER + "window-end": spec["windowEnd"],
        MARKER + "rows": str(rows),
    }


def write_options(spec, rows):
    """Iceberg's Spark writer copies ``snapshot-property.<k>`` options into the snapshot summary."""
    return {"snapshot-property." + k: v for k, v in marker_properties(spec, rows).items()}


def outcome(status, rows, snapshot_id=None):
    result = {"status": status, "rows": rows}
    if snapshot_id is not None:
        result["snapshotId"] = str(snapshot_id)
    return result


def _staged_files(spark, prefix):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(prefix)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return []
    return sorted(
        s.getPath().toString() for s in fs.listStatus(path) if s.getPath().getName().endswith(".parquet")
    )


def _markers(spark, identifier, batch_id):
    return [r.asDict() for r in spark.sql(marker_query(identifier, batch_id)).collect()]


def main(argv, spark=None, list_files=None):
    """Runs the commit; ``spark`` and ``list_files`` are injectable so the flow is testable without Spark."""
    spec = parse_args(argv)
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("k2-offload-commit-%s" % spec["batchId"]).getOrCreate()
    identifier = table_identifier(spark.conf.get("spark.k2.catalog", DEFAULT_CATALOG), spec)

    existing = find_marker(_markers(spark, identifier, spec["batchId"]), spec["batchId"])
    if existing is not None:
        rows = int(existing["summary"].get(MARKER + "rows", "0"))
        return outcome("already-committed", rows, existing["snapshot_id"])

    newest = [r.asDict() for r in spark.sql(newest_marker_query(identifier)).collect()]
    check_no_overlap(newest[0] if newest else None, spec)

    files = (list_files or _staged_files)(spark, spec["stagingPrefix"])
    if not files:
        # Nothing staged: no snapshot; the watermark step accepts an empty batch without a marker.
        return outcome("empty", 0)
    table_columns = spark.table(identifier).columns
    frame = spark.read.parquet(*files).select(*table_columns)
    rows = frame.count()
    frame.writeTo(identifier).options(**write_options(spec, rows)).append()

    written = find_marker(_markers(spark, identifier, spec["batchId"]), spec["batchId"])
    if written is None:
        raise RuntimeError(
            "batch %s appended to %s but no snapshot carries its marker; do not advance the watermark"
            % (spec["batchId"], identifier)
        )
    return outcome("committed", rows, written["snapshot_id"])


if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1:])))
    except BatchSpecError as error:
        print("k2-offload commit_batch: %s" % error, file=sys.stderr)
        sys.exit(2)
