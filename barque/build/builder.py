"""`build`: a Dockerfile and its context into an image, step by step, as Docker's classic builder shows it.

Stages are resolved first — the FROM of each (expanded with the ARGs before the first FROM), what each takes from
the others (`FROM stage`, `COPY --from`, `RUN --mount from=`) — and only the stages the target needs are built. Each
step turns the stage's state into the next (barque.build.state) and is looked up first in the build cache
(barque.build.cache); settings instructions change only the config, WORKDIR, COPY, ADD and RUN work on a snapshot
(barque.build.worktree) whose changes become a layer. The target's final state is registered under the tags in one
transaction: a failed build tags nothing.

Timestamps are the build's epoch, never the clock: SOURCE_DATE_EPOCH (the environment or a build argument) when
set, else the base image's own creation time (0 for scratch). Together with the layer writer's sorted entries and
clamped mtimes, the same Dockerfile, context, build arguments and base give the same image ID on any day.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from barque.build.cache import BuildCache, step_key
from barque.build.context import BuildContext
from barque.build.dockerfile import Dockerfile, DockerfileError, Instruction, Stage, parse, parse_trigger
from barque.build.instructions import Step, apply_settings, command_words, nop, workdir_path
from barque.build.state import State
from barque.build.words import expand_heredoc, process_word
from barque.errors import BarqueError, InvalidArgument, NotFound

__all__ = ["BuildOptions", "BuildResult", "build", "BuildFailed"]

log = logging.getLogger(__name__)

PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                        "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


class BuildFailed(BarqueError):
    """A step failed; the message is what Docker's builder says (the command and its exit code)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    tags: list = field(default_factory=list)              # References
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "default"
    secrets: dict[str, Path] = field(default_factory=dict)
    host: dict = field(default_factory=dict)               # RUN steps' resources, as a HostConfig (-m, --ulimit…)
    extra_hosts: list[str] = field(default_factory=list)   # "IP\tNAME" lines for RUN steps' /etc/hosts
    pull: str = "missing"       # base images: "missing" pulls those not in the store, "always" (--pull) all
    #: Docker's --cache-from: None uses the whole build cache; a list (even of names that resolve to nothing) uses
    #: only the steps those images were built from
    cache_from: list[str] | None = None
    #: Docker's --force-rm: a failed RUN's container is removed too, and says so. barque always removes it; without
    #: the flag, as in Docker (which keeps it), no "Removing intermediate container" line follows the failure
    force_rm: bool = False


@dataclass
class BuildResult:
    image_id: str
    tags: list
    unused_args: list[str]


@dataclass
class _StageRun:
    """Per-stage bookkeeping while it builds."""

    stage: Stage
    state: State
    args: dict[str, str | None] = field(default_factory=dict)   # ARGs declared in the stage (None: no value)
    cmd_set: bool = False


def _platform_args() -> dict[str, str]:
    from barque.oci.platform import host_architecture

    arch = host_architecture()
    plat = f"linux/{arch}"
    return {"TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": "",
            "BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": ""}


def _arg_words(ins: Instruction) -> list[tuple[str, str | None]]:
    """ARG NAME[=default]…: (name, default as written or None)."""
    out = []
    for word in ins.args:
        if not word:
            continue
        name, eq, default = word.partition("=")
        if not name:
            raise DockerfileError(f"dockerfile parse error on line {ins.line}: ARG names can not be blank")
        out.append((name, default if eq else None))
    return out


class Builder:
    def __init__(self, engine, ctx: BuildContext, opts: BuildOptions, out: Callable[[str], None],
                 err: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.ctx = ctx
        self.opts = opts
        self.out = out
        #: what a RUN writes to its standard error, as it comes (one read, one call); by default with the rest
        self.err = err
        self.cache = BuildCache(engine)
        self.used_args: set[str] = set()
        self.hits: list[str] = []          # cache keys used, marked at the end in one transaction
        self.hash_cache = None             # digests of context files by their stat
        self.step_no = 0
        self.total = 0
        self.built: dict[int, State] = {}
        self.df: Dockerfile | None = None
        self.meta: dict[str, str] = {}
        self.epoch_override = self._epoch_override()
        self.cache_allowed: set[str] | None = None
        self.cache_sources: list[State] = []
        self._cache_sources()

    # -- set-up
    def _epoch_override(self) -> int | None:
        text = self.opts.build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
        if text in (None, ""):
            return None
        if not text.isdigit():
            raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH {text!r}: expected seconds since 1970")
        if "SOURCE_DATE_EPOCH" in self.opts.build_args:
            self.used_args.add("SOURCE_DATE_EPOCH")
        return int(text)

    def _cache_sources(self) -> None:
        """--cache-from, as Docker's classic builder takes it. A step comes from the build cache only when the
        image it gives is one of the named images or an ancestor of one (here: the named images' IDs and every
        state their build steps came from, by the cache's parent links); failing that, from a named image whose
        history continues the stage's with this step (`_from_sources`: an image pulled or loaded, built
        elsewhere). A name that resolves to nothing is skipped (dockerd logs a warning); with none left, nothing
        comes from the cache."""
        if self.opts.cache_from is None:
            return
        allowed: set[str] = set()
        for ref in self.opts.cache_from:
            try:
                image = self.engine.images.resolve(ref)
            except (NotFound, InvalidArgument) as e:
                log.warning("Could not look up %s for cache resolution, skipping: %s", ref, e)
                continue
            if str(image.id) not in allowed:
                allowed.add(str(image.id))
                self.cache_sources.append(State.from_image(self.engine, image.id, ""))
        pending = list(allowed)
        while pending:
            for row in self.engine.db.query("SELECT parent FROM build_cache WHERE config = ?", (pending.pop(),)):
                if row["parent"] not in allowed:
                    allowed.add(row["parent"])
                    pending.append(row["parent"])
        self.cache_allowed = allowed

    def _from_sources(self, run: _StageRun, created_by: str, after: State) -> State | None:
        """Docker's image cache with sources: the first --cache-from image whose history and layers begin with the
        stage's and whose next history entry was made by this step (the same created_by) gives the step's state —
        that entry and its layer on top of the stage, with the settings the step gives (`after`); the image itself
        when that entry is its last."""
        parent = run.state
        n, k = len(parent.history), len(parent.layers)
        for src in self.cache_sources:
            if len(src.history) <= n or src.history[:n] != parent.history:
                continue
            if [x.diff_id for x in src.layers[:k]] != [x.diff_id for x in parent.layers]:
                continue
            entry = src.history[n]
            if entry.get("created_by") != created_by:
                continue
            if not entry.get("empty_layer") and len(src.layers) <= k:
                continue
            state = after.clone()
            state.history = [*parent.history, dict(entry)]
            state.layers = list(parent.layers) + ([] if entry.get("empty_layer") else [src.layers[k]])
            state.changed()
            if len(src.history) == n + 1 and len(src.layers) == len(state.layers) and \
                    state.config == src.config and state.platform == src.platform:
                state = src.clone()  # the image itself, as dockerd gives it: its own ID
            state.created = parent.created
            state.scratch = parent.scratch
            return state
        return None

    def _meta_args(self, df: Dockerfile) -> dict[str, str]:
        env = dict(_platform_args())
        for ins in df.meta_args:
            for name, default in _arg_words(ins):
                self.used_args.add(name)
                if name in self.opts.build_args:
                    env[name] = self.opts.build_args[name]
                elif default is not None:
                    env[name] = process_word(default, env, df.escape)
        return env

    def _stage_ref(self, df: Dockerfile, text: str, before: int) -> int | None:
        """The index of the stage `text` names, when it is a stage defined before stage `before`."""
        low = text.lower()
        for s in df.stages[:before]:
            if s.name == low:
                return s.index
        if text.isdigit():
            n = int(text)
            if n >= before:
                raise InvalidArgument(f"invalid from flag value {text}: refers to current or a later build stage")
            return n
        return None

    def _dependencies(self, df: Dockerfile, stage: Stage) -> set[int]:
        deps: set[int] = set()
        base = process_word(stage.base, self.meta, df.escape)
        ref = self._stage_ref(df, base, stage.index)
        if ref is not None:
            deps.add(ref)
        for ins in stage.instructions:
            sources = []
            if ins.cmd in ("COPY", "ADD") and ins.flag("from"):
                sources.append(ins.flag("from"))
            if ins.cmd == "RUN":
                from barque.build.run import parse_mount

                for m in ins.flags.get("mount") or []:
                    f = parse_mount(m)
                    if f.get("from"):
                        sources.append(f["from"])
            for src in sources:
                ref = self._stage_ref(df, process_word(src, self.meta, df.escape), stage.index)
                if ref is not None:
                    deps.add(ref)
        return deps

    def _needed(self, df: Dockerfile, target: Stage) -> list[Stage]:
        needed: set[int] = set()
        pending = [target.index]
        while pending:
            i = pending.pop()
            if i in needed:
                continue
            needed.add(i)
            pending.extend(self._dependencies(df, df.stages[i]))
        return [s for s in df.stages if s.index in needed]

    # -- output
    def say(self, text: str) -> None:
        self.out(text + "\n")

    def step_line(self, ins_text: str) -> None:
        self.step_no += 1
        self.say(f"Step {self.step_no}/{self.total} : {ins_text}")

    def result_line(self, state: State) -> None:
        saved = state.save(self.engine)
        self.say(f" ---> {saved.config_digest.short}")

    # -- the build
    def run(self) -> BuildResult:
        df = parse(self.ctx.dockerfile, self.ctx.dockerfile_name)
        self.df = df
        self.meta = self._meta_args(df)
        if self.opts.target:
            target = df.stage(self.opts.target)
            if target is None or (self.opts.target.isdigit() and target.name is not None):
                raise NotFound(f"failed to reach build target {self.opts.target} in Dockerfile: no stage named "
                               f"{self.opts.target!r}")
        else:
            target = df.stages[-1]
        if self.opts.labels:
            line = "LABEL " + " ".join(f'"{k}"="{v}"' for k, v in sorted(self.opts.labels.items()))
            words = tuple(json.dumps(x, ensure_ascii=False) for kv in sorted(self.opts.labels.items()) for x in kv)
            target.instructions.append(Instruction("LABEL", words, {}, False, 0, line))
        stages = self._needed(df, target)
        self.total = sum(1 + len(s.instructions) for s in stages)
        with self.engine.lock.shared():
            self._build_stages(df, stages)
            final = self.built[target.index]
            saved = final.save(self.engine)
            if self._known(saved.config_digest):
                # built before (a cached rebuild): the image and its unpacked layers are there; only names change
                with self.engine.db.transaction() as conn:
                    for ref in self.opts.tags:
                        self.engine.images.set_tag(conn, ref, saved.config_digest)
            else:
                from barque.images.register import NewImage, register
                from barque.oci import mediatypes as mt

                new = NewImage(manifest_digest=saved.manifest_digest, manifest_media_type=mt.OCI_MANIFEST,
                               manifest_size=saved.manifest_size, config_digest=saved.config_digest,
                               config=final.image_config(), layers=list(final.layers), names=list(self.opts.tags))
                register(self.engine, [new])
            self.cache.touch(self.hits)
            if self.hash_cache is not None:
                self.hash_cache.flush()
        unused = sorted(a for a in self.opts.build_args if a not in self.used_args and a not in PROXY_ARGS)
        return BuildResult(str(saved.config_digest), list(self.opts.tags), unused)

    def _build_stages(self, df: Dockerfile, stages: list[Stage]) -> None:
        """In order; independent stages at the same time when there are CPUs for it (barque.build.parallel)."""
        if len(stages) > 1:
            from barque.build.parallel import build_stages, could_overlap

            order = [s.index for s in stages]
            deps = {s.index: self._dependencies(df, s) for s in stages}
            workers = int(os.environ.get("BARQUE_BUILD_PARALLELISM") or os.cpu_count() or 1)
            if workers > 1 and could_overlap(order, deps):
                build_stages(self, df, stages, deps, workers)
                return
        for stage in stages:
            self.built[stage.index] = self._build_stage(df, stage)

    def _hashes(self):
        if not self.ctx.stable:  # a temporary context (standard input, a git clone) is not seen again
            return None
        if self.hash_cache is None:
            from barque.build.hashcache import HashCache

            self.hash_cache = HashCache(self.engine, str(self.ctx.root))
        return self.hash_cache

    def _known(self, image_id) -> bool:
        try:
            self.engine.images.by_id(image_id)
            return True
        except NotFound:
            return False

    # -- stages
    def _epoch_for(self, base_created: str) -> int:
        from barque.oci.times import parse_time

        if self.epoch_override is not None:
            return self.epoch_override
        t = parse_time(base_created) if base_created else None
        return int(t) if t else 0

    def _base_state(self, df: Dockerfile, stage: Stage) -> State:
        from barque.oci.times import rfc3339

        base = process_word(stage.base, self.meta, df.escape)
        if not base:
            raise InvalidArgument(f"base name ({stage.base}) should not be blank")
        if stage.platform:
            wanted = process_word(stage.platform, self.meta, df.escape)
            here = self.meta["TARGETPLATFORM"]
            if wanted not in (here, "linux", here.split("/", 1)[1]):
                raise InvalidArgument(f"FROM --platform={wanted}: barque builds for this machine's platform only "
                                      f"({here})")
        ref = self._stage_ref(df, base, stage.index)
        if ref is not None:
            state = self.built[ref].clone()
            state.scratch = self.built[ref].scratch
            return state
        if base == "scratch":
            return State.scratch_state(rfc3339(self._epoch_for("")))
        image = self._base_image(base)
        doc = json.loads(self.engine.content.read(image.id))
        return State.from_image(self.engine, image.id, rfc3339(self._epoch_for(doc.get("created") or "")))

    def _base_image(self, base: str):
        """A FROM image from the store, pulled first when missing (or always, with --pull)."""
        if self.opts.pull != "always":
            try:
                return self.engine.images.resolve(base)
            except NotFound:
                if self.opts.pull == "never":
                    raise
        from barque.registry.client.missing import pull_image

        pull_image(self.engine, base, _OutFile(self.out))
        return self.engine.images.resolve(base)

    def _build_stage(self, df: Dockerfile, stage: Stage) -> State:
        self.step_line(f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else ""))
        state = self._base_state(df, stage)
        run = _StageRun(stage, state)
        if state.scratch and not state.layers:
            self.say(" ---> ")
        else:
            self.result_line(state)
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:  # run in this build, not inherited by the next
            state.config["OnBuild"] = None
            state.changed()
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) != 1 else ''}")
            for text in triggers:
                self._step(df, run, parse_trigger(text, stage.base))
        for ins in stage.instructions:
            self.step_line(ins.original.strip())
            self._step(df, run, ins)
        return run.state

    def _env(self, run: _StageRun) -> dict[str, str]:
        env = {k: v for k, v in run.args.items() if v is not None}
        env.update(run.state.env)
        return env

    def _step(self, df: Dockerfile, run: _StageRun, ins: Instruction) -> None:
        if ins.cmd == "ARG":
            self._arg(df, run, ins)
        elif ins.cmd in ("COPY", "ADD"):
            self._copy(df, run, ins)
        elif ins.cmd == "RUN":
            self._run(df, run, ins)
        elif ins.cmd == "WORKDIR":
            self._workdir(df, run, ins)
        else:
            self._settings(df, run, ins)

    def _cached(self, run: _StageRun, *parts, source: tuple[str, State] | None = None) -> tuple[str, bool]:
        """The step's key, and whether the cache gave its state (then run.state is it). `source`: the step's
        created_by and the state with the settings it gives, for --cache-from images' histories."""
        parent = str(run.state.save(self.engine).config_digest)
        key = step_key(parent, run.state.created, *parts)  # the epoch: it is in every file a step writes
        if self.opts.no_cache:
            return key, False
        hit = self.cache.get(key)
        if hit is None or (self.cache_allowed is not None and str(hit.config) not in self.cache_allowed):
            state = self._from_sources(run, *source) if source is not None and self.cache_sources else None
            if state is None:
                return key, False
            self.say(" ---> Using cache")
            saved = state.save(self.engine)  # remembered: the next build finds it without the source
            self.cache.put(key, saved.config_digest, saved.manifest_digest, parent, source[0])
        else:
            self.say(" ---> Using cache")
            state = State.load(self.engine, hit.config, hit.manifest, run.state.created)
            state.scratch = run.state.scratch
            self.hits.append(key)
        run.state = state
        self.result_line(state)
        return key, True

    def _remember(self, run: _StageRun, key: str, parent_state: State, description: str) -> None:
        saved = run.state.save(self.engine)
        self.cache.put(key, saved.config_digest, saved.manifest_digest,
                       str(parent_state.save(self.engine).config_digest), description)
        self.result_line(run.state)

    # -- steps
    def _arg(self, df: Dockerfile, run: _StageRun, ins: Instruction) -> None:
        written = []
        for name, default in _arg_words(ins):
            self.used_args.add(name)
            if name in self.opts.build_args:
                value: str | None = self.opts.build_args[name]
            elif default is not None:
                value = process_word(default, self._env(run), df.escape)
            else:
                value = self.meta.get(name)
            run.args[name] = value
            written.append(name if default is None else f"{name}={default}")
        before = run.state.clone()
        created_by = nop("ARG " + " ".join(written), shell=run.state.config.get("Shell"))
        key, hit = self._cached(run, "ARG", created_by, source=(created_by, before))
        if hit:
            return
        run.state.add_history(created_by, None)
        self._remember(run, key, before, created_by)

    def _settings(self, df: Dockerfile, run: _StageRun, ins: Instruction) -> None:
        before = run.state.clone()
        trial = run.state.clone()
        step = Step(trial, self._env(run), df.escape, run)
        created_by = apply_settings(step, ins)
        key, hit = self._cached(run, ins.cmd, created_by, json.dumps(trial.config, sort_keys=True),
                                trial.platform.get("author", ""), source=(created_by, trial))
        if hit:
            return
        trial.add_history(created_by, None)
        run.state = trial
        self._remember(run, key, before, created_by)

    def _workdir(self, df: Dockerfile, run: _StageRun, ins: Instruction) -> None:
        before = run.state.clone()
        path = workdir_path(Step(run.state, self._env(run), df.escape, run), ins)
        created_by = nop("WORKDIR " + path, spaced=False, shell=run.state.config.get("Shell"))
        state = run.state.clone()
        state.config["WorkingDir"] = path
        key, hit = self._cached(run, "WORKDIR", path, source=(created_by, state))
        if hit:
            return
        from barque.build.worktree import WorkTree
        from barque.container.rootfs import make_dirs

        with WorkTree(self.engine, before) as tree:
            make_dirs(tree.rootfs, path)
            layer = tree.layer(self._epoch(state))
        state.add_history(created_by, layer)
        run.state = state
        self._remember(run, key, before, f"WORKDIR {path}")

    def _epoch(self, state: State) -> int:
        from barque.oci.times import parse_time

        t = parse_time(state.created)
        return int(t) if t is not None else 0

    # -- COPY / ADD
    def _source_root(self, df: Dockerfile, run: _StageRun, ref: str | None, stack) -> tuple[Path, Callable]:
        """The root files come from: the context (with its .dockerignore), a stage's or an image's rootfs."""
        from barque.build.worktree import WorkTree

        if not ref:
            return self.ctx.root, self.ctx.excluded
        name = process_word(ref, self.meta, df.escape)
        idx = self._stage_ref(df, name, run.stage.index)
        if idx is not None:
            if idx not in self.built:
                raise InvalidArgument(f"stage {name} is not built before stage {run.stage.index}")
            state = self.built[idx]
        else:
            try:
                image = self.engine.images.resolve(name)
            except NotFound:
                raise NotFound(f"invalid from flag value {name}: the image is not in the local store") from None
            state = State.from_image(self.engine, image.id, "")
        tree = stack.enter_context(WorkTree(self.engine, state, view=True))
        return tree.rootfs, lambda rel: False

    def _heredoc_sources(self, ins: Instruction, env: dict[str, str], escape: str, stack) -> dict[str, str]:
        """COPY <<EOF: each heredoc as a file in a temporary directory (variables expanded unless the delimiter
        was quoted, as BuildKit does)."""
        import tempfile

        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="barque-heredoc-")))
        names: dict[str, str] = {}
        quoted = {a.lstrip("<-").strip("'\"") for a in ins.args if a.startswith("<<") and a.lstrip("<-")[:1] in "'\""}
        for name, content in ins.heredocs:
            text = content if name in quoted or "$" not in content else expand_heredoc(content, env, escape)
            (tmp / name).write_text(text)
            os.chmod(tmp / name, 0o644)
            names[name] = str(tmp / name)
        return names

    def _copy(self, df: Dockerfile, run: _StageRun, ins: Instruction) -> None:
        from contextlib import ExitStack

        from barque.build import copy as cp
        from barque.build.worktree import WorkTree

        what = ins.cmd
        for flag in ("parents", "keep-git-dir"):
            if flag in ins.flags:
                raise InvalidArgument(f"{what} --{flag} (a BuildKit labs feature) is not supported by barque's "
                                      "builder")
        env = self._env(run)
        words = [process_word(a, env, df.escape) for a in ins.args if a != ""] if not ins.json else list(ins.args)
        dest = words[-1]
        specs = words[:-1]
        chmod = cp.parse_chmod(ins.flag("chmod"))
        with ExitStack() as stack:
            heredoc_files = self._heredoc_sources(ins, env, df.escape, stack) if ins.heredocs else {}
            root, excluded = self._source_root(df, run, ins.flag("from"), stack)
            sources: list = []
            urls: list[str] = []
            for spec in specs:
                if spec.startswith("<<"):
                    name = spec.lstrip("<-").strip("'\"")
                    path = Path(heredoc_files[name])
                    sources.append(cp.Source(name, path, name))
                elif what == "ADD" and spec.startswith(("http://", "https://")):
                    urls.append(spec)
                else:
                    sources += cp.select_sources(root, [spec], excluded, what)
            if ins.flags.get("exclude"):
                excluded = _with_excludes(excluded, [process_word(p, env, df.escape) for p in ins.flags["exclude"]],
                                          [s.rel for s in sources])
                sources = [s for s in sources if not excluded(s.rel)]
            if len(sources) + len(urls) > 1 and not (dest.endswith("/") or dest in (".", "")):
                raise cp.CopyError(f"When using {what} with more than one source file, the destination must be a "
                                   "directory and end with a /")
            downloads = [self._download(url, ins.flag("checksum"), stack) for url in urls]
            digest = cp.sources_digest(sources, excluded, self._hashes() if root == self.ctx.root else None)
            for d in downloads:
                digest = step_key(digest, d[1].name, d[2])
            kind = "dir" if len(sources) == 1 and not urls and sources[0].path.is_dir() else \
                "file" if len(sources) + len(urls) == 1 else "multi"
            # Docker's line, to the missing space after --chown
            chown_note = f"--chown={ins.flag('chown')}" if ins.flag("chown") else ""
            created_by = nop(f"{what} {chown_note}{kind}:{digest} in {dest} ", spaced=False,
                             shell=run.state.config.get("Shell"))
            before = run.state.clone()
            key, hit = self._cached(run, what, digest, dest, ins.flag("chown") or "", ins.flag("chmod") or "",
                                    run.state.config.get("WorkingDir") or "/", ins.flags.get("exclude") or [],
                                    source=(created_by, before))
            if hit:
                return
            state = run.state.clone()
            with WorkTree(self.engine, before) as tree:
                owner = cp.resolve_chown(tree.rootfs, ins.flag("chown"))
                unpack = (lambda s: s.rel not in heredoc_files and cp.is_archive(s.path)) if what == "ADD" else None
                workdir = state.config.get("WorkingDir") or "/"
                epoch = self._epoch(state)
                if sources:
                    cp.copy_into(tree.rootfs, sources, excluded, dest, workdir, owner, chmod, epoch, what, unpack)
                for d in downloads:
                    cp.copy_into(tree.rootfs, [d[0]], lambda rel: False, dest, workdir, owner,
                                 chmod if chmod is not None else 0o600, epoch, what)
                layer = tree.layer(epoch)
            state.add_history(created_by, layer)
            run.state = state
            self._remember(run, key, before, created_by)

    def _download(self, url: str, checksum: str | None, stack):
        from barque.build import copy as cp
        from barque.build.fetch import fetch

        path, mtime, digest = fetch(url, checksum, stack)
        name = os.path.basename(url.split("?", 1)[0].rstrip("/")) or "index.html"
        return cp.Source(name, path, name), path, digest

    # -- RUN
    def _run(self, df: Dockerfile, run: _StageRun, ins: Instruction) -> None:
        from contextlib import ExitStack

        from barque.build.run import MountPlan, RunFailed, RunSpec, parse_mount, run_command
        from barque.build.worktree import WorkTree

        state = run.state
        shell = list(state.config.get("Shell") or ["/bin/sh", "-c"])
        stdin = None
        if ins.heredocs and not ins.json:
            argv, stdin = _heredoc_command(ins, shell)
        else:
            argv = command_words(ins, shell)
        # the build arguments this RUN sees (those ENV does not override), as Docker records them: |N K=V …
        env_now = state.env
        arg_env = {k: v for k, v in run.args.items() if v is not None and k not in env_now}
        proxies = {k: v for k, v in self.opts.build_args.items() if k in PROXY_ARGS and k not in env_now}
        shown = sorted(arg_env.items())
        created_by = " ".join(argv)
        if shown:
            created_by = f"|{len(shown)} " + " ".join(f"{k}={v}" for k, v in shown) + " " + created_by
        if ins.flag("security") not in (None, "sandbox"):
            raise InvalidArgument(f"RUN --security={ins.flag('security')}: barque's builder runs every step "
                                  "sandboxed (no insecure entitlement)")
        network = self.opts.network
        if ins.flag("network"):  # BuildKit's flag: its three modes only
            network = ins.flag("network")
            if network not in ("default", "none", "host"):
                raise InvalidArgument(f"RUN --network={network}: expected default, none or host")
        mounts = [parse_mount(m) for m in ins.flags.get("mount") or []]
        mount_key = []
        for f in mounts:
            desc = dict(f)
            if f["type"] == "bind" and not f.get("from"):
                from barque.build import copy as cp

                src = cp.select_sources(self.ctx.root, [f.get("source", "/")], self.ctx.excluded, "RUN --mount")
                desc["content"] = cp.sources_digest(src, self.ctx.excluded, self._hashes())
            mount_key.append(desc)
        before = state.clone()
        # the build's network mode is no part of the key (dockerd's cache compares the step, never where it ran:
        # built with networkmode=none, the step is found again on the default network); BuildKit's RUN --network is
        key, hit = self._cached(run, "RUN", argv, sorted(arg_env.items()), ins.flag("network") or "default", mount_key,
                                stdin.decode("utf-8", "replace") if stdin else "", source=(created_by, before))
        if hit:
            return
        env = [f"{k}={v}" for k, v in {**arg_env, **proxies}.items()] + list(state.config.get("Env") or [])
        new = state.clone()
        with ExitStack() as stack:
            tree = stack.enter_context(WorkTree(self.engine, before))
            self.say(f" ---> Running in {tree.id[:12]}")
            plan = MountPlan(self.engine, tree.rootfs, tree.dir)

            def source_dir(ref: str | None) -> Path:
                root, _ = self._source_root(df, run, ref, stack)
                return root
            for f in mounts:
                plan.add(f, source_dir, self.opts.secrets)
            covered = {f["target"] for f in mounts}
            for path in sorted(state.config.get("Volumes") or {}):
                if path not in covered:
                    plan.volume(path)
            spec = RunSpec(argv=argv, env=env, user=state.config.get("User") or "",
                           workdir=state.config.get("WorkingDir") or "/", network=network, mounts=plan.mounts,
                           stdin=stdin, host=self.opts.host, extra_hosts=self.opts.extra_hosts)
            try:
                code = run_command(self.engine, tree, spec, _decoding(self.out),
                                   _decoding(self.err) if self.err is not None else None)
            except RunFailed as e:
                if self.opts.force_rm:
                    self.say(f"Removing intermediate container {tree.id[:12]}")
                raise BuildFailed(f"The command '{' '.join(argv)}' could not run: {e.message.strip()}",
                                  code=e.code) from None
            if code != 0:
                if self.opts.force_rm:
                    self.say(f"Removing intermediate container {tree.id[:12]}")
                raise BuildFailed(f"The command '{' '.join(argv)}' returned a non-zero code: {code}", code=code)
            plan.remove_points()
            layer = tree.layer(self._epoch(new))
            self.say(f"Removing intermediate container {tree.id[:12]}")
        new.add_history(created_by, layer)
        run.state = new
        self._remember(run, key, before, created_by)


def _with_excludes(excluded: Callable[[str], bool], patterns: list[str], roots: list[str]) -> Callable[[str], bool]:
    """COPY --exclude: .dockerignore-style patterns matched against paths relative to each source (BuildKit's rule),
    on top of what the context already excludes."""
    from barque.build.ignore import IgnoreMatcher

    extra = IgnoreMatcher(patterns)

    def check(rel: str) -> bool:
        if excluded(rel):
            return True
        for root in roots:
            if root and rel.startswith(root + "/") and extra.matches(rel[len(root) + 1:]):
                return True
            if root == rel and extra.matches(rel.rsplit("/", 1)[-1]):
                return True
            if not root and extra.matches(rel):
                return True
        return False
    return check


def _heredoc_command(ins: Instruction, shell: list[str]) -> tuple[list[str], bytes | None]:
    """RUN with heredocs, as BuildKit runs them: `RUN <<EOF` alone is a script (run by its #! line, else by the
    shell); heredocs after a command are the shell's own here-documents."""
    line = " ".join(ins.args)
    if len(ins.heredocs) == 1 and line.strip().lstrip("<-").strip("'\"") == ins.heredocs[0][0]:
        content = ins.heredocs[0][1]
        if content.startswith("#!"):
            interpreter = content.splitlines()[0][2:].split()
            return interpreter, content.encode()
        return [*shell, content], None
    script = line
    for name, content in ins.heredocs:
        script += "\n" + content + ("" if content.endswith("\n") else "\n") + name
    return [*shell, script], None


def _decoding(call: Callable[[str], None]) -> Callable[[bytes], None]:
    """A command's output as text, a character split between two reads kept whole."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(data: bytes) -> None:
        text = decoder.decode(data)
        if text:
            call(text)
    return write


def build(engine, ctx: BuildContext, opts: BuildOptions, out: Callable[[str], None],
          err: Callable[[str], None] | None = None) -> BuildResult:
    """Build; `out` takes the output as Docker's classic builder shows it, `err` (when given) what RUN steps write
    to their standard error."""
    return Builder(engine, ctx, opts, out, err).run()


class _OutFile:
    """The build's output callable as the text file a registry pull reports to (never a terminal)."""

    def __init__(self, out) -> None:
        self._out = out

    def write(self, text: str) -> int:
        self._out(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False
