"""barque's OCI runtime: the spec's create/start/state/kill/delete (plus run, exec, pause/resume, ps, update), as the
`barque-runtime` command (cli.py, runc's command line, so containerd's shim and dockerd can drive it) and as the
`Runtime` class below for the engine.

One verb or step per module: create.py (the parent's side of create), init.py (the container side: stage 1 joins
and unshares namespaces, stage 2 is PID 1 and builds the rootfs), rootfs.py (mounts, /dev, pivot_root, masked and
read-only paths — every syscall through the syscalls.py seam), userns.py, console.py, hooks.py, process.py (uid/gid,
rlimits, capabilities, no_new_privs, seccomp, execve), bpf.py (compiled seccomp programs), state.py (the record and
the derived status), start/kill/delete/state_cmd/run/exec/list/pause/ps/update/features.py; caps.py, seccomp.py and
defaults.py hold the security defaults.

Spec extension: the annotation `org.barque.idmap-rootfs: "true"` (with a new user namespace and its mappings) makes
the rootfs an idmapped mount through the container's user namespace, so an image's files owned by 0 belong to the
container's root although it is an ordinary user of the host (see userns.py).

This module imports nothing at start-up: it is on the path of every `barque-runtime` command.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["Runtime", "IDMAP_ANNOTATION", "DEFAULT_ROOT"]

IDMAP_ANNOTATION = "org.barque.idmap-rootfs"
DEFAULT_ROOT = Path("/run/barque-runtime")


class Runtime:
    """The OCI runtime operations on the containers under one state root (`--root` of the command)."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        from barque.runtime.state import StateStore

        self.store = StateStore(Path(root))

    def create(self, cid: str, bundle: Path, *, pid_file: Path | None = None,
               console_socket: str | None = None) -> dict:
        """Create the container (its process waits for `start`); its state."""
        from barque.runtime.create import CreateOptions, create

        created = create(self.store, cid, CreateOptions(bundle=Path(bundle), pid_file=pid_file,
                                                        console_socket=console_socket))
        return created.container.oci_state()

    def start(self, cid: str) -> None:
        from barque.runtime.start import start

        start(self.store, cid)

    def state(self, cid: str) -> dict:
        from barque.runtime.state_cmd import state

        return state(self.store, cid)

    def kill(self, cid: str, signal: int | str = 15, all_processes: bool = False) -> None:
        from barque.runtime.kill import kill, parse_signal

        kill(self.store, cid, parse_signal(signal), all_processes)

    def delete(self, cid: str, force: bool = False) -> None:
        from barque.runtime.delete import delete

        delete(self.store, cid, force)

    def pause(self, cid: str) -> None:
        from barque.runtime.pause import pause

        pause(self.store, cid)

    def resume(self, cid: str) -> None:
        from barque.runtime.pause import resume

        resume(self.store, cid)

    def exec(self, cid: str, process: dict, *, detach: bool = True, pid_file: Path | None = None,
             console_socket: str | None = None) -> int:
        """Run one more process (the spec's `process` object) in the container."""
        from barque.runtime.exec import exec_process

        return exec_process(self.store, cid, process, detach=detach, pid_file=pid_file,
                            console_socket=console_socket)

    def pids(self, cid: str) -> list[int]:
        from barque.runtime.ps import pids

        return pids(self.store, cid)

    def list(self) -> list[dict]:
        from barque.runtime.list import list_containers

        return list_containers(self.store)
