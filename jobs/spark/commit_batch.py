"""Commit one staged batch to its Iceberg table, exactly once (EMR Serverless Spark job).

Started by the offload state machine with ``--batch <batch spec JSON>`` (see src/pipeline/events.ts).
Every decision (table, window, batch id, staging prefix) comes from the spec; this job re-derives none.

1. If a snapshot in the table's current ancestry carries ``k2.offload.batch-id`` = this batch, stop:
   the batch is already in Iceberg (a retry after a crash or a lost response).
2. If the newest marker in the ancestry ends after this window's start, stop with an error: Iceberg
   already holds rows of this window under another batch (the next cycle re-plans from there).
3. Otherwise adopt the staged Parquet files as they are (data files with metrics from their footers,
   no copy) in one fast append whose snapshot summary carries the offload marker (``k2.offload.*``),
   once their footers add up to the rows StageBatch counted (``--staged``'s ``rows``), as our
   TypeScript committer checks: a marker with another count would hold the watermark back for ever.

Schema and partition changes are made by the cycle's planning step (TypeScript, through the same Glue
table) before the batch is staged; this job reads the staged files against the table's current schema,
partition spec and name mapping, so its append is written with the evolved schema (the snapshot's
``schema-id``) and the new partition spec, and reads them again if they changed between attempts.

Steps 1 to 3 are one compare-and-set: the append is based on the table state the checks read, and a
commit conflict (another job of the same batch, any other writer) means read again and check again,
never append on a newer base unchecked. The decision logic (``commit_exactly_once``) is plain Python
over a small table interface, unit tested with ``python3 -m unittest`` against a compare-and-set fake;
``IcebergJavaTable`` maps that interface onto Iceberg's Java API, and Spark is imported only in ``main``.
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


class StagedRowsError(BatchSpecError):
    """The staged files hold another number of rows than StageBatch counted; nothing was written."""


class OverlapError(RuntimeError):
    """Iceberg already holds rows after this window's start; appending would duplicate them."""


class CommitConflict(RuntimeError):
    """The table is no longer at the state a commit was based on; read it again and re-check."""


class PartitionError(ValueError):
    """A staged file holds rows of more than one partition; it cannot be adopted as one data file."""


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
    """The batch spec and the staged file URIs (``--staged``: StageBatch's result, one attempt's files)."""
    parser = argparse.ArgumentParser(description="Commit one staged k2 offload batch to Iceberg")
    parser.add_argument("--batch", required=True, help="batch spec JSON (src/pipeline/events.ts)")
    parser.add_argument("--staged", required=True, help="staged files JSON: {rows, files: [{uri, bytes}], hours}")
    args = parser.parse_args(argv)
    spec = parse_batch_spec(args.batch)
    return spec, staged_paths(spec, args.staged), staged_hours(args.staged), staged_rows(args.staged)


def staged_rows(raw):
    """The rows StageBatch counted in the staged files: what their footers must add up to."""
    rows = json.loads(raw).get("rows")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise BatchSpecError("--staged rows must be a count of rows (an integer >= 0), got %s" % json.dumps(rows))
    return rows


def staged_hours(raw):
    """The batch's rows per hour of the cursor (``hours`` of StageBatch's result), carried in the marker
    so the hourly ledger can be written from Iceberg when the watermark step never ran; None if absent."""
    hours = json.loads(raw).get("hours")
    if hours is None:
        return None
    valid = isinstance(hours, list) and all(
        isinstance(h, dict)
        and isinstance(h.get("hour"), str)
        and isinstance(h.get("rows"), int)
        and isinstance(h.get("checksum"), str)
        and h["checksum"].isdigit()
        for h in hours
    )
    if not valid:
        raise BatchSpecError("--staged hours must be [{\"hour\": ISO, \"rows\": int, \"checksum\": digits}, ...]")
    return [{"hour": h["hour"], "rows": h["rows"], "checksum": h["checksum"]} for h in hours]


def staged_paths(spec, raw):
    """The staged files to commit, fenced as our TypeScript committer fences them (src/stage/attempt.ts):
    part files of one single attempt of this batch under this lease,
    ``<stagingPrefix>t<leaseToken>-<nonce>/part-NNNNN.parquet``. A file of another lease or attempt (a
    stalled holder's) is refused: committing it could reference a file that holder still writes."""
    try:
        staged = json.loads(raw)
    except ValueError as error:
        raise BatchSpecError("--staged is not valid JSON: %s" % error)
    files = staged.get("files") if isinstance(staged, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("uri"), str) for f in files):
        raise BatchSpecError("--staged must be {\"files\": [{\"uri\": ...}, ...]}")
    folder = spec["stagingPrefix"].rstrip("/") + "/"
    part = re.compile(
        "^%st%s-([0-9a-z]+)/part-\\d{5,}\\.parquet$" % (re.escape(folder), re.escape(str(spec["leaseToken"])))
    )
    attempts = set()
    for f in files:
        match = part.match(f["uri"])
        if match is None:
            raise BatchSpecError(
                "refusing to commit batch %s: %s is not a staged part of this lease's attempt under %st%s-<nonce>/"
                % (spec["batchId"], f["uri"], folder, spec["leaseToken"])
            )
        attempts.add(match.group(1))
    if len(attempts) > 1:
        raise BatchSpecError(
            "refusing to commit batch %s: files of %d staging attempts mixed together" % (spec["batchId"], len(attempts))
        )
    return sorted(f["uri"] for f in files)


def table_identifier(catalog, spec):
    if not IDENTIFIER.match(catalog):
        raise BatchSpecError("catalog name %s must be an identifier" % json.dumps(catalog))
    return "%s.%s.%s" % (catalog, spec["target"]["namespace"], spec["target"]["name"])


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


def marker_properties(spec, rows, hours=None):
    properties = {
        MARKER + "batch-id": spec["batchId"],
        MARKER + "table": spec["table"],
        MARKER + "window-start": spec["windowStart"],
        MARKER + "window-end": spec["windowEnd"],
        MARKER + "rows": str(rows),
    }
    if hours is not None:
        properties[MARKER + "hours"] = json.dumps(hours, separators=(",", ":"))
    return properties


def outcome(status, rows, snapshot_id=None):
    result = {"status": status, "rows": rows}
    if snapshot_id is not None:
        result["snapshotId"] = str(snapshot_id)
    return result



def newest_marker(ancestry):
    """The newest snapshot of the ancestry (newest first) that carries any offload marker, else None."""
    for snapshot in ancestry:
        if (snapshot.get("summary") or {}).get(BATCH_ID_KEY) is not None:
            return snapshot
    return None


def settle_partition(path, field, lower, upper, null_count, value_count):
    """A staged file's value for one partition field, from the transformed bounds of its source column.

    The stager writes one file per partition, so the bounds settle it: all nulls is null, equal bounds
    without nulls is that value. Anything else cannot be adopted as one data file of one partition.
    """
    if value_count is not None and null_count is not None and null_count == value_count:
        return None
    if null_count == 0 and lower is not None and upper is not None and lower == upper:
        return lower
    raise PartitionError(
        "staged file %s: partition field %s is not one value (bounds %r..%r, %r nulls of %r); "
        "stage one file per partition, or set the table's committer to \"lambda\""
        % (path, field, lower, upper, null_count, value_count)
    )


MICROS_PER_HOUR = 3600 * 1000000
EPOCH = datetime.date(1970, 1, 1)
TRUNCATE = re.compile(r"^truncate\[(\d+)\]$")
IDENTITY_TYPES = ("BOOLEAN", "INTEGER", "LONG", "DATE", "STRING")


def _date_of(type_id, value):
    """A timestamp bound (microseconds) or a date bound (days) as a calendar date."""
    days = value // (24 * MICROS_PER_HOUR) if type_id == "TIMESTAMP" else value
    return EPOCH + datetime.timedelta(days=days)


def transform_bound(transform, type_id, value):
    """Iceberg's order-preserving transforms of a column bound, as Iceberg's Java API holds it
    (timestamps in microseconds, dates in days). None where this job does not compute the transform
    (bucket, void, other types): the file is then refused as spanning partitions, unless all null."""
    if value is None:
        return None
    if transform == "identity":
        return value if type_id in IDENTITY_TYPES else None
    truncate = TRUNCATE.match(transform)
    if truncate:
        width = int(truncate.group(1))
        if type_id in ("INTEGER", "LONG"):
            return value - value % width  # Python's % floors, as Iceberg's truncate does for negatives
        return value[:width] if type_id == "STRING" else None
    if type_id not in ("TIMESTAMP", "DATE"):
        return None
    if transform == "hour":
        return value // MICROS_PER_HOUR if type_id == "TIMESTAMP" else None
    date = _date_of(type_id, value)
    if transform == "day":
        return (date - EPOCH).days
    if transform == "month":
        return (date.year - 1970) * 12 + date.month - 1
    if transform == "year":
        return date.year - 1970
    return None


def partition_string(transform, type_id, value):
    """A partition value as Iceberg's ``Conversions.fromPartitionString`` reads it for the field's type:
    ``day`` (and identity of a date) is a date, other transforms' results numbers or strings."""
    if value is None:
        return None
    if transform == "day" or (transform == "identity" and type_id == "DATE"):
        return (EPOCH + datetime.timedelta(days=value)).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class TableState(object):
    """One read of the table: its ancestry (newest first), the opaque base a commit must start from, and
    its layout (current schema, default spec, name mapping): what staged files are read against."""

    def __init__(self, ancestry, base, layout=None):
        self.ancestry = ancestry
        self.base = base
        self.layout = layout


class StagedFile(object):
    """A staged Parquet file ready to be adopted as a data file (``handle``: the engine's DataFile)."""

    def __init__(self, path, rows, handle):
        self.path = path
        self.rows = rows
        self.handle = handle


def _check_rows(spec, rows, expected_rows):
    if rows != expected_rows:
        raise StagedRowsError(
            "batch %s of %s: the staged files hold %d rows, the batch says %d; nothing was committed, "
            "stage the batch again" % (spec["batchId"], spec["table"], rows, expected_rows)
        )


def commit_exactly_once(table, spec, paths, expected_rows, max_attempts=5, hours=None):
    """Check-and-commit as one step: the append is a compare-and-set on the state the check read.

    ``table`` offers ``load() -> TableState``, ``data_files(paths) -> [StagedFile]`` and
    ``append(state, files, properties) -> snapshot id``, which raises ``CommitConflict`` when ``state``
    is no longer the table's current state. On a conflict (another job of this batch, a maintenance
    commit, a lost response) the table is read again and the marker checked again: a second job of one
    batch finds the first one's marker instead of appending again.
    """
    files, layout = None, None
    for _ in range(max_attempts):
        state = table.load()
        existing = find_marker(state.ancestry, spec["batchId"])
        if existing is not None:
            rows = int((existing.get("summary") or {}).get(MARKER + "rows", "0"))
            return outcome("already-committed", rows, existing["snapshot_id"])
        check_no_overlap(newest_marker(state.ancestry), spec)
        if not paths:
            # Nothing staged: no snapshot; the watermark step accepts an empty batch without a marker.
            _check_rows(spec, 0, expected_rows)
            return outcome("empty", 0)
        # Files are read against the table's current schema, spec and name mapping: after the cycle
        # evolved the table (a new column, a new partition spec) or another writer did, read them again.
        if files is None or layout != state.layout:
            files, layout = table.data_files(paths), state.layout
        rows = sum(f.rows for f in files)
        _check_rows(spec, rows, expected_rows)
        try:
            snapshot_id = table.append(state, files, marker_properties(spec, rows, hours))
        except CommitConflict:
            continue
        return outcome("committed", rows, snapshot_id)
    raise CommitConflict(
        "batch %s: the table changed under each of %d commit attempts; nothing of this job was "
        "committed, a retry of the step starts again" % (spec["batchId"], max_attempts)
    )


class IcebergJavaTable(object):
    """The table interface over Iceberg's Java API through py4j (the Iceberg runtime on EMR).

    ``append`` builds a fast-append snapshot and hands it to ``TableOperations.commit(base, updated)``
    with the base the marker check read: the catalog refuses it when the table moved since (Glue's
    version check), and nothing retries it on a newer base behind our back, as Iceberg's own commit
    retries (``commit.retry.num-retries``) would. The staged files are adopted as they are (metrics
    from their footers), not rewritten.
    """

    def __init__(self, spark, identifier):
        self._jvm = spark.sparkContext._jvm
        iceberg = self._jvm.org.apache.iceberg
        self._iceberg = iceberg
        self._table = iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, identifier)
        self._ops = self._table.operations()

    def load(self):
        base = self._ops.refresh()
        ancestry = []
        snapshot = base.currentSnapshot()
        while snapshot is not None:
            ancestry.append({"snapshot_id": snapshot.snapshotId(), "summary": dict(snapshot.summary())})
            parent = snapshot.parentId()
            snapshot = base.snapshot(parent) if parent is not None else None
        layout = (
            base.currentSchemaId(),
            base.defaultSpecId(),
            base.properties().get("schema.name-mapping.default"),
        )
        return TableState(ancestry, base, layout)

    def data_files(self, paths):
        iceberg, table = self._iceberg, self._table
        spec, schema, io = table.spec(), table.schema(), table.io()
        mapping_json = table.properties().get("schema.name-mapping.default")
        mapping = (
            iceberg.mapping.NameMappingParser.fromJson(mapping_json)
            if mapping_json
            else iceberg.mapping.MappingUtil.create(schema)
        )
        metrics_config = iceberg.MetricsConfig.forTable(table)
        files = []
        for path in paths:
            source = io.newInputFile(path)
            metrics = iceberg.parquet.ParquetUtil.fileMetrics(source, metrics_config, mapping)
            # As strings Iceberg parses into each field's own type: a Long or an Integer handed back
            # through py4j arrives as a Python int and would come back as the wrong boxed type.
            partition = [self._partition_string(path, field, schema, metrics) for field in spec.fields()]
            handle = (
                iceberg.DataFiles.builder(spec)
                .withPath(path)
                .withFormat("PARQUET")
                .withFileSizeInBytes(source.getLength())
                .withMetrics(metrics)
                .withPartitionValues(partition)
                .build()
            )
            files.append(StagedFile(path, int(metrics.recordCount()), handle))
        return files

    def _partition_string(self, path, field, schema, metrics):
        source_id = field.sourceId()
        source_type = schema.findField(source_id).type()
        type_id = source_type.typeId().name()
        transform = field.transform().toString()

        def bound(bounds):
            raw = bounds.get(source_id) if bounds is not None else None
            if raw is None:
                return None
            value = self._iceberg.types.Conversions.fromByteBuffer(source_type, raw)
            # Strings come back as a Java CharSequence; numbers and dates as Python ints already.
            return value if isinstance(value, (int, bool, str)) else str(value.toString())

        lower = transform_bound(transform, type_id, bound(metrics.lowerBounds()))
        upper = transform_bound(transform, type_id, bound(metrics.upperBounds()))
        counts = metrics.nullValueCounts(), metrics.valueCounts()
        nulls, values = (None if c is None else c.get(source_id) for c in counts)
        value = settle_partition(path, field.name(), lower, upper, nulls, values)
        return partition_string(transform, type_id, value)

    def append(self, state, files, properties):
        append = self._table.newFastAppend()
        for key, value in properties.items():
            append.set(key, value)
        for staged in files:
            append.appendFile(staged.handle)
        snapshot = append.apply()
        updated = (
            self._iceberg.TableMetadata.buildFrom(state.base).setBranchSnapshot(snapshot, "main").build()
        )
        try:
            self._ops.commit(state.base, updated)
        except Exception as error:  # py4j wraps Java exceptions in Py4JJavaError
            name = _java_exception_name(error)
            # Unknown state (a lost response) is re-read like a conflict: the marker tells what landed.
            if name.endswith("CommitFailedException") or name.endswith("CommitStateUnknownException"):
                raise CommitConflict("%s: %s" % (name, error))
            raise
        return snapshot.snapshotId()


def _java_exception_name(error):
    java = getattr(error, "java_exception", None)
    return java.getClass().getName() if java is not None else type(error).__name__


def main(argv, spark=None, table=None):
    """Runs the commit; ``spark`` and ``table`` are injectable for tests without Spark."""
    spec, paths, hours, rows = parse_args(argv)
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("k2-offload-commit-%s" % spec["batchId"]).getOrCreate()
    if table is None:
        table = IcebergJavaTable(spark, table_identifier(spark.conf.get("spark.k2.catalog", DEFAULT_CATALOG), spec))
    return commit_exactly_once(table, spec, paths, rows, hours=hours)


if __name__ == "__main__":
    try:
        print(json.dumps(main(sys.argv[1:])))
    except BatchSpecError as error:
        print("k2-offload commit_batch: %s" % error, file=sys.stderr)
        sys.exit(2)
