"""The SSE parser against the event-stream format's corner cases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oscar_stream.ingest.sse import SseMessage, SseParser


def test_fields_comments_multiline_data_and_ids() -> None:
    stream = b": hello\nevent: inotify\nid: 4\ndata: {\"a\":\ndata: 1}\n\nretry: 3000\ndata: x\n\n"
    parser = SseParser()
    messages = list(parser.feed(stream))
    assert messages == [SseMessage("inotify", '{"a":\n1}', "4"), SseMessage("message", "x", "4", 3000)]
    assert parser.last_id == "4"


def test_crlf_and_cr_line_endings_and_split_chunks() -> None:
    stream = b"event: SYSTEM\r\nid: 1\r\ndata: a\r\n\r\ndata: b\rid: 2\r\r"
    parser = SseParser()
    out = []
    for i in range(len(stream)):  # one byte at a time, the worst case for a network stream
        out += list(parser.feed(stream[i:i + 1]))
    out += list(parser.feed(b"\n"))
    assert [(m.event, m.data, m.id) for m in out] == [("SYSTEM", "a", "1"), ("message", "b", "2")]


def test_event_without_data_is_not_dispatched() -> None:
    assert list(SseParser().feed(b"event: x\nid: 3\n\n")) == []


_LINE_TEXT = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\r\n\x00"), max_size=20)


@given(st.lists(_LINE_TEXT, max_size=5),
       st.integers(min_value=1, max_value=7))
def test_chunking_never_changes_the_result(datas: list[str], chunk: int) -> None:
    stream = "".join(f"id: {i}\ndata: {d}\n\n" for i, d in enumerate(datas)).encode()
    whole = list(SseParser().feed(stream))
    parser = SseParser()
    pieces = []
    for start in range(0, len(stream), chunk):
        pieces += list(parser.feed(stream[start:start + chunk]))
    assert pieces == whole
    assert [m.data for m in whole] == datas
