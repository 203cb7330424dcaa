"""kengine.dask.to_kafka()'s checks of its arguments (made on the caller's side, before any
task runs), the outcome helpers, and the reading of OffsetFetch answers that the done-markers
rely on. The writes themselves are tested against real brokers in
tests/integration/test_dask.py."""
from __future__ import annotations

import pickle

import dask.bag as db
import dask.dataframe as dd
import pandas as pd
import pytest

from kengine.admin import CommittedOffset, _committed
from kengine.dask import IngestResult, PartitionOutcome, row_ranges, to_kafka
from kengine.errors import ConfigError, IngestError, UnstableOffsetCommitError

CONFIG = {"bootstrap.servers": "127.0.0.1:9"}


def _df() -> dd.DataFrame:
    return dd.from_pandas(pd.DataFrame({"key": ["a", "b"], "value": [b"1", b"2"]}),
                          npartitions=1)


def test_row_ranges_merge_neighbours() -> None:
    assert row_ranges([7, 0, 2, 1, 9, 8]) == ((0, 3), (7, 10))
    assert row_ranges([]) == ()


def test_transactional_id_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="job_id"):
        to_kafka(_df(), "t", producer_config={**CONFIG, "transactional.id": "x"})


def test_a_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match=r"'payload' \(given as value=\)"):
        to_kafka(_df(), "t", value="payload", producer_config=CONFIG)


def test_a_bad_setting_fails_on_the_caller() -> None:
    with pytest.raises(ConfigError, match="linger.ms"):
        to_kafka(_df(), "t", producer_config={**CONFIG, "linger.ms": -1})


def test_only_dask_collections() -> None:
    with pytest.raises(TypeError, match="DataFrame or a dask.bag.Bag, not pandas"):
        to_kafka(pd.DataFrame({"value": [b"1"]}), "t", producer_config=CONFIG)


def test_a_bag_is_accepted_without_columns() -> None:
    job = to_kafka(db.from_sequence([b"a"]), "t", producer_config=CONFIG, compute=False)
    assert job.key.startswith("kengine-to-kafka-")


def test_ingest_error_keeps_its_result_through_pickle() -> None:
    result = IngestResult("j", "t", True, (PartitionOutcome(3, 10, 0, failed=((0, 10),),
                                                            error="partition 3: row 4"),))
    err = pickle.loads(pickle.dumps(IngestError("boom", result)))
    assert str(err) == "boom" and err.result == result
    assert result.failed_rows == 10 and not result.ok
    assert "partition 3: rows 0-9 not written: partition 3: row 4" in result.describe_failures()


def test_offset_fetch_answers_v8_and_v7() -> None:
    wanted = [("t", 0), ("t", 1)]
    v8 = {"groups": [{"group_id": "g", "error_code": 0, "topics": [{"name": "t", "partitions": [
        {"partition_index": 0, "committed_offset": 1500, "committed_leader_epoch": -1,
         "metadata": "", "error_code": 0},
        {"partition_index": 1, "committed_offset": -1, "committed_leader_epoch": -1,
         "metadata": None, "error_code": 0}]}]}]}
    assert _committed(v8, "g", wanted) == {("t", 0): CommittedOffset(1500, "", -1),
                                           ("t", 1): None}
    v7 = {"error_code": 0, "topics": [{"name": "t", "partitions": [
        {"partition_index": 0, "committed_offset": -1, "committed_leader_epoch": -1,
         "metadata": None, "error_code": 88}]}]}
    with pytest.raises(UnstableOffsetCommitError):
        _committed(v7, "g", wanted)
