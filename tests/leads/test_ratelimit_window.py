"""The sliding window behind CRM_LEADS_RATE_LIMIT, on a clock the test moves."""

from __future__ import annotations

from gateway.ratelimit import SlidingWindow
from gateway.settings import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_address_has_its_own_window_and_hits_leave_it_as_time_passes() -> None:
    clock = Clock()
    window = SlidingWindow(RateLimit("2/minute"), clock=clock)
    assert window.hit("a") is None
    clock.now += 20
    assert window.hit("a") is None
    assert window.hit("a") == 40  # the first hit leaves the window in 40 s
    assert window.hit("b") is None  # another address
    clock.now += 40
    assert window.hit("a") is None
    assert window.hit("a") == 20


def test_a_burst_across_a_minute_boundary_is_not_doubled() -> None:
    clock = Clock()
    window = SlidingWindow(RateLimit("10/minute"), clock=clock)
    clock.now = 59.0
    assert all(window.hit("a") is None for _ in range(10))
    clock.now = 61.0
    assert window.hit("a") == 58


def test_refused_hits_do_not_count_and_quiet_addresses_are_forgotten() -> None:
    clock = Clock()
    window = SlidingWindow(RateLimit("1/second"), clock=clock)
    assert window.hit("a") is None
    assert window.hit("a") == 1
    clock.now += 1
    assert window.hit("a") is None
    for i in range(2000):
        window.hit(f"address {i}")
        clock.now += 0.01
    assert len(window._hits) < 1200
