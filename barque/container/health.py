"""Health checks, run by the container's monitor: Docker's schedule and state machine, with each check in a child
process.

The monitor is a lean interpreter (`python -S`, standard library only), so this module imports only os, json, time
and signal at load time, and a check never runs in the monitor itself: it forks a probe (a fresh interpreter
running barque.container.exec.probe_main) that joins the container with the runtime's exec, runs the Test with the
container's env and user, and writes {"ExitCode", "Output"} to a file in the run directory. The monitor reaps the
probe (`reaped`) and records the result.

Docker's rules (moby daemon/health.go), followed here:
- the first check runs one interval after the start; the next one an interval after the previous one ended; during
  the start period, while the status is still `starting`, the interval is StartInterval;
- exit 0 is a success: status `healthy`, FailingStreak 0; anything else is a failure (1 means unhealthy, 2 is
  reserved, others count the same);
- a failure while `starting` and inside the start period does not count; otherwise FailingStreak grows and at
  Retries the status becomes `unhealthy`;
- a check running past Timeout is killed and recorded as ExitCode -1, Output "Health check exceeded timeout (T)";
- Log keeps the last 5 results {Start, End, ExitCode, Output}; Output is the first 4096 bytes (then "...").
While the container is paused no check starts (it could not run), and a due one waits for the unpause.

Only the monitor writes Health (a read-modify-write of state.json through monitor.update_state).
"""

from __future__ import annotations

import json
import os
import signal
import time

__all__ = ["HealthChecker", "HealthState", "probe_args", "go_duration", "TIMEOUT_MESSAGE", "MAX_LOG_ENTRIES"]

MAX_LOG_ENTRIES = 5
TIMEOUT_MESSAGE = "Health check exceeded timeout ({})"
#: after its timeout a probe gets SIGTERM (it kills the check and leaves); SIGKILL after this many more seconds
KILL_GRACE = 5.0
#: the longest the monitor sleeps when no check is pending (a disabled test, a probe already killed)
IDLE = 3600.0
NS = 1_000_000_000


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration prints it: 200ms, 1.5s, 30s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(int(ns))
    if ns < NS:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if ns < size * 1000:
                return sign + _frac(ns, size) + unit
    hours, rest = divmod(ns, 3600 * NS)
    minutes, rest = divmod(rest, 60 * NS)
    text = _frac(rest, NS) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _frac(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")


def probe_args(test: list[str] | None) -> list[str] | None:
    """A Config.Healthcheck.Test as the argv to run: `CMD-SHELL x` → /bin/sh -c x, `CMD a b` → a b; None when
    there is nothing to run (NONE, empty, or a type Docker does not know: it ignores those)."""
    if not test:
        return None
    kind, rest = test[0], list(test[1:])
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)] if rest else None
    if kind == "CMD":
        return rest or None
    return None


class HealthState:
    """Health.Status, FailingStreak and Log, and Docker's transitions on each result."""

    def __init__(self, retries: int) -> None:
        self.retries = retries if retries > 0 else 3
        self.status = "starting"
        self.failing_streak = 0
        self.log: list[dict] = []

    def record(self, result: dict, in_start_period: bool) -> None:
        """One result {Start, End, ExitCode, Output}; `in_start_period`: its Start was inside the start period."""
        self.log = (self.log + [result])[-MAX_LOG_ENTRIES:]
        if result["ExitCode"] == 0:
            self.failing_streak = 0
            self.status = "healthy"
            return
        if self.status == "starting" and in_start_period:
            return
        self.failing_streak += 1
        if self.failing_streak >= self.retries:
            self.status = "unhealthy"

    def as_dict(self) -> dict:
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": list(self.log)}


class _Probe:
    def __init__(self, pid: int, started: float, started_wall: float, deadline: float) -> None:
        self.pid = pid
        self.started = started
        self.started_wall = started_wall
        self.deadline = deadline
        self.timed_out = False
        self.kill_at = 0.0


class HealthChecker:
    """The schedule of one container's checks. The monitor calls `next_due()` (seconds until something is to be
    done: its select timeout), `tick()` (start a due check, stop an overdue one) and `reaped(pid, status)` for
    each child it reaps that is not the container.

    The effects — starting a probe, signalling it, reading its result, publishing the state, asking whether the
    container is paused — are methods, so a test replaces them and drives the clock."""

    def __init__(self, cfg: dict, pid: int, *, clock=time.monotonic, wall=time.time) -> None:
        hc = cfg["healthcheck"]
        self.cfg = cfg
        self.container_pid = pid
        self.clock = clock
        self.wall = wall
        self.args = probe_args(hc.get("Test"))
        self.interval = (hc.get("Interval") or 30 * NS) / NS
        self.timeout_ns = hc.get("Timeout") or 30 * NS
        self.start_period = (hc.get("StartPeriod") or 0) / NS
        self.start_interval = (hc.get("StartInterval") or 5 * NS) / NS
        self.state = HealthState(int(hc.get("Retries") or 3))
        self.started = clock()
        self.probe: _Probe | None = None
        self._published: str | None = None
        self.next_at = self.started + self._interval()

    # -- the schedule

    def _interval(self) -> float:
        if self.clock() - self.started >= self.start_period:
            return self.interval
        return self.start_interval if self.state.status == "starting" else self.interval

    def next_due(self) -> float:
        now = self.clock()
        p = self.probe
        if p is not None:
            due = p.kill_at if p.timed_out else p.deadline
        elif self.args is None:
            return IDLE
        else:
            due = self.next_at
        return min(max(due - now, 0.005), IDLE)

    def tick(self) -> None:
        now = self.clock()
        p = self.probe
        if p is not None:
            if not p.timed_out and now >= p.deadline:
                p.timed_out = True
                p.kill_at = now + KILL_GRACE
                self.send_signal(p.pid, signal.SIGTERM)
                self._record(p, -1, TIMEOUT_MESSAGE.format(go_duration(self.timeout_ns)))
            elif p.timed_out and now >= p.kill_at:
                self.send_signal(p.pid, signal.SIGKILL)
                p.kill_at = now + IDLE
            return
        if self.args is None or now < self.next_at:
            return
        if self.paused():
            self.next_at = now + self.interval
            return
        started_wall = self.wall()
        try:
            pid = self.spawn(self.args)
        except OSError as e:
            self._record(_Probe(0, now, started_wall, now), -1, f"cannot start the health check: {e}")
            self.next_at = self.clock() + self._interval()
            return
        self.probe = _Probe(pid, now, started_wall, now + self.timeout_ns / NS)

    def reaped(self, pid: int, status: int) -> None:
        p = self.probe
        if p is None or pid != p.pid:
            return  # an orphan handed to the monitor (a check's own child)
        self.probe = None
        if not p.timed_out:
            code, output = self.collect(status)
            self._record(p, code, output)
        self.next_at = self.clock() + self._interval()

    def _record(self, p: _Probe, code: int, output: str) -> None:
        from barque.container.monitor import now_rfc3339

        result = {"Start": now_rfc3339(p.started_wall), "End": now_rfc3339(self.wall()), "ExitCode": code,
                  "Output": output}
        self.state.record(result, p.started - self.started < self.start_period)
        self.publish(self.state.as_dict())

    # -- the effects (replaced in tests)

    def _path(self, name: str) -> str:
        return os.path.join(self.cfg["run_dir"], name)

    def spawn(self, args: list[str]) -> int:
        """Fork a probe running `args` in the container; its pid."""
        import sys

        for name in ("health.json", "health.pid"):
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                pass
        request = json.dumps({"id": self.cfg["id"], "runtime_root": self.cfg["runtime_root"],
                              "run_dir": self.cfg["run_dir"], "args": args, "result": self._path("health.json")})
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (f"import sys; sys.path.insert(0, {pkg_parent!r}); "
                "from barque.container.exec import probe_main; probe_main()")
        err = os.open(self._path("health.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                try:
                    signal.set_wakeup_fd(-1)
                    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD):
                        signal.signal(s, signal.SIG_DFL)
                    devnull = os.open("/dev/null", os.O_RDONLY)
                    os.dup2(devnull, 0)
                    os.dup2(err, 1)
                    os.dup2(err, 2)
                    os.closerange(3, 65536)  # the monitor's inherited stdio pipes and terminal stay with it
                    os.execv(sys.executable, [sys.executable, "-c", code, request])
                finally:
                    os._exit(127)
        finally:
            os.close(err)
        return pid

    def send_signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def collect(self, status: int) -> tuple[int, str]:
        """The probe's result: (ExitCode, Output); -1 and what it said when it left no result."""
        try:
            with open(self._path("health.json"), "rb") as f:
                result = json.loads(f.read())
            return int(result["ExitCode"]), str(result["Output"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            with open(self._path("health.err"), "rb") as f:
                said = f.read()[-4096:].decode(errors="replace").strip()
        except OSError:
            said = ""
        return -1, said or f"the health check probe failed (wait status {status})"

    def publish(self, health: dict) -> None:
        from barque.container.monitor import update_state

        update_state(self.cfg["state_path"], Health=health)
        status = health.get("Status")
        if status != self._published:
            self._published = status
            if status in ("healthy", "unhealthy") and self.cfg.get("root"):  # as dockerd: an event at each change of status
                from barque.container.events import record

                record(self.cfg["root"], "container", f"health_status: {status}", self.cfg["id"],
                       self.cfg.get("event_attrs") or {})

    def paused(self) -> bool:
        from barque.container.monitor import read_state

        return read_state(self.cfg["state_path"]).get("Status") == "paused"
