"""Archive operations of the API: a container path's stat, the path as a tar, a tar extracted into it
(barque/container/archive.py does the work; these run in zygote children because a stopped container's filesystem
is mounted for the length of the operation).

`archive.get` replies with the stat, then streams the tar. `archive.put` replies once the destination is known good,
then reads the tar from the call's socket until the server's half-close, and ends with one more line: `{"ok": bytes}`
or the error (as the zygote words errors). It reads its input to the end either way, so the server's last writes
never meet a reset connection.
"""

from __future__ import annotations

import json

from barque.api.zygote import op

CHUNK = 1 << 16
#: after a failed extraction, how long the rest of the upload is read (and dropped) waiting for the server to stop
DRAIN_TIMEOUT = 30.0


def _container(engine, ref: str):
    return engine.containers.get(ref)


@op("archive.stat")
def stat_(engine, args, chan):
    from barque.container.archive import stat_path

    return stat_path(engine, _container(engine, args["id"]), args["id"], args["path"])


@op("archive.get")
def get(engine, args, chan):
    from barque.container.archive import archive_path

    c = _container(engine, args["id"])
    out = chan.sock.makefile("wb", buffering=CHUNK)
    try:
        archive_path(engine, c, args["id"], args["path"], out, on_stat=lambda st: chan.reply({"stat": st}))
        out.close()
    except (BrokenPipeError, ConnectionResetError):
        if not chan.replied:
            raise
        # the client went away: the tar is simply cut, as dockerd's
    return None


def _drain(stream) -> None:
    try:
        while stream.read(CHUNK):
            pass
    except (OSError, ValueError):
        pass


@op("archive.put")
def put(engine, args, chan):
    from barque.container.archive import extract_archive

    c = _container(engine, args["id"])
    stream = chan.sock.makefile("rb", buffering=CHUNK)
    try:
        size = extract_archive(engine, c, args["id"], args["path"], stream,
                               no_overwrite_dir_non_dir=bool(args.get("no_overwrite_dir_non_dir")),
                               copy_uid_gid=bool(args.get("copy_uid_gid")), on_ready=lambda: chan.reply({}))
    except BaseException as e:  # noqa: BLE001 - told in-band once the reply is out
        if not chan.replied:
            raise
        try:
            chan.fail(e)
        except OSError:
            return None
        chan.sock.settimeout(DRAIN_TIMEOUT)
        _drain(stream)
        return None
    _drain(stream)  # the tar's padding after its end, up to the server's half-close
    try:
        chan.write(json.dumps({"ok": size}).encode() + b"\n")
    except OSError:
        pass
    return None
