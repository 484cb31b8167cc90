"""dCache SSE messages -> canonical events: only complete files trigger; event loss is loud."""

from __future__ import annotations

import pytest

from oscar_stream.core.events import CREATED, REMOVED
from oscar_stream.ingest.sse import SseParser
from oscar_stream.normalize.dcache_events import EventLoss, SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError
from tests.support.paths import EVENTS

FOLDER = "/pnfs/facility/xfel/raw"


def _messages() -> list[tuple[str, str, str | None]]:
    parser = SseParser()
    return [(m.event, m.data, m.id) for m in parser.feed((EVENTS / "dcache-stream.txt").read_bytes() + b"\n\n")]


def _parse(event: str, data: str, sse_id: str | None, path: str | None = FOLDER):  # type: ignore[no-untyped-def]
    return parse_dcache_message(data.encode(), SseContext(event, sse_id, "chan-1", path), "webdav.dcache",
                                "2026-01-01T00:00:00.000Z")


def test_sample_stream_triggers_on_complete_files_and_removals_only() -> None:
    triggered, lost, ignored = [], [], []
    for event, data, sse_id in _messages():
        try:
            outcome = _parse(event, data, sse_id)
        except EventLoss:
            lost.append(sse_id)
            continue
        triggered += [(sse_id, e.type, e.key) for e in outcome.events]
        if outcome.ignored:
            ignored.append(sse_id)
    assert triggered == [("3", CREATED, f"{FOLDER}/shot-0815.h5"), ("5", REMOVED, f"{FOLDER}/shot-0816.h5.part"),
                         ("8", CREATED, f"{FOLDER}/shot-0816.h5")]
    assert lost == ["7"]
    assert ignored == ["1", "2", "4", "6"]


def test_event_fields_and_identity() -> None:
    outcome = _parse("inotify", '{"event":{"name":"a.h5","mask":["IN_CLOSE_WRITE"]},"subscription":"s"}', "9")
    [event] = outcome.events
    assert (event.type, event.kind, event.bucket, event.action, event.sequencer) == (
        CREATED, "dcache", None, "IN_CLOSE_WRITE", "9")
    assert event.path == "pnfs/facility/xfel/raw/a.h5"
    again = _parse("inotify", '{"event":{"name":"a.h5","mask":["IN_CLOSE_WRITE"]},"subscription":"s"}', "9")
    later = _parse("inotify", '{"event":{"name":"a.h5","mask":["IN_CLOSE_WRITE"]},"subscription":"s"}', "10")
    assert again.events[0].id == event.id != later.events[0].id


def test_moves_into_the_folder_trigger_and_removals_are_removed_events() -> None:
    moved = _parse("inotify", '{"event":{"name":"b","mask":["IN_MOVED_TO"],"cookie":"x"}}', "1")
    deleted = _parse("inotify", '{"event":{"name":"b","mask":["IN_DELETE"]}}', "2")
    assert moved.events[0].type == CREATED and deleted.events[0].type == REMOVED


def test_queue_overflow_is_event_loss() -> None:
    with pytest.raises(EventLoss, match="IN_Q_OVERFLOW"):
        _parse("inotify", '{"event":{"name":"x","mask":["IN_Q_OVERFLOW"]}}', "3")


@pytest.mark.parametrize(("data", "reason"), [
    ("not json", "not JSON"),
    ("[1]", "JSON object"),
    ('{"nope":1}', "without an 'event'"),
    ('{"event":{"name":"x","mask":"IN_CLOSE_WRITE"}}', "mask must be a list"),
    ('{"event":{"name":"a/b","mask":["IN_CLOSE_WRITE"]}}', "must be a file name"),
])
def test_bad_messages_have_reasons(data: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        _parse("inotify", data, "1")


def test_unknown_subscription_is_an_error_not_a_guess() -> None:
    with pytest.raises(ParseError, match="unknown subscription"):
        _parse("inotify", '{"event":{"name":"x","mask":["IN_CLOSE_WRITE"]},"subscription":"u"}', "1", path=None)
