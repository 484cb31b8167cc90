"""The upload helper's report of what it uploaded: in the termination message while it fits Kubernetes' 4 KiB,
else in the container's log, and read back exactly (or refused with a reason)."""

from __future__ import annotations

import orjson
import pytest

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.results import StoredObject
from oscar_stream.launch.output_report import (
    OUTPUT_LINE,
    REPORT_LIMIT,
    output_report,
    output_row,
    read_log_rows,
    read_report,
)


def _objects(count: int) -> list[StoredObject]:
    return [StoredObject("minio.default", "b", f"out/a-long-name-for-output-number-{i}.dat", i, f"etag{i}", None)
            for i in range(count)]


def test_a_report_that_fits_is_the_rows_themselves() -> None:
    objects = _objects(3)
    report = output_report(objects)
    assert len(report) <= REPORT_LIMIT and read_report(report) == objects


def test_a_report_over_the_limit_points_to_the_log_which_holds_every_row() -> None:
    objects = _objects(200)
    report = output_report(objects)
    assert len(report) <= REPORT_LIMIT and read_report(report) == 200
    log = "\n".join(["fetched something", *(OUTPUT_LINE + orjson.dumps(output_row(o)).decode() for o in objects)])
    assert read_log_rows(log, 200) == objects


def test_a_log_missing_rows_or_a_bad_report_is_an_error_not_a_silent_loss() -> None:
    with pytest.raises(InvalidEvent, match="lists 0 outputs, its report said 2"):
        read_log_rows("no output lines\n", 2)
    with pytest.raises(InvalidEvent, match="unreadable output report"):
        read_report("not json")
    with pytest.raises(InvalidEvent, match="6 fields"):
        read_report('[["only", "two"]]')
