"""`start`: mount the container's rootfs, write its OCI config, and hand it to a new monitor process that creates
and starts it with barque's runtime (see monitor.py). Returns once the container's process runs — or with the
reason it could not, and Docker's exit code for that reason (127 command not found, 126 not executable, 125 other).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

from barque.container.events import container_attributes, container_event
from barque.errors import FailedPrecondition

__all__ = ["start", "StartFailed", "monitor_config"]

log = logging.getLogger(__name__)
STATUS_TIMEOUT = 120.0


class StartFailed(FailedPrecondition):
    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.code = code


def barque_argv(engine) -> list[str]:
    """How a monitor calls barque again (a restart) with this engine's settings."""
    s = engine.settings
    argv = [sys.executable, "-c", "from barque.cli.main import main; main()", "--root", str(s.root),
            "--run-root", str(s.run_root), "--storage-driver", engine.driver_name]
    return argv


def monitor_config(engine, c, bundle: Path, rootfs: Path, size: tuple[int, int] | None) -> dict:
    config, host = c.record["Config"], c.record["HostConfig"]
    log_cfg = host.get("LogConfig") or {"Type": "json-file", "Config": {}}

    hc = config.get("Healthcheck")
    if hc and (hc.get("Test") or ["NONE"])[0] == "NONE":
        hc = None
    if hc:
        from barque.container.options import healthcheck_defaults

        hc = healthcheck_defaults(hc)
    return {
        "id": c.id, "name": c.name, "state_path": str(c.state_path), "run_dir": str(c.run_dir),
        "bundle": str(bundle), "rootfs": str(rootfs), "runtime_root": str(engine.runtime_root),
        "tty": bool(config.get("Tty")), "stdin": bool(config.get("OpenStdin")),
        "stdin_once": bool(config.get("StdinOnce")), "size": list(size) if size else None,
        "log": {"driver": log_cfg["Type"], "path": c.record.get("LogPath") or "",
                **writer_settings(log_cfg)},
        "restart": host.get("RestartPolicy") or {}, "autoremove": bool(host.get("AutoRemove")),
        "healthcheck": hc, "root": str(engine.settings.root), "engine_run_root": str(engine.settings.run_root),
        "driver": engine.driver_name, "barque_argv": barque_argv(engine),
        "event_attrs": container_attributes(c.record),
    }


def writer_settings(log_cfg: dict) -> dict:
    from barque.container.logs import log_settings

    settings = log_settings(log_cfg)
    if settings is None:
        return {}
    max_size, max_file, compress = settings
    return {"max_size": max_size, "max_file": max_file, "compress": compress}


def prepare_bundle(engine, c) -> tuple[Path, Path]:
    """The run directory with config.json, and the rootfs mounted in it."""
    from barque.container.mounts import oci_mounts, populate, rootfs_propagation, verify_sources
    from barque.container.ocispec import build_spec, write_spec
    from barque.linux.mountinfo import mounted_under
    from barque.snapshot import mount_all

    bundle = c.run_dir
    bundle.mkdir(parents=True, exist_ok=True, mode=0o711)
    os.chmod(bundle, 0o711)  # a remapped root must reach its rootfs through it
    rootfs = bundle / "rootfs"
    rootfs.mkdir(exist_ok=True)
    remap = (c.record["HostConfig"].get("UsernsMode") or "") == "remap"
    userns = None
    if remap:
        from barque.container.userns import remap_ranges

        userns = remap_ranges()
    idmapped_here = False
    # the copy-up into volumes reads the rootfs as mounted here: on overlay it shows host ids already (idmapped
    # lowers, an upper that stores host ids); the other drivers' rootfs shows the container's own ids until the
    # runtime idmaps it, so their copies are shifted into the range
    from barque.container.userns import writes_host_ids

    shift = userns if remap and not writes_host_ids(c) else None
    if not os.path.ismount(rootfs) and not mounted_under(rootfs):
        plans = engine.snapshotter.mounts(c.private["snapshot"])
        if remap and len(plans) == 1 and plans[0].type == "overlay":
            from barque.container.idmap import mount_idmapped_overlay

            mount_idmapped_overlay(plans[0], rootfs, bundle / "idmap", *userns)
            idmapped_here = True
        else:
            mount_all(plans, rootfs)
    elif remap and engine.driver_name == "overlay":
        idmapped_here = True
    try:
        for m in c.record.get("Mounts") or []:
            if m.get("Type") == "volume" and not m.get("_nocopy") and m.get("Source"):
                populate(Path(m["Source"]), rootfs, m["Destination"], shift=shift)
            if userns and m.get("Type") == "volume" and m.get("Source"):
                _hand_to_remapped_root(Path(m["Source"]), userns)
        files = {"hostname": c.dir / "hostname", "hosts": c.dir / "hosts", "resolv.conf": c.dir / "resolv.conf"}
        resolved = c.record.get("Mounts") or []
        verify_sources(resolved)
        spec = build_spec(c.record, rootfs, files, oci_mounts(resolved), userns=userns,
                          idmap_rootfs=not idmapped_here)
        propagation = rootfs_propagation(resolved)
        if propagation:
            spec["linux"]["rootfsPropagation"] = propagation
        write_spec(bundle, spec)
    except BaseException:
        from barque.container.exit import unmount_rootfs

        unmount_rootfs(str(rootfs))
        raise
    return bundle, rootfs


def _hand_to_remapped_root(volume_dir: Path, userns: tuple[list, list]) -> None:
    """A new, empty volume belongs to host root, which a remapped container sees as nobody: as under Docker's
    userns-remap, it is handed to the container's root (volumes are bind mounts, so the host ids are what counts).
    A volume with content keeps its owners."""
    try:
        st = volume_dir.stat()
        if st.st_uid == 0 and st.st_gid == 0 and not any(volume_dir.iterdir()):
            from barque.container.userns import root_ids

            os.chown(volume_dir, *root_ids(userns))
    except OSError as e:
        log.warning("volume %s not handed to the remapped root: %s", volume_dir, e)


def _clear_stale_runtime_state(engine, cid: str) -> None:
    from barque.errors import NotFound
    from barque.runtime.delete import delete
    from barque.runtime.state import StateStore

    store = StateStore(engine.runtime_root)
    if store.dir(cid).exists():
        try:
            delete(store, cid, force=True)
        except NotFound:
            pass


def start(engine, c, *, attach: dict | None = None, size: tuple[int, int] | None = None,
          restarting: bool = False, peer: socket.socket | None = None) -> socket.socket | None:
    """Start `c`. With `attach` (the attach hello: which streams), returns a socket already attached to the new
    monitor — attached before the container runs, so no output is missed. With `peer` instead, the monitor serves
    that socket (whose other end has sent the hello already: the API server's)."""
    state = c.refresh()
    if state.get("Status") in ("running", "paused") and not restarting:
        return None
    if state.get("Status") == "removing":
        raise FailedPrecondition(f"container {c.id[:12]} is marked for removal and cannot be started")
    _clear_stale_runtime_state(engine, c.id)
    from barque.network.sandbox import end_guard, start_guard

    guard = start_guard(engine.settings.run_root, c.id)
    try:
        return _start(engine, c, attach, size, peer)
    except BaseException:
        end_guard(engine.settings.run_root, c.id, guard)
        guard = None
        if c.record["HostConfig"].get("AutoRemove"):  # as dockerd: a --rm container that cannot start is removed
            _remove_quietly(engine, c)
        raise
    finally:
        if guard is not None:
            end_guard(engine.settings.run_root, c.id, guard)


def _remove_quietly(engine, c) -> None:
    from barque.container.remove import remove

    try:
        remove(engine, c, force=True, volumes=True)
    except Exception:  # noqa: BLE001 - the start's error is the one to report
        log.warning("removing --rm container %s after its failed start failed", c.id[:12], exc_info=True)


def _start(engine, c, attach: dict | None, size: tuple[int, int] | None,
           peer: socket.socket | None = None) -> socket.socket | None:
    from barque.container import monitor
    from barque.container.exit import unmount_rootfs
    from barque.network.sandbox import enter, leave

    ns_path = enter(engine, c)
    if ns_path is not None:
        c.private["netns_path"] = str(ns_path)  # for the OCI config; not recorded
    try:
        bundle, rootfs = prepare_bundle(engine, c)
    except BaseException:
        leave(engine.settings.root, engine.settings.run_root, c.id, engine=engine)
        raise
    cfg = monitor_config(engine, c, bundle, rootfs, size)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    ours = theirs = None
    if attach:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.sendall(json.dumps(attach).encode() + b"\n")
    elif peer is not None:
        theirs = peer
    _flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(status_r)
            if ours is not None:
                ours.close()
            if os.fork() != 0:
                os._exit(0)  # the monitor is a grandchild: reparented at once, never our zombie
            engine_close_in_child(engine)
            monitor.launch(cfg, status_w, theirs.detach() if theirs is not None else None)
        finally:
            os._exit(1)
    os.close(status_w)
    if theirs is not None:
        theirs.close()
    os.waitpid(pid, 0)
    reply = _read_all(status_r)
    try:
        result = json.loads(reply) if reply else {"ok": False, "error": "the container's monitor died", "code": 125}
    except ValueError:
        result = {"ok": False, "error": f"the container's monitor said: {reply[:200]!r}", "code": 125}
    if not result.get("ok"):
        if ours is not None:
            ours.close()
        unmount_rootfs(str(rootfs))
        leave(engine.settings.root, engine.settings.run_root, c.id, engine=engine)
        status = "created" if c.refresh().get("Status") in (None, "created") else "exited"
        c.update_state(Status=status, ExitCode=result.get("code", 125), Error=result["error"], Running=False,
                       Pid=0)
        raise StartFailed(result["error"], result.get("code", 125))
    c.refresh()
    container_event(engine.settings.root, c.record, "start")
    return ours


def engine_close_in_child(engine) -> None:
    """SQLite connections must not be used across fork: the child drops the inherited ones (see Engine.after_fork)."""
    try:
        engine.after_fork()
    except Exception:  # noqa: BLE001
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _flush() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
