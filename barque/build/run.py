"""RUN: a command in the step's root filesystem, as a container run by barque's runtime in the foreground.

The container is what Docker's builder runs: the image's user, working directory and environment (with the build
arguments in scope), the default capabilities and seccomp profile, its own PID, IPC, UTS, mount and cgroup
namespaces and the network the step asks for (`--network`, else the build's: the default bridge, none, host,
`container:NAME` — that running container's namespace — or a user-defined network, with its embedded DNS server, as
Docker's classic builder gives them; a network or container that does not exist fails the step with Docker's
NotFound). There is no monitor and no record: the build forks, the child runs barque's runtime (`run`, as
`barque-runtime run` does), the command's output comes back through a pipe to the build's output (its standard
error through a second pipe when the caller shows it apart, as the API does), and the exit status decides the step.

The image's VOLUMEs are mounted as Docker's classic builder mounts them: a throwaway copy each, so what a RUN
writes under a declared volume is discarded (the Dockerfile reference's "changing the volume from within the
Dockerfile" rule), while the mount point itself stays in the layer, as it does in Docker's.

`RUN --mount` adds what BuildKit's mounts add, none of which reach the layer: `type=cache` (a directory kept under
the barque root between builds, per `id` or target), `type=bind` (a path of the context, a stage or an image;
read-only unless `rw`, whose writes are then thrown away), `type=tmpfs` and `type=secret` (a `--secret` file, by
default at /run/secrets/ID, mode 0400).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from barque.errors import BarqueError, InvalidArgument

__all__ = ["RunSpec", "run_command", "parse_mount", "RunFailed"]

log = logging.getLogger(__name__)


class RunFailed(BarqueError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class RunSpec:
    argv: list[str]
    env: list[str]
    user: str = ""
    workdir: str = "/"
    network: str = "default"
    mounts: list[dict] = field(default_factory=list)   # OCI mounts (destination, type, source, options)
    stdin: bytes | None = None
    host: dict = field(default_factory=dict)           # HostConfig resources (Memory, CpuShares, Ulimits…)
    extra_hosts: list[str] = field(default_factory=list)


_MOUNT_KEYS = {
    "cache": {"type", "target", "dst", "destination", "id", "sharing", "from", "source", "src", "mode", "uid", "gid",
              "ro", "readonly", "rw", "readwrite"},
    "bind": {"type", "target", "dst", "destination", "source", "src", "from", "ro", "readonly", "rw", "readwrite"},
    "tmpfs": {"type", "target", "dst", "destination", "size"},
    "secret": {"type", "id", "target", "dst", "destination", "required", "mode", "uid", "gid"},
}


def parse_mount(text: str) -> dict:
    """`--mount=type=cache,target=/root/.cache`: the fields as a dict (BuildKit's names and aliases)."""
    import csv

    fields: dict[str, str] = {}
    for item in next(csv.reader([text])):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        fields[key] = value if eq else "true"
    kind = fields.get("type", "bind")
    if kind not in _MOUNT_KEYS:
        raise InvalidArgument(f"unsupported mount type {kind!r}")
    unknown = set(fields) - _MOUNT_KEYS[kind]
    if unknown:
        raise InvalidArgument(f"unexpected key '{sorted(unknown)[0]}' in '{text}'")
    for alias in ("dst", "destination"):
        if alias in fields:
            fields["target"] = fields.pop(alias)
    if "src" in fields:
        fields["source"] = fields.pop("src")
    fields["type"] = kind
    if kind == "secret":
        if "id" not in fields and "target" in fields:
            fields["id"] = os.path.basename(fields["target"])
        if "id" not in fields:
            raise InvalidArgument(f"secret mount {text!r} needs an id or a target")
        fields.setdefault("target", "/run/secrets/" + fields["id"])
    if not fields.get("target"):
        raise InvalidArgument(f"mount {text!r}: a target is required")
    return fields


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


class MountPlan:
    """The OCI mounts of one RUN, and the temporary files and mount points to take away after it."""

    def __init__(self, engine, rootfs: Path, work: Path) -> None:
        self.engine = engine
        self.rootfs = rootfs
        self.work = work
        self.mounts: list[dict] = []
        self.made: list[Path] = []        # mount points created in the rootfs, deepest last

    def _point(self, target: str, is_dir: bool) -> None:
        from barque.securejoin import secure_join

        parts = [p for p in target.split("/") if p]
        for i in range(1, len(parts) + 1):
            host = Path(secure_join(str(self.rootfs), "/".join(parts[:i])))
            if os.path.lexists(host):
                continue
            if i < len(parts) or is_dir:
                os.mkdir(host, 0o755)
            else:
                host.touch(0o644)
            self.made.append(host)

    def add(self, fields: dict, source_dir: Callable[[str | None], Path], secrets: dict[str, Path]) -> None:
        import shutil

        kind, target = fields["type"], fields["target"]
        if not target.startswith("/"):
            target = "/" + target
        if kind == "tmpfs":
            opts = ["nosuid", "nodev"] + ([f"size={fields['size']}"] if fields.get("size") else [])
            self._point(target, True)
            self.mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts})
            return
        if kind == "secret":
            src = secrets.get(fields["id"])
            if src is None:
                if _true(fields.get("required")):
                    raise InvalidArgument(f"secret {fields['id']} not found: pass it with --secret id="
                                          f"{fields['id']},src=FILE")
                return
            copy = self.work / f"secret-{len(self.mounts)}"
            shutil.copyfile(src, copy)
            os.chmod(copy, int(fields.get("mode", "0400"), 8))
            os.chown(copy, int(fields.get("uid", 0)), int(fields.get("gid", 0)))
            self._point(target, False)
            self.mounts.append({"destination": target, "type": "bind", "source": str(copy),
                                "options": ["rbind", "ro", "nosuid", "nodev"]})
            return
        rw = _true(fields.get("rw")) or _true(fields.get("readwrite"))
        if kind == "cache":
            ident = fields.get("id") or target
            name = hashlib.sha256(ident.encode()).hexdigest()[:32]
            top = Path(self.engine.settings.root) / "build-cache-mounts" / name
            if not top.is_dir():
                top.mkdir(parents=True, exist_ok=True)
                os.chmod(top, int(fields.get("mode", "0755"), 8))
                os.chown(top, int(fields.get("uid", 0)), int(fields.get("gid", 0)))
            readonly = _true(fields.get("ro")) or _true(fields.get("readonly"))
            self._point(target, True)
            self.mounts.append({"destination": target, "type": "bind", "source": str(top),
                                "options": ["rbind"] + (["ro"] if readonly else [])})
            return
        # bind: from the context (default), a stage or an image
        root = source_dir(fields.get("from"))
        from barque.securejoin import secure_join

        src = Path(secure_join(str(root), fields.get("source", "/")))
        if not os.path.exists(src):
            raise InvalidArgument(f"RUN --mount: source {fields.get('source', '/')!r} not found")
        if rw:  # writes are thrown away: the command gets a copy
            copy = self.work / f"bind-{len(self.mounts)}"
            if src.is_dir():
                shutil.copytree(src, copy, symlinks=True)
            else:
                shutil.copy2(src, copy)
            src = copy
        self._point(target, src.is_dir())
        self.mounts.append({"destination": target, "type": "bind", "source": str(src),
                            "options": ["rbind"] + ([] if rw else ["ro"])})

    def volume(self, target: str) -> None:
        """A path the image declares a VOLUME: as in Docker's classic builder, later RUNs get a throwaway copy of
        it (what they write there is discarded), and its mount point stays in the layer."""
        import shutil

        from barque.securejoin import secure_join

        host = Path(secure_join(str(self.rootfs), target))
        copy = self.work / f"volume-{len(self.mounts)}"
        if host.is_dir() and not host.is_symlink():
            shutil.copytree(host, copy, symlinks=True)
        else:
            if os.path.lexists(host):
                return  # not a directory in this image: nothing to mount over
            os.makedirs(host, 0o755)
            copy.mkdir()
        self.mounts.append({"destination": target, "type": "bind", "source": str(copy), "options": ["rbind"]})

    def remove_points(self) -> None:
        for path in reversed(self.made):
            try:
                if path.is_dir() and not path.is_symlink():
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError as e:
                log.debug("mount point %s kept: %s", path, e)


def _record(cid: str, spec: RunSpec) -> dict:
    return {
        "Id": cid, "Name": "/build-" + cid[:12], "Path": spec.argv[0], "Args": spec.argv[1:],
        "Config": {"Env": spec.env, "User": spec.user, "WorkingDir": spec.workdir, "Hostname": cid[:12]},
        "HostConfig": {**spec.host, "NetworkMode": spec.network},
        "_barque": {},
    }


def run_command(engine, tree, spec: RunSpec, output: Callable[[bytes], None],
                errors: Callable[[bytes], None] | None = None) -> int:
    """Run `spec` in the work tree's mounted rootfs; stream its output (its standard error to `errors` when given,
    else with the rest to `output`); its exit status."""
    from barque.container.create import write_etc_files

    record = _record(tree.id, spec)
    write_etc_files(tree.dir, record["Config"], record["HostConfig"])
    if spec.extra_hosts:
        with open(tree.dir / "hosts", "a") as f:
            f.write("".join(line + "\n" for line in spec.extra_hosts))
    files = {k: tree.dir / k for k in ("hostname", "hosts", "resolv.conf")}
    mode = spec.network
    if mode.startswith("container:"):
        record["_barque"]["netns_path"] = str(_container_namespace(engine, mode.split(":", 1)[1], files))
        return _run_spec(engine, tree, spec, record, files, output, errors)
    if mode in ("host", "none"):
        return _run_spec(engine, tree, spec, record, files, output, errors)
    net = None
    if mode not in ("default", "bridge"):
        net = engine.networks.get(mode)  # Docker's NotFound: "network X not found"
        if net.driver in ("host", "null"):
            record["HostConfig"]["NetworkMode"] = "host" if net.driver == "host" else "none"
            write_etc_files(tree.dir, record["Config"], record["HostConfig"])
            return _run_spec(engine, tree, spec, record, files, output, errors)
    # Docker's builder: RUN on the default bridge, or on the bridge network the build names
    from barque.network.sandbox import transient, write_resolv_conf

    with transient(engine, tree.id, hosts_file=tree.dir / "hosts", hostname=record["Config"]["Hostname"],
                   network=net) as path:
        record["_barque"]["netns_path"] = str(path)
        if net is not None and net.dns:  # the embedded DNS server answers for the network's containers
            write_resolv_conf(_Step(record, tree.dir), True)
        return _run_spec(engine, tree, spec, record, files, output, errors)


@dataclass
class _Step:
    """A RUN step as barque.network.sandbox's /etc writers see a container: its record and its directory."""

    record: dict
    dir: Path


def _container_namespace(engine, ref: str, files: dict) -> Path:
    """`container:NAME`: the running container's network namespace, and its /etc/hosts and resolv.conf, as Docker
    gives them to a container sharing another's network."""
    from barque.errors import Conflict
    from barque.network.rules import netns_path

    if not ref:
        raise InvalidArgument('invalid name or ID supplied: ""')
    other = engine.containers.get(ref)
    state = other.refresh()
    if state.get("Status") not in ("running", "paused"):
        raise Conflict(f"cannot join network of a non running container: {other.id}")
    for name in ("hosts", "resolv.conf"):
        if (other.dir / name).is_file():
            files[name] = other.dir / name
    path = netns_path(engine.settings.run_root, other.id)
    return path if path.exists() else Path(f"/proc/{state['Pid']}/ns/net")


def _run_spec(engine, tree, spec: RunSpec, record: dict, files: dict, output: Callable[[bytes], None],
              errors: Callable[[bytes], None] | None) -> int:
    from barque.container.ocispec import build_spec, write_spec

    oci = build_spec(record, tree.rootfs, files, [])
    oci["process"]["terminal"] = False
    oci["mounts"] = sorted(oci["mounts"] + spec.mounts,
                           key=lambda m: len([p for p in m["destination"].split("/") if p]))
    oci.setdefault("annotations", {})["org.barque.build"] = "true"
    write_spec(tree.dir, oci)
    return _run_runtime(engine, tree, spec.stdin, output, errors)


def _run_runtime(engine, tree, stdin: bytes | None, output: Callable[[bytes], None],
                 errors: Callable[[bytes], None] | None = None) -> int:
    from barque.container.start import engine_close_in_child
    from barque.runtime.state import StateStore

    store = StateStore(engine.runtime_root)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    # the command's standard error: a pipe of its own when it is shown apart (Docker's builder colours it)
    cmd_err_r, cmd_err_w = os.pipe2(os.O_CLOEXEC) if errors is not None else (-1, out_w)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)  # the runner's own failure, before the command runs
    in_file = None
    if stdin is not None:
        import tempfile

        in_file = tempfile.TemporaryFile()
        in_file.write(stdin)
        in_file.seek(0)
    for f in (sys.stdout, sys.stderr):
        f.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 125
        try:
            os.close(out_r)
            os.close(err_r)
            if cmd_err_r >= 0:
                os.close(cmd_err_r)
            from barque.linux import _libc

            _libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)  # a killed build takes its runner along
            if os.getppid() != parent:
                os._exit(125)
            engine_close_in_child(engine)
            fd = in_file.fileno() if in_file is not None else os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd, 0)
            os.dup2(out_w, 1)
            os.dup2(cmd_err_w, 2)
            from barque.runtime.create import CreateOptions
            from barque.runtime.run import run

            code = run(store, tree.id, CreateOptions(bundle=tree.dir))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            msg = str(e) or type(e).__name__
            os.write(err_w, msg.encode(errors="replace"))
            missing = "not found" in msg or "no such file or directory" in msg
            code = 127 if missing else 126 if "permission denied" in msg.lower() else 125
        finally:
            os._exit(code)
    os.close(out_w)
    if cmd_err_r >= 0:
        os.close(cmd_err_w)
    os.close(err_w)
    if in_file is not None:
        in_file.close()
    try:
        _pump({out_r: output, **({cmd_err_r: errors} if cmd_err_r >= 0 and errors is not None else {})})
        _, status = os.waitpid(pid, 0)
    except BaseException:
        # Ctrl-C: the command dies with SIGKILL (a PID 1 ignores what it has no handler for), then its runner
        force_delete(store, tree.id)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(out_r)
        if cmd_err_r >= 0:
            os.close(cmd_err_r)
    error = b""
    while True:
        chunk = os.read(err_r, 65536)
        if not chunk:
            break
        error += chunk
    os.close(err_r)
    force_delete(store, tree.id)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    if error:
        raise RunFailed(error.decode(errors="replace"), code)
    return code


def _pump(readers: dict[int, Callable[[bytes], None]]) -> None:
    """Each pipe's data to its callable, as it comes (one read, one call), until every pipe is at its end."""
    import selectors

    if len(readers) == 1:
        (fd, call), = readers.items()
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            call(data)
    with selectors.DefaultSelector() as sel:
        for fd, call in readers.items():
            sel.register(fd, selectors.EVENT_READ, call)
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if data:
                    key.data(data)
                else:
                    sel.unregister(key.fd)


def force_delete(store, cid: str) -> None:
    from barque.errors import NotFound
    from barque.runtime.delete import delete

    if store.dir(cid).exists():
        try:
            delete(store, cid, force=True)
        except NotFound:
            pass
