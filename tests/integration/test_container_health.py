"""Health checks on real containers: `inspect` shows Docker's Health (starting → unhealthy → healthy, FailingStreak,
Log), `ps` shows it, a check past its timeout is killed, and an image's HEALTHCHECK runs unless --no-healthcheck."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(120)


def state(b, name: str) -> dict:
    return json.loads(b("container", "inspect", name).stdout)[0]["State"]


def health(b, name: str) -> dict:
    return state(b, name).get("Health") or {}


def test_starting_unhealthy_then_healthy(bb):
    bb("run", "-d", "--name", "hc", "--health-cmd", "echo checked; test -e /tmp/ok", "--health-interval", "200ms",
       "--health-retries", "2", "busybox", "sleep", "600")
    first = health(bb, "hc")
    assert first["Status"] == "starting"
    assert first["FailingStreak"] == 0
    assert "(health: starting)" in bb("ps").stdout

    h = wait_for(lambda: (lambda h: h if h.get("Status") == "unhealthy" else None)(health(bb, "hc")))
    assert h["FailingStreak"] >= 2
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 1
    assert entry["Output"] == "checked\n"
    assert entry["Start"] <= entry["End"]
    assert "(unhealthy)" in bb("ps").stdout

    bb("exec", "hc", "touch", "/tmp/ok")
    h = wait_for(lambda: (lambda h: h if h.get("Status") == "healthy" else None)(health(bb, "hc")))
    assert h["FailingStreak"] == 0
    assert h["Log"][-1]["ExitCode"] == 0
    assert "(healthy)" in bb("ps").stdout
    assert bb("ps", "-q", "--filter", "health=healthy").stdout.strip() != ""

    wait_for(lambda: len(health(bb, "hc")["Log"]) == 5, timeout=10)
    time.sleep(0.5)
    assert len(health(bb, "hc")["Log"]) == 5  # only the last five are kept


def test_check_runs_with_the_containers_env_and_user(bb):
    bb("run", "-d", "--name", "envhc", "-e", "WANT=yes", "-u", "nobody", "--health-cmd",
       'test "$WANT" = yes && test "$(id -u)" = 65534', "--health-interval", "200ms", "busybox", "sleep", "600")
    h = wait_for(lambda: (lambda h: h if h.get("Status") != "starting" else None)(health(bb, "envhc")))
    assert h["Status"] == "healthy", h


def test_shell_form_command_not_found(bb):
    bb("run", "-d", "--name", "nf", "--health-cmd", "nope-not-here", "--health-interval", "200ms",
       "--health-retries", "1", "busybox", "sleep", "600")
    h = wait_for(lambda: (lambda h: h if h.get("Status") == "unhealthy" else None)(health(bb, "nf")))
    assert h["Log"][-1]["ExitCode"] == 127  # /bin/sh's "not found"
    assert "not found" in h["Log"][-1]["Output"]


def test_timeout_kills_the_check(bb):
    bb("run", "-d", "--name", "slow", "--health-cmd", "sleep 30", "--health-timeout", "300ms",
       "--health-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "600")
    h = wait_for(lambda: (lambda h: h if h.get("Status") == "unhealthy" else None)(health(bb, "slow")))
    entry = h["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"

    def no_stray_sleep():
        out = bb("exec", "slow", "ps", "-o", "args").stdout
        return out.count("sleep 30") == 0 or out.count("sleep 30") == 1  # at most the check now running

    assert no_stray_sleep()
    time.sleep(1.5)
    assert no_stray_sleep(), "timed-out checks must not pile up in the container"


def test_start_period_failures_do_not_count(bb):
    bb("run", "-d", "--name", "sp", "--health-cmd", "false", "--health-interval", "10s",
       "--health-start-period", "30s", "--health-start-interval", "100ms", "--health-retries", "1",
       "busybox", "sleep", "600")
    h = wait_for(lambda: (lambda h: h if len(h.get("Log") or []) >= 3 else None)(health(bb, "sp")))
    assert h["Status"] == "starting"
    assert h["FailingStreak"] == 0


def test_health_ends_with_the_container(bb):
    bb("run", "-d", "--name", "short", "--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "600")
    wait_for(lambda: health(bb, "short").get("Status") == "healthy")
    bb("stop", "-t", "0", "short")
    s = state(bb, "short")
    assert s["Status"] == "exited"
    assert bb("ps", "-q").stdout == ""


def _image_with_healthcheck(busybox_tar, out, test: list[str], tag: str) -> None:
    """busybox with a HEALTHCHECK in its config, as a docker-archive `load` takes."""
    with tarfile.open(busybox_tar) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        config = json.load(t.extractfile(manifest["Config"]))
        layers = {p: t.extractfile(p).read() for p in manifest["Layers"]}
    config["config"]["Healthcheck"] = {"Test": test, "Interval": 200_000_000, "Retries": 1}
    data = json.dumps(config).encode()
    name = f"blobs/sha256/{hashlib.sha256(data).hexdigest()}"
    entries = [(name, data), *layers.items(),
               ("manifest.json", json.dumps([{"Config": name, "RepoTags": [tag],
                                              "Layers": manifest["Layers"]}]).encode())]
    with tarfile.open(out, "w") as t:
        for path, blob in entries:
            info = tarfile.TarInfo(path)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))


def test_image_healthcheck_and_no_healthcheck(bb, busybox_tar, tmp_path):
    _image_with_healthcheck(busybox_tar, tmp_path / "hc.tar", ["CMD", "test", "-e", "/tmp/ok"], "hcimage:latest")
    bb("load", "-i", tmp_path / "hc.tar")
    bb("run", "-d", "--name", "inherits", "hcimage", "sleep", "600")
    bb("run", "-d", "--name", "disabled", "--no-healthcheck", "hcimage", "sleep", "600")
    bb("run", "-d", "--name", "plain", "busybox", "sleep", "600")
    h = wait_for(lambda: (lambda h: h if h.get("Status") == "unhealthy" else None)(health(bb, "inherits")))
    assert h["Log"][-1]["ExitCode"] == 1
    time.sleep(0.5)
    for name in ("disabled", "plain"):
        assert "Health" not in state(bb, name)
    lines = {line.split()[-1]: line for line in bb("ps").stdout.splitlines()[1:]}
    assert "(unhealthy)" in lines["inherits"]
    assert "health" not in lines["disabled"] and "health" not in lines["plain"]


def test_exec_form_command_not_found(bb, busybox_tar, tmp_path):
    _image_with_healthcheck(busybox_tar, tmp_path / "nf.tar", ["CMD", "nope-not-here"], "nfimage:latest")
    bb("load", "-i", tmp_path / "nf.tar")
    bb("run", "-d", "--name", "nfexec", "nfimage", "sleep", "600")
    h = wait_for(lambda: (lambda h: h if h.get("Status") == "unhealthy" else None)(health(bb, "nfexec")))
    entry = h["Log"][-1]
    assert entry["ExitCode"] == -1  # Docker: the check could not even start
    assert 'exec: "nope-not-here": executable file not found in $PATH' in entry["Output"]
