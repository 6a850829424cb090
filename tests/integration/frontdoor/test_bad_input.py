"""Bad input at the front door: huge targets, bad UTF-8, thousands of query parameters, other
methods and clients that send their request a byte at a time each get a 4xx, while the
requests of everyone else are answered."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

from tests.integration.frontdoor.conftest import HEADER_TIMEOUT_S, Door, Shop


def raw(door: Door, request: bytes, timeout: float = 10.0) -> bytes:
    """Sends bytes as they are and returns whatever comes back before the server closes."""
    address = urlsplit(door.url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in b"".join(
                    chunks).lower():
                break
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_huge_paths_are_refused(door: Door, shop: Shop) -> None:
    """A request target of 10,000 characters is refused with 414; one of 100,000 the HTTP
    parser itself refuses with 400."""
    pack = shop.pack()
    for length, status in ((10_000, 414), (100_000, 400)):
        target = f"/01/{pack.gtin}/21/" + "A" * length
        answer = raw(door, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status_of(answer) == status, length


def test_ten_thousand_query_parameters_are_refused(door: Door, shop: Shop) -> None:
    """10,000 query parameters are refused (400 from the parser at 80 kB, 414 at 20 kB); a
    hundred short ones that fit are refused with 400."""
    pack = shop.pack()
    for query, status in (("&".join(f"p{i}=1" for i in range(10_000)), 400),
                          ("&".join("a" for _ in range(10_000)), 414)):
        many = raw(door, f"GET /01/{pack.gtin}?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert status_of(many) == status
    with door.client() as http:
        hundred = http.get("/check?" + "&".join("a" for _ in range(100)))
    assert hundred.status_code == 400
    assert "query parameters" in hundred.json()["detail"]


def test_bad_utf8_is_400(door: Door, shop: Shop) -> None:
    """Percent-escapes that are not UTF-8, in the path or the query, and raw bytes that are
    not ASCII in the request line, are each 400."""
    pack = shop.pack()
    with door.client() as http:
        in_path = http.get(f"/01/{pack.gtin}/21/%FF%FE")
        in_query = http.get("/check?code=%C3%28")
    assert in_path.status_code == 400
    assert in_query.status_code == 400
    answer = raw(door, b"GET /01/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400


def test_methods_other_than_get_head_options_are_405(door: Door) -> None:
    """POST, PUT and DELETE are 405 with the methods allowed."""
    with door.client() as http:
        for method in ("POST", "PUT", "DELETE"):
            answer = http.request(method, "/check", content=b"code=1")
            assert answer.status_code == 405, method
            assert answer.headers["allow"] == "GET, HEAD, OPTIONS"


def test_an_unknown_path_is_404(door: Door) -> None:
    """A path no route serves, and a Digital Link of a primary key other than (01) and (00),
    are 404 saying where the resolver and the check page are."""
    with door.client() as http:
        for path in ("/wp-admin/setup.php", "/414/0614141000418"):
            answer = http.get(path)
            assert answer.status_code == 404
            assert "/01/{gtin}" in answer.json()["detail"]


def test_slow_clients_get_408_and_others_are_served_meanwhile(door: Door, shop: Shop) -> None:
    """Twenty clients sending their request head a little at a time get 408 once the head
    deadline passes; while they hang on, every other request is answered correctly."""
    pack = shop.pack()
    address = urlsplit(door.url)
    slow = [socket.create_connection((address.hostname, address.port), timeout=30)
            for _ in range(20)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        with door.client() as http:
            answers = [http.get("/check", params={"code": pack.codes[0]}) for _ in range(5)]
            answers += [http.get(pack.digital_link()) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5 + [307] * 5
        replies: list[bytes] = []

        def trickle_and_read(sock: socket.socket) -> None:
            sock.sendall(b"X-Slow: 1\r\n")
            replies.append(sock.recv(4096))

        threads = [threading.Thread(target=trickle_and_read, args=(s,)) for s in slow]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HEADER_TIMEOUT_S + 20)
        assert len(replies) == 20
        assert all(status_of(reply) == 408 for reply in replies)
    finally:
        for sock in slow:
            sock.close()
