"""What the zygote's children run: one module per resource, each registering its operations with `@op(NAME)`.
An operation is `fn(engine, args, channel) → result`: `args` is the JSON the route sent, the result goes back as
JSON; a streaming operation replies early (`channel.reply`) and then writes to (or reads from) the channel."""

from barque.api.ops import containers  # noqa: F401

for _name in ("images", "build", "exec", "archive", "networks", "volumes", "container_extras"):
    try:
        __import__(f"barque.api.ops.{_name}")
    except ModuleNotFoundError as _e:  # a resource whose operations are not written yet
        if _e.name != f"barque.api.ops.{_name}":
            raise
