"""Answers as a client reads them off the connection: each whole and in order, whether the
requests come one by one, pipelined, or as HEAD (an answer with no body to send after its
head)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tests.integration.frontdoor.conftest import Door

Answer = tuple[int, dict[str, str], bytes]


def _answers(door: Door, *sends: bytes) -> list[Answer]:
    """Sends each of ``sends`` (one or more requests) in turn on one connection, reading the
    answers to one before sending the next: (status, headers, body) each, the body by its
    Content-Length."""
    address = urlsplit(door.url)
    out: list[Answer] = []
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        for request in sends:
            sock.sendall(request)
            out += _read(sock, _methods(request))
    return out


def _read(sock: socket.socket, methods: list[str]) -> list[Answer]:
    """The answers to ``methods``' requests, read off ``sock``."""
    buffer = b""
    out = []
    for method in methods:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection before answering"
            buffer += chunk
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        length = 0 if method == "HEAD" else int(headers["content-length"])
        while len(buffer) < length:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection mid-answer"
            buffer += chunk
        body, buffer = buffer[:length], buffer[length:]
        out.append((int(status_line.split(" ")[1]), headers, body))
    return out


def _methods(request: bytes) -> list[str]:
    return [part.split(b" ", 1)[0].decode() for part in request.split(b"\r\n\r\n") if part]


def test_pipelined_requests_are_answered_whole_and_in_order(door: Door) -> None:
    """Three requests sent at once on one connection get three whole answers, in order."""
    request = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /check?lang=zh HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = _answers(door, request)
    assert [status for status, _, _ in answers] == [200, 200, 404]
    assert answers[0][2] == b"ok\n"
    assert "查验" in answers[1][2].decode() and answers[1][2].endswith(b"</html>")
    assert b"nothing here" in answers[2][2]


def test_head_gets_the_headers_at_once_and_the_connection_stays_usable(door: Door) -> None:
    """HEAD on the check page, alone on its connection, answers its headers (the length a GET
    would send) without a body, and a GET after it on the same connection is answered too."""
    (head_status, head, _), (get_status, got, body) = _answers(
        door, b"HEAD /check HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\n\r\n",
        b"GET /check HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\n\r\n")
    assert head_status == get_status == 200
    assert head["content-type"].startswith("text/html")
    assert head["content-length"] == got["content-length"] == str(len(body))
    assert head["cache-control"] == "no-store" and head["access-control-allow-origin"] == "*"
