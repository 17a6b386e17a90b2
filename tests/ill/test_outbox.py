"""Outgoing delivery over real HTTP on loopback: answers, refusals, failures and back-off."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consortia.ill import iso18626 as iso
from consortia.ill import outbox
from consortia.ill.outbox import (
    BASE_DELAY,
    MAX_DELAY,
    DeliveryFailed,
    OutboxMessage,
    OutboxState,
    PeerRejected,
    attempt,
    retry_delay,
    send,
)
from tests.ill import samples

NOW = dt.datetime(2024, 3, 5, 12, 0, tzinfo=dt.UTC)


@dataclass
class Peer:
    """An ISO 18626 endpoint on 127.0.0.1 that answers with our confirmations, or misbehaves."""

    url: str
    mode: str = "ok"  # ok | refuse | http500 | garbage | slow | request
    received: list[tuple[bytes, str]] = field(default_factory=list)


@pytest.fixture
def peer() -> Iterator[Peer]:
    state = Peer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append((body, self.headers.get("Content-Type", "")))
            status, reply = 200, b""
            if state.mode == "http500":
                status, reply = 500, b"<html>Internal Server Error</html>"
            elif state.mode == "garbage":
                reply = b"<html><body>Welcome to our library</body></html>"
            elif state.mode == "request":
                reply = iso.to_xml(samples.request())
            else:
                if state.mode == "slow":
                    time.sleep(1.5)
                try:
                    got = iso.parse_envelope(body)
                    err = None
                    if state.mode == "refuse":
                        err = iso.Iso18626Error(
                            iso.ErrorType.UNRECOGNISED_DATA_VALUE,
                            "requestingAgencyRequestId: GZUCM-2024-0001 is unknown",
                        )
                    reply = iso.confirmation_for(got.message, err, version=got.version)
                except iso.Iso18626Error as exc:
                    reply = iso.confirmation_for(None, exc)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/iso18626"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def queued(url: str) -> OutboxMessage:
    msg = samples.supplying_agency_message()
    return OutboxMessage.new(
        url,
        iso.to_xml(msg, "2017"),
        kind=msg.kind,
        message_key=iso.message_key(msg),
        now=NOW,
    )


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/iso18626"


# ----------------------------------------------------------------------------- send


def test_a_delivered_message_returns_the_confirmation(peer: Peer) -> None:
    body = iso.to_xml(samples.requesting_agency_message(), "2021")
    confirmation = send(peer.url, body, timeout=5)
    assert isinstance(confirmation, iso.RequestingAgencyMessageConfirmation)
    assert iso.is_ok(confirmation)
    assert confirmation.confirmation_header.requesting_agency_request_id == "GZUCM-2024-0001"
    assert peer.received == [(body, "application/xml; charset=utf-8")]


def test_an_error_answer_is_a_peer_rejection(peer: Peer) -> None:
    peer.mode = "refuse"
    with pytest.raises(PeerRejected) as info:
        send(peer.url, iso.to_xml(samples.request()), timeout=5)
    assert info.value.errors[0].error_type is iso.ErrorType.UNRECOGNISED_DATA_VALUE
    assert "GZUCM-2024-0001" in str(info.value)


@pytest.mark.parametrize("mode", ["http500", "garbage", "request"])
def test_no_usable_answer_is_a_delivery_failure(peer: Peer, mode: str) -> None:
    peer.mode = mode
    with pytest.raises(DeliveryFailed) as info:
        send(peer.url, iso.to_xml(samples.request()), timeout=5)
    assert info.value.url == peer.url and info.value.reason


def test_a_closed_port_is_a_delivery_failure() -> None:
    with pytest.raises(DeliveryFailed) as info:
        send(closed_port_url(), iso.to_xml(samples.request()), timeout=2)
    assert "Connect" in info.value.reason


def test_a_slow_peer_times_out(peer: Peer) -> None:
    peer.mode = "slow"
    start = time.perf_counter()
    with pytest.raises(DeliveryFailed) as info:
        send(peer.url, iso.to_xml(samples.request()), timeout=0.3)
    assert "no answer within 0.3 s" in info.value.reason
    assert time.perf_counter() - start < 1.4


# ----------------------------------------------------------------------------- attempt


def test_attempt_marks_delivered(peer: Peer) -> None:
    row, confirmation = attempt(queued(peer.url), now=NOW, timeout=5)
    assert row.state is OutboxState.DELIVERED and row.attempts == 1
    assert row.last_attempt_at == NOW and row.last_error is None and not row.needs_attention
    assert isinstance(confirmation, iso.SupplyingAgencyMessageConfirmation)
    # Delivered rows are not sent again.
    again, none = attempt(row, now=NOW, timeout=5)
    assert again == row and none is None and len(peer.received) == 1


def test_attempt_keeps_a_refused_message_for_staff(peer: Peer) -> None:
    peer.mode = "refuse"
    row, confirmation = attempt(queued(peer.url), now=NOW, timeout=5)
    assert row.state is OutboxState.REJECTED and row.needs_attention
    assert row.last_error is not None and "UnrecognisedDataValue" in row.last_error
    assert confirmation is not None and not iso.is_ok(confirmation)


def test_a_failed_attempt_is_retried_later_with_the_same_bytes(peer: Peer) -> None:
    peer.mode = "http500"
    first = queued(peer.url)
    row, confirmation = attempt(first, now=NOW, timeout=5, rng=random.Random(1))
    assert confirmation is None and row.state is OutboxState.PENDING and row.attempts == 1
    assert row.last_error and "HTTP 500" in row.last_error
    assert NOW + BASE_DELAY * 0.8 <= row.next_attempt_at <= NOW + BASE_DELAY * 1.2
    peer.mode = "ok"
    later = row.next_attempt_at
    row, confirmation = attempt(row, now=later, timeout=5)
    assert row.state is OutboxState.DELIVERED and row.attempts == 2
    assert confirmation is not None and iso.is_ok(confirmation)
    (b1, _), (b2, _) = peer.received
    assert b1 == b2 == first.body
    assert iso.message_key(iso.parse(b1)) == first.message_key


def test_a_peer_that_stays_down_is_never_dropped() -> None:
    row = queued(closed_port_url())
    now = NOW
    rng = random.Random(7)
    waits = []
    for _ in range(outbox.ATTENTION_AFTER + 2):
        before = now
        row, _ = attempt(row, now=now, timeout=1, rng=rng)
        assert row.state is OutboxState.PENDING
        waits.append(row.next_attempt_at - before)
        now = row.next_attempt_at
    assert row.attempts == outbox.ATTENTION_AFTER + 2 and row.needs_attention
    assert waits[-1] <= MAX_DELAY and waits[-1] > waits[0] * 50


# ----------------------------------------------------------------------------- back-off


def test_back_off_doubles_then_stops_at_the_cap() -> None:
    no_jitter = [retry_delay(n, jitter=0) for n in range(1, 12)]
    assert no_jitter[:5] == [dt.timedelta(seconds=s) for s in (30, 60, 120, 240, 480)]
    assert no_jitter[-1] == MAX_DELAY
    assert all(a <= b for a, b in itertools.pairwise(no_jitter))
    assert retry_delay(0) == dt.timedelta()
    assert retry_delay(10_000, jitter=0) == MAX_DELAY  # no overflow


def test_jitter_spreads_but_stays_in_bounds() -> None:
    rng = random.Random(42)
    for n in range(1, 20):
        raw = min(30 * 2 ** (n - 1), MAX_DELAY.total_seconds())
        values = {retry_delay(n, rng=rng).total_seconds() for _ in range(50)}
        assert len(values) > 1
        assert min(values) >= raw * 0.8 - 1e-6 and min(values) >= 15
        assert max(values) <= min(raw * 1.2, MAX_DELAY.total_seconds()) + 1e-6
