"""Containers against Docker, the reference: the same program's json-file log written by dockerd and by barque — by
either of its monitors, the C one of detached containers and the Python one — is the same file (but for the
times), barque reads the file dockerd wrote as `docker logs` shows it, and an image
`barque commit` made runs under Docker with the change and the new config. Runs against the session's private
dockerd (bench/dockerd.py), containers with `--network none`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.interop.test_docker import hand_to_docker

pytestmark = pytest.mark.interop

#: output with what json-file must escape as Go does: <, >, &, a control character, invalid UTF-8, U+2028, a
#: line longer than Docker's 16 KiB buffer (split into partial entries) and a last line without its newline
PROGRAM = (r"printf 'plain\n<tag> & amp\n\001ctl\ttab\n\377\376bad\n\342\200\250sep\n'; "
           r"head -c 20000 /dev/zero | tr '\0' x; echo; printf 'no newline'")
TIME = re.compile(rb'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"')


def _entries(path: Path) -> list[bytes]:
    """The log's lines with the time taken out (it differs run to run), as bytes."""
    lines = path.read_bytes().splitlines()
    assert lines and all(TIME.search(line) for line in lines), lines[:3]
    return [TIME.sub(b'"time":"T"', line) for line in lines]


@pytest.mark.parametrize("monitor", ["c", "python"])
def test_json_file_log_is_dockers_format(bb, docker, monitor):
    image = hand_to_docker(bb, docker, "busybox:latest", Path(bb.root.parent))
    name = unique("logs")
    docker.docker("run", "--name", name, "--network", "none", "--log-driver", "json-file", image, "sh", "-c",
                  PROGRAM, text=False)
    try:
        docker_path = Path(docker.inspect("container", name)["LogPath"])
        docker_logs = docker.docker("logs", name, text=False).stdout
        bb("run", "-d", "--name", "same", "busybox", "sh", "-c", PROGRAM, env={"BARQUE_MONITOR": monitor})
        assert bb("wait", "same").stdout == "0\n"
        ours = Path(json.loads(bb("inspect", "same").stdout)[0]["LogPath"])
        assert _entries(ours) == _entries(docker_path)

        # and barque reads Docker's file as `docker logs` prints it
        from barque.container.logs import format_entry, read_logs

        read = b"".join(format_entry(e, False) for e in read_logs(str(docker_path)))
        assert read == docker_logs == bb("logs", "same").stdout_bytes
    finally:
        docker.docker("rm", "-f", name, check=False)


def test_committed_image_runs_under_docker(bb, docker, tmp_path):
    bb("run", "--name", "tocommit", "busybox", "sh", "-c",
       "echo made-in-barque > /made && mkdir -p /srv/d && chown 7:8 /srv/d && rm /etc/group")
    bb("commit", "-c", 'CMD ["cat", "/made"]', "-c", "ENV FROM=barque", "-m", "a barque commit", "tocommit",
       "committed:1")
    name = hand_to_docker(bb, docker, "committed:1", tmp_path)
    run = ["run", "--rm", "--network", "none", name]
    assert docker.docker(*run).stdout == "made-in-barque\n"
    assert docker.docker(*run, "sh", "-c", "stat -c %u:%g /srv/d; echo $FROM; test ! -e /etc/group && echo gone"
                         ).stdout.split() == ["7:8", "barque", "gone"]
    history = docker.docker("history", "--no-trunc", "--format", "{{.Comment}}", name).stdout.splitlines()
    assert history[0] == "a barque commit"
