import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import commit_batch as job  # noqa: E402

SPEC = {
    "cycleId": "cycle-1",
    "table": "silver_trades",
    "layer": "silver",
    "batchId": "0123456789abcdef0123456789abcdef",
    "windowStart": "2026-11-22T00:00:00.000Z",
    "windowEnd": "2026-11-22T01:00:00.000Z",
    "leaseToken": "42",
    "committer": "emr",
    "target": {"namespace": "cold", "name": "silver_trades"},
    "stagingPrefix": "s3://warehouse/staging/silver_trades/0123456789abcdef0123456789abcdef/",
}


def spec_with(**changes):
    spec = dict(SPEC)
    spec.update(changes)
    return json.dumps(spec)


NOTHING = json.dumps({"rows": 0, "files": []})


class ParseArgsTest(unittest.TestCase):
    def test_reads_the_batch_spec_as_given(self):
        self.assertEqual(job.parse_args(["--batch", json.dumps(SPEC), "--staged", NOTHING]), (SPEC, [], None, 0))

    def test_reads_the_hours_staged_and_refuses_malformed_ones(self):
        hours = [{"hour": "2026-11-22T00:00:00.000Z", "rows": 5, "checksum": "0"}]
        staged = json.dumps({"rows": 5, "files": [], "hours": hours})
        self.assertEqual(job.parse_args(["--batch", json.dumps(SPEC), "--staged", staged])[2], hours)
        for bad in ([{"hour": "x", "rows": "5", "checksum": "0"}], [{"hour": "x", "rows": 5, "checksum": "-1"}], {}):
            with self.subTest(bad=bad):
                with self.assertRaises(job.BatchSpecError) as caught:
                    job.parse_args(["--batch", json.dumps(SPEC), "--staged", json.dumps({"rows": 0, "files": [], "hours": bad})])
                self.assertIn("hours", str(caught.exception))

    def test_refuses_input_that_is_not_a_batch_spec_and_names_the_field(self):
        cases = [
            ("{not json", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (spec_with(batchId="xyz"), "batchId"),
            (spec_with(table="silver; DROP TABLE x"), "table"),
            (spec_with(windowStart="yesterday"), "windowStart"),
            (spec_with(committer="lambda"), "committer"),
            (spec_with(stagingPrefix="/tmp/x"), "stagingPrefix"),
            (spec_with(target={"namespace": "cold", "name": "a.b"}), "target.name"),
            (spec_with(windowEnd="2026-11-22T00:00:00.000Z"), "empty or inverted"),
        ]
        for text, expected in cases:
            with self.subTest(expected=expected):
                with self.assertRaises(job.BatchSpecError) as caught:
                    job.parse_args(["--batch", text, "--staged", NOTHING])
                self.assertIn(expected, str(caught.exception))

    def test_reads_the_rows_staged_and_refuses_anything_but_a_count(self):
        staged = json.dumps({"rows": 7, "files": []})
        self.assertEqual(job.parse_args(["--batch", json.dumps(SPEC), "--staged", staged])[3], 7)
        for bad in ({"files": []}, {"rows": -1, "files": []}, {"rows": "7", "files": []}, {"rows": True, "files": []}):
            with self.subTest(bad=bad):
                with self.assertRaises(job.BatchSpecError) as caught:
                    job.parse_args(["--batch", json.dumps(SPEC), "--staged", json.dumps(bad)])
                self.assertIn("--staged rows must be a count of rows", str(caught.exception))
                self.assertIn(json.dumps(bad.get("rows")), str(caught.exception))

    def test_compares_windows_as_instants_not_strings(self):
        spec = job.parse_batch_spec(
            spec_with(windowStart="2026-11-22T01:00:00+01:00", windowEnd="2026-11-22T00:30:00Z")
        )
        self.assertEqual(spec["windowEnd"], "2026-11-22T00:30:00Z")

    def test_requires_the_batch_argument(self):
        with self.assertRaises(SystemExit):
            job.parse_args([])


class MarkerTest(unittest.TestCase):
    def test_finds_the_snapshot_carrying_this_batch(self):
        snapshots = [
            {"snapshot_id": 1, "summary": {"operation": "append"}},
            {"snapshot_id": 2, "summary": {job.BATCH_ID_KEY: "f" * 32}},
            {"snapshot_id": 3, "summary": {job.BATCH_ID_KEY: SPEC["batchId"], "k2.offload.rows": "7"}},
        ]
        self.assertEqual(job.find_marker(snapshots, SPEC["batchId"])["snapshot_id"], 3)
        self.assertIsNone(job.find_marker(snapshots[:2], SPEC["batchId"]))
        self.assertIsNone(job.find_marker([{"snapshot_id": 4, "summary": None}], SPEC["batchId"]))

    def test_refuses_a_window_that_starts_before_what_iceberg_holds(self):
        newest = {"snapshot_id": 9, "summary": {job.BATCH_ID_KEY: "a" * 32, "k2.offload.window-end": "2026-11-22T00:30:00.000Z"}}
        with self.assertRaises(job.OverlapError) as caught:
            job.check_no_overlap(newest, SPEC)
        self.assertIn("already holds rows up to 2026-11-22T00:30:00.000Z", str(caught.exception))
        contiguous = {"snapshot_id": 9, "summary": {"k2.offload.window-end": SPEC["windowStart"]}}
        job.check_no_overlap(contiguous, SPEC)
        job.check_no_overlap(None, SPEC)

    def test_writes_the_marker_as_snapshot_properties(self):
        self.assertEqual(
            job.marker_properties(SPEC, 12),
            {
                "k2.offload.batch-id": SPEC["batchId"],
                "k2.offload.table": "silver_trades",
                "k2.offload.window-start": SPEC["windowStart"],
                "k2.offload.window-end": SPEC["windowEnd"],
                "k2.offload.rows": "12",
            },
        )

    def test_carries_the_hours_in_the_marker_as_the_typescript_committer_writes_them(self):
        hours = [{"hour": "2026-11-22T00:00:00.000Z", "rows": 12, "checksum": "0"}]
        properties = job.marker_properties(SPEC, 12, hours)
        self.assertEqual(properties["k2.offload.hours"], '[{"hour":"2026-11-22T00:00:00.000Z","rows":12,"checksum":"0"}]')

    def test_names_the_table_from_the_spec_target(self):
        self.assertEqual(job.table_identifier("glue", SPEC), "glue.cold.silver_trades")
        with self.assertRaises(job.BatchSpecError):
            job.table_identifier("glue; x", SPEC)


class FakeTable:
    """An Iceberg table as a catalog sees it: a version and snapshots, swapped by compare-and-set only.

    ``append`` refuses a state that is no longer current, as Glue's version check and the JDBC catalog's
    ``metadata_location`` check do. ``before_commit`` runs once inside the next append, between the
    job's check and its swap: there a second job can do its whole commit.
    """

    def __init__(self, snapshots=None, rows_per_file=5):
        self.version = 0
        self.layout = (0, 0, None)
        self.layouts_read = []
        self.snapshots = list(snapshots or [])  # oldest first
        self.rows_per_file = rows_per_file
        self.appends = []
        self.loads = 0
        self.before_commit = None

    def load(self):
        self.loads += 1
        return job.TableState(list(reversed(self.snapshots)), self.version, self.layout)

    def data_files(self, paths):
        self.layouts_read.append(self.layout)
        return [job.StagedFile(p, self.rows_per_file, p) for p in paths]

    def append(self, state, files, properties):
        hook, self.before_commit = self.before_commit, None
        if hook:
            hook()
        if state.base != self.version:
            raise job.CommitConflict("stale base %d, table at %d" % (state.base, self.version))
        return self.commit_snapshot(dict(properties), [f.path for f in files])

    def commit_snapshot(self, summary, files):
        snapshot_id = 100 + len(self.snapshots)
        self.snapshots.append({"snapshot_id": snapshot_id, "summary": summary})
        self.version += 1
        self.appends.append(files)
        return snapshot_id


FILES = ["s3://w/cold/silver_trades/data/%s/part-00000.parquet" % SPEC["batchId"]]


def commit(table, spec=SPEC, files=FILES, rows=None):
    """Commits ``files`` with the rows StageBatch would have counted (5 a file), unless ``rows`` says."""
    return job.commit_exactly_once(table, spec, list(files), 5 * len(files) if rows is None else rows)


class CommitExactlyOnceTest(unittest.TestCase):
    def test_adopts_the_staged_files_in_one_append_with_the_marker(self):
        table = FakeTable()
        self.assertEqual(commit(table), {"status": "committed", "rows": 5, "snapshotId": "100"})
        self.assertEqual(table.appends, [FILES])
        self.assertEqual(table.snapshots[0]["summary"], job.marker_properties(SPEC, 5))

    def test_a_rerun_after_the_commit_finds_the_marker_and_appends_nothing(self):
        table = FakeTable()
        commit(table)
        self.assertEqual(commit(table), {"status": "already-committed", "rows": 5, "snapshotId": "100"})
        self.assertEqual(len(table.appends), 1)

    def test_two_jobs_that_both_passed_the_marker_check_append_once(self):
        table = FakeTable()
        second = {}
        # Job A has read the table (no marker) and built its snapshot; job B runs whole before A swaps.
        table.before_commit = lambda: second.update(commit(table))
        first = commit(table)
        self.assertEqual(second, {"status": "committed", "rows": 5, "snapshotId": "100"})
        self.assertEqual(first, {"status": "already-committed", "rows": 5, "snapshotId": "100"})
        self.assertEqual(len(table.appends), 1)
        markers = [s for s in table.snapshots if s["summary"].get(job.BATCH_ID_KEY) == SPEC["batchId"]]
        self.assertEqual(len(markers), 1)

    def test_a_conflict_with_another_writer_is_checked_again_and_then_appended(self):
        table = FakeTable()
        # A compaction lands between the check and the swap: not this batch, so append on the new state.
        table.before_commit = lambda: table.commit_snapshot({"operation": "replace"}, [])
        self.assertEqual(commit(table)["status"], "committed")
        self.assertEqual(len(table.appends), 2)
        self.assertEqual(table.loads, 2)
        self.assertEqual(table.snapshots[-1]["summary"][job.BATCH_ID_KEY], SPEC["batchId"])

    def test_files_are_read_again_when_the_schema_changed_between_attempts(self):
        table = FakeTable()

        def evolve():
            # Another writer adds a column (schema 1, a new name mapping) and commits.
            table.layout = (1, 0, '[{"field-id": 11, "names": ["venue"]}]')
            table.version += 1

        table.before_commit = evolve
        self.assertEqual(commit(table)["status"], "committed")
        self.assertEqual(table.layouts_read, [(0, 0, None), (1, 0, '[{"field-id": 11, "names": ["venue"]}]')])

    def test_files_are_read_once_when_only_snapshots_moved(self):
        table = FakeTable()
        table.before_commit = lambda: table.commit_snapshot({"operation": "replace"}, [])
        commit(table)
        self.assertEqual(table.layouts_read, [(0, 0, None)])

    def test_a_newer_batch_landing_between_check_and_swap_stops_the_append(self):
        table = FakeTable()
        later = {job.BATCH_ID_KEY: "b" * 32, "k2.offload.window-end": "2026-11-22T02:00:00.000Z"}
        table.before_commit = lambda: table.commit_snapshot(later, ["other"])
        with self.assertRaises(job.OverlapError):
            commit(table)
        self.assertEqual(table.appends, [["other"]])

    def test_gives_up_after_the_attempts_without_appending(self):
        table = FakeTable()

        tries = []

        def always_moving(state, files, properties):
            tries.append(state.base)
            table.version += 1
            raise job.CommitConflict("moved")

        table.append = always_moving
        with self.assertRaises(job.CommitConflict) as caught:
            job.commit_exactly_once(table, SPEC, FILES, 5, max_attempts=3)
        self.assertIn("each of 3 commit attempts", str(caught.exception))
        self.assertEqual(tries, [0, 1, 2])
        self.assertEqual(table.snapshots, [])

    def test_refuses_to_append_over_a_newer_batch(self):
        later = {
            job.BATCH_ID_KEY: "b" * 32,
            "k2.offload.window-start": "2026-11-22T00:00:00.000Z",
            "k2.offload.window-end": "2026-11-22T02:00:00.000Z",
        }
        table = FakeTable(snapshots=[{"snapshot_id": 7, "summary": later}])
        with self.assertRaises(job.OverlapError):
            commit(table)
        self.assertEqual(table.appends, [])

    def test_a_newest_marker_without_a_window_end_does_not_stop_the_append(self):
        # Only an end after this window's start is an overlap; a marker that names none claims no rows.
        table = FakeTable(snapshots=[{"snapshot_id": 7, "summary": {job.BATCH_ID_KEY: "b" * 32}}])
        self.assertEqual(commit(table)["status"], "committed")
        self.assertEqual(table.appends, [FILES])

    def test_writes_nothing_when_nothing_was_staged(self):
        table = FakeTable()
        self.assertEqual(commit(table, files=()), {"status": "empty", "rows": 0})
        self.assertEqual(table.appends, [])

    def test_refuses_staged_files_holding_more_or_fewer_rows_than_staged(self):
        for rows in (4, 6):
            with self.subTest(rows=rows):
                table = FakeTable()
                with self.assertRaises(job.StagedRowsError) as caught:
                    commit(table, rows=rows)
                self.assertIn("hold 5 rows, the batch says %d" % rows, str(caught.exception))
                self.assertIn(SPEC["batchId"], str(caught.exception))
                self.assertEqual(table.appends, [])

    def test_refuses_rows_staged_without_any_file(self):
        table = FakeTable()
        with self.assertRaises(job.StagedRowsError) as caught:
            commit(table, files=(), rows=3)
        self.assertIn("hold 0 rows, the batch says 3", str(caught.exception))
        self.assertEqual(table.appends, [])

    def test_main_refuses_a_row_count_the_files_do_not_hold(self):
        table = FakeTable()
        staged = SPEC["stagingPrefix"] + "t42-abc123/part-00000.parquet"
        argv = ["--batch", json.dumps(SPEC), "--staged", json.dumps({"rows": 9, "files": [{"uri": staged, "bytes": 9}]})]
        with self.assertRaises(job.StagedRowsError):
            job.main(argv, spark=object(), table=table)
        self.assertEqual(table.appends, [])

    def test_main_commits_exactly_the_staged_files_it_is_given(self):
        table = FakeTable()
        staged = [SPEC["stagingPrefix"] + "t42-abc123/part-00000.parquet"]
        hours = [{"hour": "2026-11-22T00:00:00.000Z", "rows": 5, "checksum": "0"}]
        result = job.main(
            [
                "--batch",
                json.dumps(SPEC),
                "--staged",
                json.dumps({"rows": 5, "files": [{"uri": staged[0], "bytes": 9}], "hours": hours}),
            ],
            spark=object(),
            table=table,
        )
        self.assertEqual(result["status"], "committed")
        self.assertEqual(table.appends, [staged])
        self.assertEqual(json.loads(table.snapshots[0]["summary"]["k2.offload.hours"]), hours)


class JavaError(Exception):
    """What py4j raises for a Java exception: ``java_exception`` names the Java class."""

    def __init__(self, java_class):
        super().__init__("java: %s" % java_class)
        name = java_class
        self.java_exception = type("J", (), {"getClass": lambda _: type("C", (), {"getName": lambda _: name})()})()


class Chain:
    """Any call chain of Iceberg's builders (newFastAppend().set(...).apply(), buildFrom(...)...)."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args):
        return self

    def snapshotId(self):
        return 77


class JavaAppendTest(unittest.TestCase):
    """The catalog's answers to a swap, as ``IcebergJavaTable.append`` passes them to the decision logic."""

    def append_raising(self, error):
        table = object.__new__(job.IcebergJavaTable)
        table._table, table._iceberg = Chain(), Chain()

        def commit(base, updated):
            if error is not None:
                raise error

        table._ops = type("Ops", (), {"commit": staticmethod(commit)})()
        return table.append(job.TableState([], "base"), [job.StagedFile("p", 1, "h")], {"k": "v"})

    def test_a_lost_race_or_an_unknown_outcome_is_a_conflict_read_again(self):
        for name in (
            "org.apache.iceberg.exceptions.CommitFailedException",
            "org.apache.iceberg.exceptions.CommitStateUnknownException",
        ):
            with self.subTest(name=name):
                with self.assertRaises(job.CommitConflict) as caught:
                    self.append_raising(JavaError(name))
                self.assertIn(name, str(caught.exception))

    def test_any_other_failure_passes_through(self):
        with self.assertRaises(JavaError):
            self.append_raising(JavaError("org.apache.iceberg.exceptions.ForbiddenException"))

    def test_a_swap_accepted_returns_the_snapshot_id(self):
        self.assertEqual(self.append_raising(None), 77)


class StagedFenceTest(unittest.TestCase):
    """The same fence as the TypeScript committer: one attempt of this batch under this lease."""

    def paths(self, *uris):
        return job.staged_paths(SPEC, json.dumps({"rows": 1, "files": [{"uri": u, "bytes": 1} for u in uris]}))

    def test_accepts_the_parts_of_one_attempt_of_this_lease(self):
        a = SPEC["stagingPrefix"] + "t42-abc123/part-00001.parquet"
        b = SPEC["stagingPrefix"] + "t42-abc123/part-00000.parquet"
        self.assertEqual(self.paths(a, b), [b, a])
        self.assertEqual(self.paths(), [])

    def test_refuses_another_lease_another_batch_or_two_attempts(self):
        prefix = SPEC["stagingPrefix"]
        for uris in (
            [prefix + "t41-abc123/part-00000.parquet"],
            [prefix.replace(SPEC["batchId"], "f" * 32) + "t42-abc123/part-00000.parquet"],
            [prefix + "part-00000.parquet"],
            [prefix + "t42-abc123/part-00000.parquet.crc"],
            [prefix + "t42-abc123/part-00000.parquet", prefix + "t42-def456/part-00001.parquet"],
        ):
            with self.subTest(uris=uris):
                with self.assertRaises(job.BatchSpecError):
                    self.paths(*uris)


class SettlePartitionTest(unittest.TestCase):
    def test_equal_bounds_without_nulls_are_the_files_partition(self):
        self.assertEqual(job.settle_partition("f", "day", 20414, 20414, 0, 10), 20414)

    def test_a_file_of_nulls_is_the_null_partition(self):
        self.assertIsNone(job.settle_partition("f", "exchange", None, None, 4, 4))

    def test_a_file_spanning_partitions_or_with_some_nulls_is_refused_by_name(self):
        for lower, upper, nulls in ((20414, 20415, 0), (20414, 20414, 1), (None, None, 0)):
            with self.subTest(lower=lower, upper=upper, nulls=nulls):
                with self.assertRaises(job.PartitionError) as caught:
                    job.settle_partition("s3://w/part-00000.parquet", "day", lower, upper, nulls, 10)
                self.assertIn("s3://w/part-00000.parquet", str(caught.exception))
                self.assertIn("partition field day", str(caught.exception))


class PartitionValueTest(unittest.TestCase):
    # 2026-11-22T10:30:00Z in microseconds; expected values as our TypeScript writer computes them
    # (src/iceberg/transforms.ts), so both committers put a file in the same partition.
    TS = 1795343400000000

    def test_transforms_bounds_as_iceberg_does(self):
        cases = [
            ("day", "TIMESTAMP", self.TS, 20779),
            ("hour", "TIMESTAMP", self.TS, 498706),
            ("month", "TIMESTAMP", self.TS, 682),
            ("year", "TIMESTAMP", self.TS, 56),
            ("day", "TIMESTAMP", -1, -1),
            ("month", "TIMESTAMP", -1, -1),
            ("hour", "TIMESTAMP", -1, -1),
            ("month", "DATE", 20779, 682),
            ("truncate[10]", "LONG", -1, -10),
            ("truncate[10]", "INTEGER", 123, 120),
            ("truncate[3]", "STRING", "binance", "bin"),
            ("identity", "STRING", "kraken", "kraken"),
        ]
        for transform, type_id, value, expected in cases:
            with self.subTest(transform=transform, type_id=type_id, value=value):
                self.assertEqual(job.transform_bound(transform, type_id, value), expected)

    def test_leaves_what_it_cannot_compute_unsettled(self):
        self.assertIsNone(job.transform_bound("bucket[16]", "LONG", 7))
        self.assertIsNone(job.transform_bound("identity", "TIMESTAMP", self.TS))
        self.assertIsNone(job.transform_bound("hour", "DATE", 20779))
        self.assertIsNone(job.transform_bound("day", "TIMESTAMP", None))

    def test_writes_values_as_iceberg_parses_partition_strings(self):
        self.assertEqual(job.partition_string("day", "TIMESTAMP", 20779), "2026-11-22")
        self.assertEqual(job.partition_string("day", "TIMESTAMP", -1), "1969-12-31")
        self.assertEqual(job.partition_string("identity", "DATE", 0), "1970-01-01")
        self.assertEqual(job.partition_string("month", "TIMESTAMP", 682), "682")
        self.assertEqual(job.partition_string("identity", "STRING", "kraken"), "kraken")
        self.assertEqual(job.partition_string("identity", "BOOLEAN", True), "true")
        self.assertIsNone(job.partition_string("identity", "STRING", None))


if __name__ == "__main__":
    unittest.main()
