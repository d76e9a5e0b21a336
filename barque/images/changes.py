"""`--change` instructions for import and commit: the Dockerfile instructions that only touch the image config.

Docker allows CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR here, and reads
them as its builder reads a Dockerfile's; so does barque — each change is parsed by the Dockerfile parser and
applied by the builder's own instruction code (barque.build.instructions), variables expanded from the config's
environment.
"""

from __future__ import annotations

import copy
from typing import Any

from barque.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


class _Stage:
    cmd_set = False


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of the container config (`config.config` of an image) with each change applied in order."""
    from barque.build.dockerfile import DockerfileError, parse_change
    from barque.build.instructions import Step, apply_settings, workdir_path
    from barque.build.state import State

    state = State(config=copy.deepcopy(config or {}))
    stage = _Stage()
    for change in changes:
        if not change.strip():
            continue
        word = change.split(None, 1)[0]
        if word.upper() not in ALLOWED:
            raise InvalidArgument(f"{word} is not a valid change command")
        try:
            ins = parse_change(change)
        except DockerfileError as e:
            raise InvalidArgument(f"invalid --change {change!r}: {e.message}") from None
        step = Step(state, state.env, "\\", stage)
        if ins.cmd == "WORKDIR":
            state.config["WorkingDir"] = workdir_path(step, ins)
        else:
            apply_settings(step, ins)
    return state.config
