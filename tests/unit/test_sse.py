import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_tbreplay.core.sse import Framer, SSEError, blocks, format_event, iter_events, split_events


def test_split_events_reads_each_data_event():
    body = format_event('{"a":1}') + ": keep-alive comment\n\n" + format_event("[DONE]")
    assert split_events(body) == ['{"a":1}', "[DONE]"]


def test_multi_line_data_joins_with_newline_and_crlf_is_accepted():
    assert split_events("data: one\r\ndata: two\r\n\r\n") == ["one\ntwo"]
    assert split_events(format_event("one\ntwo")) == ["one\ntwo"]


def test_split_events_rejects_a_truncated_stream():
    with pytest.raises(SSEError, match="truncated"):
        split_events('data: {"a":1}\n\ndata: {"b"')


def test_iter_events_is_independent_of_network_chunk_boundaries():
    body = (format_event('{"x":"a"}') + format_event('{"x":"b"}') + format_event("[DONE]")).encode()
    for size in (1, 3, 7, len(body)):
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        assert list(iter_events(chunks)) == ['{"x":"a"}', '{"x":"b"}', "[DONE]"]


def test_iter_events_raises_on_a_stream_cut_mid_event():
    with pytest.raises(SSEError, match="truncated"):
        list(iter_events([b'data: {"x":1}\n\ndata: {"x"']))


@pytest.mark.parametrize("ch", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c"])
def test_unicode_line_separators_inside_data_do_not_end_lines(ch):
    # d07: JSON may carry these raw; str.splitlines() would cut the event in two.
    data = json.dumps({"choices": [{"delta": {"content": f"a{ch}b"}}]}, ensure_ascii=False)
    assert split_events(format_event(data)) == [data]
    assert list(iter_events([format_event(data).encode()])) == [data]


def test_a_crlf_split_between_reads_is_one_line_end():
    # d08: the blank line's CR ends one read, its LF starts the next.
    reads = [b'data: {"a":1}\r\n\r', b"\n", b"data: [DONE]\r\n\r", b"\n"]
    assert list(iter_events(reads)) == ['{"a":1}', "[DONE]"]


def test_cr_alone_ends_lines():
    assert split_events("data: a\r\rdata:b\r\r") == ["a", "b"]


def test_invalid_utf8_is_an_sse_error_with_the_offset():
    # d09: not a raw UnicodeDecodeError, and the offset points at the bad byte.
    with pytest.raises(SSEError) as e:
        list(iter_events([b'data: {"c":"', b'\xff"}\n\n']))
    assert e.value.offset == 12


def test_whatwg_forms_are_accepted():
    # d19: event: lines, data: without a space, comments anywhere (also after [DONE]), a BOM.
    body = "\ufeff: hello\nevent: chunk\ndata:{\"a\":1}\n\nevent: done\ndata:[DONE]\n\n: keepalive\n\n"
    assert split_events(body) == ['{"a":1}', "[DONE]"]
    assert [b.data for b in blocks(body)] == ['{"a":1}', "[DONE]", None]


def test_block_ends_are_byte_offsets_after_the_blank_line():
    body = b": ping\n\ndata: \xc3\xa9\r\n\r\n"
    assert [(b.data, b.end) for b in blocks(body)] == [(None, 8), ("\u00e9", len(body))]


# -- properties ----------------------------------------------------------------------------------

_line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30)
_event = st.lists(_line_text, min_size=1, max_size=3)  # one event: its data lines
_comment = _line_text.map(lambda t: ":" + t)


@st.composite
def _streams(draw):
    """A valid SSE stream in a random form, with the event data a reader must get back."""
    eol = draw(st.sampled_from(["\n", "\r", "\r\n"]))
    lines, expected = [], []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            lines.append(draw(_comment))
        if draw(st.booleans()):
            lines.append("event: " + draw(_line_text))
        data = draw(_event)
        for value in data:
            space = value.startswith(" ") or draw(st.booleans())
            lines.append(("data: " if space else "data:") + value)
        lines.append("")
        expected.append("\n".join(data))
        if draw(st.booleans()):
            lines += [draw(_comment), ""]
    text = "".join(line + eol for line in lines)
    return text.encode(), expected


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


@pytest.mark.fuzz
@given(_streams(), st.lists(st.integers(0, 400), max_size=20))
def test_property_valid_streams_frame_the_same_whatever_the_reads(stream, cuts):
    body, expected = stream
    assert split_events(body) == expected
    assert list(iter_events(_split(body, cuts))) == expected


@pytest.mark.fuzz
@given(_streams())
def test_property_one_event_per_read_frames_as_the_whole_body(stream):
    """llama-server writes each event in one read: the framer's shortcut for a read that is one
    plain event gives the blocks, offsets and types that framing the whole body gives."""
    body, _ = stream
    f = Framer()
    per_read = [b for read in re.split(rb"(?<=\n\n)", body) for b in f.feed(read)] + f.close()
    assert per_read == blocks(body)


@pytest.mark.fuzz
@given(st.binary(max_size=200) | _streams().map(lambda s: s[0]), st.lists(st.integers(0, 200), max_size=10))
def test_property_any_bytes_give_events_or_an_sse_error(body, cuts):
    """Whatever arrives: the same answer for any read boundaries, and no exception but SSEError."""
    def frame(chunks):
        try:
            return list(iter_events(chunks))
        except SSEError as e:
            return ("SSEError", e.offset)
    assert frame(_split(body, cuts)) == frame([body])
