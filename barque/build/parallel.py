"""Independent stages built at the same time, each in a forked process, with the output of a sequential build.

A stage starts once every stage it uses (FROM, COPY --from, RUN --mount from=) is built; while more than one is
ready, each goes to a child process of its own (at most one per CPU). Processes, not threads: a RUN forks the
runtime, and a fork from a multi-threaded process may inherit locks held by other threads. A child builds its stage
with the same Builder (its cache, store and lock — the shared store lock is inherited with the open file), then
reports the stage's final state by its digests; the parent loads it from the content store.

The output reads as the sequential build's would: step numbers are assigned in stage order up front, the stage
that comes first in that order streams live, and the others' output is held back until its turn. A failing stage
stops the others (SIGTERM: they clean up their snapshots as on Ctrl-C) and its error is raised in the parent.
"""

from __future__ import annotations

import codecs
import json
import os
import selectors
import signal
import sys
from dataclasses import dataclass, field

from barque import errors

__all__ = ["build_stages", "could_overlap"]


def could_overlap(order: list[int], deps: dict[int, set[int]]) -> bool:
    """Whether two stages are ever ready together (else a plain sequential build is the same thing)."""
    done: set[int] = set()
    remaining = list(order)
    while remaining:
        ready = [i for i in remaining if deps[i] <= done]
        if len(ready) > 1:
            return True
        if not ready:
            return False
        done.add(ready[0])
        remaining.remove(ready[0])
    return False


@dataclass
class _Child:
    index: int
    pid: int
    out_fd: int
    result_fd: int
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(
        "replace"))
    held: list[str] = field(default_factory=list)
    result: bytes = b""
    open_fds: int = 2
    status: int | None = None


def _child_main(builder, df, stage, offset: int, out_w: int, result_w: int) -> None:  # pragma: no cover - child
    from barque.container.start import engine_close_in_child

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    engine_close_in_child(builder.engine)
    out = os.fdopen(out_w, "w", encoding="utf-8", errors="replace", buffering=1)
    builder.out = lambda text: (out.write(text), out.flush())
    builder.err = None  # through the one pipe to the parent: with the rest of the output, as the CLI shows it
    builder.step_no = offset
    builder.hits = []
    try:
        state = builder._build_stage(df, stage)
        saved = state.save(builder.engine)
        builder.cache.touch(builder.hits)
        if builder.hash_cache is not None:
            builder.hash_cache.flush()
        report = {"config": str(saved.config_digest), "manifest": str(saved.manifest_digest),
                  "created": state.created, "scratch": state.scratch, "used": sorted(builder.used_args)}
    except errors.BarqueError as e:
        report = {"error": e.message, "kind": type(e).__name__, "code": getattr(e, "code", 1)}
    except KeyboardInterrupt:
        report = {"error": "stopped", "kind": "Interrupted", "code": 130}
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        report = {"error": f"stage {stage.index}: {type(e).__name__}: {e}", "kind": "BarqueError", "code": 1}
    try:
        out.close()
        data = json.dumps(report).encode()
        while data:
            data = data[os.write(result_w, data):]
    finally:
        os._exit(0)


def _error(report: dict) -> BaseException:
    from barque.build.builder import BuildFailed

    kind = report.get("kind")
    if kind == "BuildFailed":
        return BuildFailed(report["error"], report.get("code") or 1)
    if kind == "Interrupted":
        return KeyboardInterrupt()
    cls = getattr(errors, kind, None) if kind else None
    if not (isinstance(cls, type) and issubclass(cls, errors.BarqueError)):
        cls = errors.BarqueError
    return cls(report["error"])


class _Scheduler:
    def __init__(self, builder, df, stages, deps: dict[int, set[int]], workers: int) -> None:
        self.builder = builder
        self.df = df
        self.stages = {s.index: s for s in stages}
        self.order = [s.index for s in stages]
        self.deps = deps
        self.workers = workers
        self.offsets: dict[int, int] = {}
        n = builder.step_no
        for s in stages:
            self.offsets[s.index] = n
            n += 1 + len(s.instructions)
        self.sel = selectors.DefaultSelector()
        self.running: dict[int, _Child] = {}
        self.done: dict[int, _Child] = {}
        self.head = 0  # position in self.order of the stage whose output streams live

    def _fork(self, index: int) -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        for f in (sys.stdout, sys.stderr):
            f.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(out_r)
                os.close(res_r)
                for child in self.running.values():
                    for fd in (child.out_fd, child.result_fd):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                _child_main(self.builder, self.df, self.stages[index], self.offsets[index], out_w, res_w)
            finally:
                os._exit(1)
        os.close(out_w)
        os.close(res_w)
        child = _Child(index, pid, out_r, res_r)
        self.running[index] = child
        self.sel.register(out_r, selectors.EVENT_READ, (child, "out"))
        self.sel.register(res_r, selectors.EVENT_READ, (child, "result"))

    def _emit(self, child: _Child, text: str) -> None:
        if text:
            if self.order[self.head] == child.index:
                self.builder.out(text)
            else:
                child.held.append(text)

    def _advance(self) -> None:
        """Let the next stage in order speak: what it held back first, then live."""
        while self.head < len(self.order) and self.order[self.head] in self.done:
            self.head += 1
            if self.head < len(self.order):
                nxt = self.running.get(self.order[self.head]) or self.done.get(self.order[self.head])
                if nxt is not None and nxt.held:
                    self.builder.out("".join(nxt.held))
                    nxt.held.clear()

    def _read(self, child: _Child, what: str, fd: int) -> None:
        data = os.read(fd, 65536)
        if data:
            if what == "out":
                self._emit(child, child.decoder.decode(data))
            else:
                child.result += data
            return
        self.sel.unregister(fd)
        os.close(fd)
        if what == "out":
            self._emit(child, child.decoder.decode(b"", final=True))
        child.open_fds -= 1
        if child.open_fds == 0:
            _, child.status = os.waitpid(child.pid, 0)
            del self.running[child.index]
            self.done[child.index] = child

    def _finish(self, child: _Child) -> None:
        from barque.build.state import State
        from barque.oci.digest import Digest

        try:
            report = json.loads(child.result or b"{}")
        except ValueError:
            report = {}
        if "config" not in report:
            raise _error(report) if report else errors.BarqueError(
                f"building stage {child.index} failed: its process ended with status {child.status}")
        state = State.load(self.builder.engine, Digest.parse(report["config"]), Digest.parse(report["manifest"]),
                           report["created"])
        state.scratch = report["scratch"]
        self.builder.built[child.index] = state
        self.builder.used_args.update(report["used"])

    def stop_all(self) -> None:
        for child in list(self.running.values()):
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for child in list(self.running.values()):
            for fd in (child.out_fd, child.result_fd):
                try:
                    self.sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                try:
                    os.close(fd)
                except OSError:
                    pass
            os.waitpid(child.pid, 0)
        self.running.clear()

    def run(self) -> None:
        finished: set[int] = set()
        remaining = list(self.order)
        try:
            while remaining or self.running:
                ready = [i for i in remaining if self.deps[i] <= set(self.builder.built)]
                while ready and len(self.running) < self.workers:
                    index = ready.pop(0)
                    remaining.remove(index)
                    self._fork(index)
                if not self.running:
                    raise errors.BarqueError("build stages wait on each other: no stage can start")
                for key, _ in self.sel.select():
                    child, what = key.data
                    self._read(child, what, key.fd)
                for index, child in list(self.done.items()):
                    if index not in finished:
                        finished.add(index)
                        self._finish(child)  # raises the stage's error
                self._advance()
        except BaseException:
            self._advance()
            for index in self.order:  # what a failed stage printed, so its error has its context
                child = self.done.get(index)
                if child is not None and child.held:
                    self.builder.out("".join(child.held))
                    child.held.clear()
            self.stop_all()
            raise
        self.builder.step_no = self.offsets[self.order[-1]] + 1 + len(self.stages[self.order[-1]].instructions)


def build_stages(builder, df, stages, deps: dict[int, set[int]], workers: int) -> None:
    _Scheduler(builder, df, stages, deps, workers).run()
