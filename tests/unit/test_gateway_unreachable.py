"""While the API server does not answer, the gateway fails fast for a moment instead of waiting out every timeout."""

from __future__ import annotations

import anyio
import urllib3

from mcp_gateway.k8s import NO_READ_RETRIES, REQUEST_TIMEOUT, Kube, Readiness


def test_a_recent_unanswered_request_is_remembered_briefly() -> None:
    now = [100.0]
    readiness = Readiness(ttl=10, clock=lambda: now[0])
    assert not readiness.unreachable_within(3)  # nothing seen
    readiness.record(False)
    now[0] = 102.9
    assert readiness.unreachable_within(3)
    now[0] = 103.0
    assert not readiness.unreachable_within(3)  # time to ask again
    readiness.record(True)
    assert not readiness.unreachable_within(3)


def test_a_timed_out_read_is_not_retried_and_the_timeout_is_seconds() -> None:
    assert NO_READ_RETRIES.read == 0  # urllib3's default retried a timed-out GET three times
    connect, read = REQUEST_TIMEOUT
    assert connect + read <= 10 and read <= 5


def test_while_held_back_one_probe_at_a_time_may_let_requests_through_again() -> None:
    # The full suite saw get_cluster_status answer [UNAVAILABLE] 2.5 s after etcd was back: the hold ignored
    # that the API server had recovered. A /readyz probe (at most every interval) now ends the hold.
    now = [100.0]
    readiness = Readiness(ttl=10, clock=lambda: now[0])
    assert not readiness.probe_due(3, 0.5)  # nothing held back
    readiness.record(False)
    assert readiness.probe_due(3, 0.5)
    readiness.record_probe(False)  # still down: requests keep failing fast, no new probe for a moment
    now[0] = 100.4
    assert readiness.unreachable_within(3) and not readiness.probe_due(3, 0.5)
    now[0] = 100.5
    assert readiness.probe_due(3, 0.5)
    readiness.record_probe(True)  # back: requests go through at once
    assert not readiness.unreachable_within(3) and not readiness.probe_due(3, 0.5)


def test_a_mirror_that_never_listed_sends_the_read_to_the_api() -> None:
    # The full suite saw get_cluster_status fail 3 ms after etcd was back: the Events mirror, started during
    # the outage, still held its first list's timeout. Such a read now goes to the API (which fails fast only
    # while the API server is still away).
    class NeverListed:
        def ready(self, key: object) -> None:
            return None

        def mirror(self, key: object) -> None:
            raise urllib3.exceptions.ReadTimeoutError(None, "/api/v1/namespaces/ns/events", "Read timed out.")  # type: ignore[arg-type]

    kube = Kube.__new__(Kube)
    kube.cache = NeverListed()  # type: ignore[assignment]
    kube.readiness = Readiness()
    assert anyio.run(kube._mirror, "", "v1", "events", "ns") is None
    assert kube.readiness.unreachable_within(3)  # so the read fails fast unless /readyz says the API is back
