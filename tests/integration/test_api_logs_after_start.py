"""A container's first output is in its log when `start` returns: docker-py's tests (and scripts) start a short
command and read its logs at once, without waiting for it, and Docker's log copier runs before its start returns.
barque's monitor re-executes itself as the small C monitor after the start; the start waits for it to be copying."""

from __future__ import annotations

from tests.api_support import api, docker_client  # noqa: F401 - fixtures


def test_output_is_logged_when_start_returns(docker_client):  # noqa: F811 - fixture
    api = docker_client.api
    for i in range(15):  # before the fix about one in ten read an empty log
        ctr = api.create_container("busybox", ["echo", f"line {i}"])
        try:
            api.start(ctr)
            assert api.logs(ctr) == f"line {i}\n".encode()
        finally:
            api.remove_container(ctr, force=True)
