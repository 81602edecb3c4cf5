"""`fcbench.http1`: the HTTP/1.1 framing rules every fcbench client follows, byte by byte."""

from __future__ import annotations

import pytest

from fcbench.http1 import HttpProtocolError, ResponseReader, end_to_end, request_head

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def read(*chunks: bytes, method: str = "POST", eof: bool = False) -> ResponseReader:
    reader = ResponseReader(method)
    for chunk in chunks:
        reader.feed(chunk)
    if eof:
        reader.eof()
    return reader


@pytest.mark.parametrize("chunks", [
    [b"HTTP/1.1 100 Continue\r\n\r\n" + OK],
    [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: <a>\r\n\r\n", OK],
    [b"HTTP/1.1 100 Contin", b"ue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Le", b"ngth: 2\r\n\r\nh", b"i"],
])
def test_interim_responses_are_skipped_in_any_split(chunks):
    r = read(*chunks)
    assert r.done and r.status == 200 and r.body == b"hi" and r.keep_alive


def test_an_interim_response_alone_is_not_an_answer():
    r = read(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert not r.done and r.started
    with pytest.raises(HttpProtocolError, match="before it answered"):
        r.eof()


def test_chunked_body_is_dechunked():
    r = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n3\r\nabc\r\n0\r\n\r\n")
    assert r.done and r.body == b"hiabc" and r.keep_alive


def test_a_chunked_body_can_be_taken_piece_by_piece_as_it_arrives():
    r = ResponseReader()
    assert not r.feed(b"HTTP/1.1 100 Continue\r\n\r\n") and not r.head_done
    assert not r.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    assert r.head_done and r.chunked and r.status == 200 and not r.body_started
    assert r.take() == b""
    assert not r.feed(b"2\r\nhi\r\n3\r\nab") and r.body_started
    assert r.take() == b"hiab" and r.take() == b"" and not r.body_started
    assert r.feed(b"c\r\n4\r\nlast\r\n0\r\n\r\n") and r.body_started
    assert r.body == b"clast" and r.keep_alive  # what was not taken


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n"
                                  b"Connection: close\r\n\r\n"])
def test_only_a_response_whose_last_coding_is_chunked_counts_as_chunked(head):
    r = read(head)
    assert r.head_done and not r.chunked


@pytest.mark.parametrize("method, status", [("HEAD", 200), ("POST", 204), ("GET", 304)])
def test_head_204_and_304_have_no_body_whatever_content_length_says(method, status):
    r = read(f"HTTP/1.1 {status} X\r\nContent-Length: 5\r\n\r\n".encode(), method=method)
    assert r.done and r.status == status and r.body == b"" and r.keep_alive


def test_body_until_close_ends_at_eof_and_the_connection_is_not_reused():
    r = read(b"HTTP/1.1 200 OK\r\n\r\nall of it", eof=True)
    assert r.done and r.body == b"all of it" and not r.keep_alive


def test_connection_close_is_not_reusable():
    r = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
    assert r.done and not r.keep_alive


def test_close_mid_body_is_an_error_not_a_short_answer():
    r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert not r.done
    with pytest.raises(HttpProtocolError, match="middle of its response"):
        r.eof()


def test_bytes_after_the_final_response_make_the_connection_unusable():
    r = read(OK + b"HTTP/1.1 200 OK\r\nX-Other: 1\r\n")
    assert r.done and r.body == b"hi" and not r.keep_alive
    assert ("x-other", "1") not in r.headers


def test_garbage_is_a_protocol_error():
    with pytest.raises(HttpProtocolError, match="malformed"):
        read(b"SMTP ready\r\n\r\n")


def test_end_to_end_drops_hop_by_hop_and_connection_named_headers():
    kept = end_to_end([("Connection", "keep-alive, X-Private"), ("X-Private", "1"),
                       ("Keep-Alive", "5"), ("TE", "trailers"), ("Trailer", "x"),
                       ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
                       ("Proxy-Authorization", "b"), ("Expect", "100-continue"),
                       ("Authorization", "a"), ("X-Keep", "yes")], drop=frozenset({"authorization"}))
    assert kept == [("X-Keep", "yes")]


def test_request_head_sets_framing_and_refuses_header_injection():
    head = request_head("POST", "/invoke", "127.0.0.1:1", [("Host", "evil"), ("X-A", "1")], 3)
    assert head == b"POST /invoke HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Length: 3\r\nX-A: 1\r\n\r\n"
    assert b"Content-Length" not in request_head("GET", "/", "h", [], 0)
    with pytest.raises(ValueError, match="line break"):
        request_head("POST", "/", "h", [("X-A", "1\r\nX-Injected: 1")], 0)
