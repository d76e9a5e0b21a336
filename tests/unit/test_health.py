"""The health-check schedule and state machine with a fake clock and fake probes: what `inspect` would show
(Status, FailingStreak, Log) after each result, when checks start, and how an overdue one is stopped."""

from __future__ import annotations

import signal

import pytest

from barque.container.health import (IDLE, KILL_GRACE, MAX_LOG_ENTRIES, HealthChecker, HealthState, go_duration,
                                     probe_args)

MS = 1_000_000
S = 1000 * MS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeChecker(HealthChecker):
    """Records the probes it would start, the signals it would send and the states it would publish."""

    def __init__(self, hc: dict, clock: Clock) -> None:
        self.spawned: list[list[str]] = []
        self.signals: list[tuple[int, int]] = []
        self.published: list[dict] = []
        self.results: dict[int, tuple[int, str]] = {}
        self.is_paused = False
        self.next_pid = 100
        super().__init__({"healthcheck": hc, "run_dir": "/nonexistent", "id": "x", "state_path": "/nonexistent"},
                         1, clock=clock, wall=lambda: 1_700_000_000.0 + clock.now)

    def spawn(self, args):
        self.spawned.append(args)
        self.next_pid += 1
        return self.next_pid

    def send_signal(self, pid, signum):
        self.signals.append((pid, signum))

    def collect(self, status):
        return self.results.get(status, (status >> 8, f"exit {status >> 8}"))

    def publish(self, health):
        self.published.append(health)

    def paused(self):
        return self.is_paused

    @property
    def health(self) -> dict:
        return self.published[-1]


def hc(**kw) -> dict:
    base = {"Test": ["CMD-SHELL", "check"], "Interval": 200 * MS, "Timeout": 1 * S, "Retries": 2,
            "StartPeriod": 0, "StartInterval": 5 * S}
    base.update(kw)
    return base


def run_check(c: FakeChecker, clock: Clock, code: int, duration: float = 0.05) -> None:
    """Advance to the next due check, start it, let it finish with `code`."""
    clock.now += c.next_due()
    c.tick()
    assert c.probe is not None, "a check should have started"
    pid = c.probe.pid
    clock.now += duration
    c.reaped(pid, code << 8)


def test_probe_args_follow_docker_test_forms():
    assert probe_args(["CMD-SHELL", "test -e /tmp/ok"]) == ["/bin/sh", "-c", "test -e /tmp/ok"]
    assert probe_args(["CMD", "/bin/check", "--fast"]) == ["/bin/check", "--fast"]
    assert probe_args(["NONE"]) is None
    assert probe_args([]) is None
    assert probe_args(["WHATEVER", "x"]) is None  # Docker ignores an unknown type


@pytest.mark.parametrize("ns, text", [
    (200 * MS, "200ms"), (1500 * MS, "1.5s"), (30 * S, "30s"), (90 * S, "1m30s"), (3600 * S, "1h0m0s"),
    (1 * MS, "1ms"), (1500, "1.5µs"), (7, "7ns"), (0, "0s"), (3723 * S + 500 * MS, "1h2m3.5s"),
])
def test_go_duration(ns, text):
    assert go_duration(ns) == text


def test_first_check_waits_one_interval_then_counts_retries_to_unhealthy():
    clock = Clock()
    c = FakeChecker(hc(), clock)
    assert c.next_due() == pytest.approx(0.2)
    c.tick()
    assert c.spawned == []  # not due yet
    run_check(c, clock, 1)
    assert c.spawned == [["/bin/sh", "-c", "check"]]
    assert c.health["Status"] == "starting" and c.health["FailingStreak"] == 1
    run_check(c, clock, 1)
    assert c.health["Status"] == "unhealthy" and c.health["FailingStreak"] == 2
    run_check(c, clock, 0)
    assert c.health["Status"] == "healthy" and c.health["FailingStreak"] == 0
    log = c.health["Log"]
    assert [e["ExitCode"] for e in log] == [1, 1, 0]
    assert log[0]["Output"] == "exit 1"
    assert log[0]["Start"].endswith("Z") and log[0]["Start"] < log[0]["End"]


def test_next_check_is_one_interval_after_the_previous_ended():
    clock = Clock()
    c = FakeChecker(hc(Interval=1 * S), clock)
    run_check(c, clock, 0, duration=0.4)
    assert c.next_due() == pytest.approx(1.0)


def test_other_exit_codes_are_failures_too():
    clock = Clock()
    c = FakeChecker(hc(Retries=1), clock)
    run_check(c, clock, 2)
    assert c.health["Status"] == "unhealthy"
    c2 = FakeChecker(hc(Retries=1), clock)
    run_check(c2, clock, 42)
    assert c2.health["Status"] == "unhealthy"


def test_failures_in_the_start_period_do_not_count_and_use_the_start_interval():
    clock = Clock()
    c = FakeChecker(hc(StartPeriod=2 * S, StartInterval=100 * MS, Retries=1), clock)
    assert c.next_due() == pytest.approx(0.1)
    run_check(c, clock, 1)
    run_check(c, clock, 1)
    assert c.health["Status"] == "starting" and c.health["FailingStreak"] == 0
    assert len(c.health["Log"]) == 2
    assert c.next_due() == pytest.approx(0.1)
    clock.now = c.started + 2.5  # past the start period: the interval, and failures count
    c.next_at = clock.now
    run_check(c, clock, 1)
    assert c.health["Status"] == "unhealthy" and c.health["FailingStreak"] == 1
    assert c.next_due() == pytest.approx(0.2)


def test_a_success_in_the_start_period_ends_starting_and_later_failures_count():
    clock = Clock()
    c = FakeChecker(hc(StartPeriod=60 * S, StartInterval=100 * MS, Retries=2), clock)
    run_check(c, clock, 0)
    assert c.health["Status"] == "healthy"
    assert c.next_due() == pytest.approx(0.2)  # no longer starting: the normal interval
    run_check(c, clock, 1)
    run_check(c, clock, 1)
    assert c.health["Status"] == "unhealthy" and c.health["FailingStreak"] == 2


def test_overdue_check_is_stopped_and_recorded_as_timeout():
    clock = Clock()
    c = FakeChecker(hc(Timeout=300 * MS, Retries=1), clock)
    clock.now += c.next_due()
    c.tick()
    pid = c.probe.pid
    assert c.next_due() == pytest.approx(0.3)
    clock.now += 0.3
    c.tick()
    assert c.signals == [(pid, signal.SIGTERM)]
    entry = c.health["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"
    assert c.health["Status"] == "unhealthy"
    c.tick()
    assert len(c.spawned) == 1, "no new check while the stopped one is still there"
    assert c.next_due() == pytest.approx(KILL_GRACE)
    clock.now += KILL_GRACE
    c.tick()
    assert c.signals[-1] == (pid, signal.SIGKILL)
    c.reaped(pid, signal.SIGKILL)
    assert len(c.health["Log"]) == 1, "the killed probe's exit is not a second result"
    assert c.next_due() == pytest.approx(0.2)


def test_log_keeps_the_last_five():
    clock = Clock()
    c = FakeChecker(hc(Retries=100), clock)
    for code in range(1, 9):
        run_check(c, clock, code)
    assert len(c.health["Log"]) == MAX_LOG_ENTRIES
    assert [e["ExitCode"] for e in c.health["Log"]] == [4, 5, 6, 7, 8]
    assert c.health["FailingStreak"] == 8


def test_orphans_reaped_by_the_monitor_are_not_results():
    clock = Clock()
    c = FakeChecker(hc(), clock)
    clock.now += c.next_due()
    c.tick()
    c.reaped(99999, 0)
    assert c.probe is not None and c.published == []


def test_no_check_starts_while_paused():
    clock = Clock()
    c = FakeChecker(hc(), clock)
    c.is_paused = True
    clock.now += c.next_due()
    c.tick()
    assert c.spawned == [] and c.published == []
    c.is_paused = False
    clock.now += c.next_due()
    c.tick()
    assert len(c.spawned) == 1


def test_unknown_test_type_never_runs():
    clock = Clock()
    c = FakeChecker(hc(Test=["BOGUS", "x"]), clock)
    assert c.next_due() == IDLE
    clock.now += 100
    c.tick()
    assert c.spawned == []


def test_spawn_failure_is_a_failed_result():
    clock = Clock()

    class Broken(FakeChecker):
        def spawn(self, args):
            raise OSError(11, "Resource temporarily unavailable")

    c = Broken(hc(Retries=1), clock)
    clock.now += c.next_due()
    c.tick()
    assert c.health["Status"] == "unhealthy"
    assert c.health["Log"][-1]["ExitCode"] == -1
    assert c.next_due() == pytest.approx(0.2)


def test_retries_zero_means_docker_default_three():
    s = HealthState(0)
    for _ in range(2):
        s.record({"ExitCode": 1}, False)
    assert s.status == "starting"
    s.record({"ExitCode": 1}, False)
    assert s.status == "unhealthy"


def test_health_module_imports_only_what_a_lean_monitor_has():
    """The monitor runs `python -S` with the standard library only: loading health must not pull barque's
    heavier modules (the runtime, click, the engine)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    code = ("import sys; sys.path.insert(0, %r); import barque.container.health; "
            "print(sorted(m for m in sys.modules if m.startswith('barque')))" % str(repo))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["barque", "barque.container", "barque.container.health"]


def test_probe_output_keeps_docker_first_4096_bytes_and_the_exit_status():
    import os

    from barque.container.exec import OUTPUT_LIMIT, _collect_output

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.write(w, b"a" * 3000)
            os.write(w, b"b" * 3000)
        finally:
            os._exit(3)
    os.close(w)
    try:
        status, output = _collect_output(r, pid)
    finally:
        os.close(r)
    assert os.waitstatus_to_exitcode(status) == 3
    assert output == "a" * 3000 + "b" * (OUTPUT_LIMIT - 3000) + "..."


def test_probe_output_short_is_kept_whole():
    import os

    from barque.container.exec import _collect_output

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(w, "héllo\n".encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        status, output = _collect_output(r, pid)
    finally:
        os.close(r)
    assert status == 0 and output == "héllo\n"
