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


class ParseArgsTest(unittest.TestCase):
    def test_reads_the_batch_spec_as_given(self):
        self.assertEqual(job.parse_args(["--batch", json.dumps(SPEC)]), SPEC)

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
                    job.parse_args(["--batch", text])
                self.assertIn(expected, str(caught.exception))

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

    def test_queries_only_the_current_ancestry_for_the_batch_id(self):
        sql = job.marker_query("glue.cold.silver_trades", SPEC["batchId"])
        self.assertIn("glue.cold.silver_trades.snapshots", sql)
        self.assertIn("glue.cold.silver_trades.history", sql)
        self.assertIn("is_current_ancestor", sql)
        self.assertIn("summary['k2.offload.batch-id'] = '%s'" % SPEC["batchId"], sql)
        with self.assertRaises(job.BatchSpecError):
            job.marker_query("glue.cold.t", "1' OR '1'='1")

    def test_refuses_a_window_that_starts_before_what_iceberg_holds(self):
        newest = {"snapshot_id": 9, "summary": {job.BATCH_ID_KEY: "a" * 32, "k2.offload.window-end": "2026-11-22T00:30:00.000Z"}}
        with self.assertRaises(job.OverlapError) as caught:
            job.check_no_overlap(newest, SPEC)
        self.assertIn("already holds rows up to 2026-11-22T00:30:00.000Z", str(caught.exception))
        contiguous = {"snapshot_id": 9, "summary": {"k2.offload.window-end": SPEC["windowStart"]}}
        job.check_no_overlap(contiguous, SPEC)
        job.check_no_overlap(None, SPEC)
        sql = job.newest_marker_query("glue.cold.silver_trades")
        self.assertIn("is_current_ancestor", sql)
        self.assertIn("ORDER BY h.made_current_at DESC LIMIT 1", sql)

    def test_writes_the_marker_as_snapshot_properties(self):
        self.assertEqual(
            job.write_options(SPEC, 12),
            {
                "snapshot-property.k2.offload.batch-id": SPEC["batchId"],
                "snapshot-property.k2.offload.table": "silver_trades",
                "snapshot-property.k2.offload.window-start": SPEC["windowStart"],
                "snapshot-property.k2.offload.window-end": SPEC["windowEnd"],
                "snapshot-property.k2.offload.rows": "12",
            },
        )

    def test_names_the_table_from_the_spec_target(self):
        self.assertEqual(job.table_identifier("glue", SPEC), "glue.cold.silver_trades")
        with self.assertRaises(job.BatchSpecError):
            job.table_identifier("glue; x", SPEC)


class _Row:
    def __init__(self, data):
        self._data = data

    def asDict(self):
        return dict(self._data)


class FakeSpark:
    """Just enough of a SparkSession for the commit flow: an Iceberg table as a list of snapshots."""

    def __init__(self, snapshots=None, staged_rows=5):
        self.snapshots = list(snapshots or [])
        self.staged_rows = staged_rows
        self.appends = []
        self.conf = {"spark.k2.catalog": "glue"}
        spark = self

        class Frame:
            def select(self, *columns):
                spark.selected = columns
                return self

            def count(self):
                return spark.staged_rows

            def writeTo(self, identifier):
                writer = self

                class Writer:
                    def options(self, **options):
                        self._options = options
                        return self

                    def append(self):
                        summary = {k[len("snapshot-property."):]: v for k, v in self._options.items()}
                        spark.snapshots.append({"snapshot_id": 100 + len(spark.snapshots), "summary": summary})
                        spark.appends.append((identifier, self._options))

                return Writer()

        class Reader:
            def parquet(self, *files):
                spark.read_files = files
                return Frame()

        class Table:
            columns = ["a", "b"]

        self.read = Reader()
        self._table = Table()

    def table(self, identifier):
        return self._table

    def sql(self, query):
        spark = self

        class Result:
            def collect(self):
                if "LIMIT 1" in query:
                    return [_Row(s) for s in spark.snapshots[-1:]]
                return [_Row(s) for s in spark.snapshots if s["summary"].get(job.BATCH_ID_KEY) in query]

        return Result()


class FakeConf(dict):
    def get(self, key, default=None):
        return dict.get(self, key, default)


class MainTest(unittest.TestCase):
    def run_job(self, spark, files=("s3://w/staging/x/part-00000.parquet",)):
        spark.conf = FakeConf(spark.conf)
        return job.main(["--batch", json.dumps(SPEC)], spark=spark, list_files=lambda _s, _p: list(files))

    def test_appends_staged_rows_once_with_the_marker(self):
        spark = FakeSpark()
        first = self.run_job(spark)
        self.assertEqual(first, {"status": "committed", "rows": 5, "snapshotId": "100"})
        self.assertEqual(spark.selected, ("a", "b"))
        second = self.run_job(spark)
        self.assertEqual(second, {"status": "already-committed", "rows": 5, "snapshotId": "100"})
        self.assertEqual(len(spark.appends), 1)
        self.assertEqual(spark.appends[0][0], "glue.cold.silver_trades")

    def test_refuses_to_append_over_a_newer_batch(self):
        later = {
            job.BATCH_ID_KEY: "b" * 32,
            "k2.offload.window-start": "2026-11-22T00:00:00.000Z",
            "k2.offload.window-end": "2026-11-22T02:00:00.000Z",
        }
        spark = FakeSpark(snapshots=[{"snapshot_id": 7, "summary": later}])
        with self.assertRaises(job.OverlapError):
            self.run_job(spark)
        self.assertEqual(spark.appends, [])

    def test_writes_nothing_when_nothing_was_staged(self):
        spark = FakeSpark()
        self.assertEqual(self.run_job(spark, files=()), {"status": "empty", "rows": 0})
        self.assertEqual(spark.appends, [])


if __name__ == "__main__":
    unittest.main()
