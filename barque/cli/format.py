"""Output helpers shared by every listing: Docker's human sizes and times, tables, `--format` (json or a Go-template
subset: ``{{.Field}}``, ``{{.A.B}}``, ``{{json .}}``, ``{{json .Field}}``, ``{{index .Map "key"}}``, ``{{join .List ","}}``,
``{{upper …}}``/``{{lower …}}``, ``{{println …}}``, and a ``table`` prefix)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import click

from barque.oci.times import human_duration, human_size, parse_time  # noqa: F401 - the CLI takes both from here


def print_deleted(heading: str, items: Iterable[str]) -> None:
    """A prune's listing, as Docker prints it: `Deleted Containers:`, one per line, a blank line; nothing when
    nothing went."""
    items = list(items)
    if items:
        click.echo(f"{heading}:\n" + "".join(f"{i}\n" for i in items))


def since(created: str, now: float | None = None) -> str:
    t = parse_time(created)
    if t is None:
        return "N/A"
    return human_duration((now or time.time()) - t) + " ago"


def created_at(created: str) -> str:
    """Docker's CreatedAt column: '2026-11-28 01:02:03 +0000 UTC'."""
    t = parse_time(created)
    if t is None:
        return ""
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


# ---- tables ---------------------------------------------------------------------------------------------------

def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Docker's tabwriter layout (minimum cell width 10, padding 3): each column as wide as its widest cell plus
    three spaces, and never narrower than 10."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = []
    for r in [list(headers)] + rows:
        cells = [c.ljust(max(widths[i] + 3, 10)) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


# ---- Go-template subset -----------------------------------------------------------------------------------------

_ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)


class TemplateError(click.UsageError):
    pass


def _lookup(obj: Any, path: str) -> Any:
    if path == ".":
        return obj
    cur = obj
    for part in path.lstrip(".").split("."):
        if part == "":
            continue
        if isinstance(cur, Mapping):
            if part not in cur:
                raise TemplateError(f'template: :1: executing "" at <.{part}>: map has no entry for key "{part}"')
            cur = cur[part]
        else:
            cur = getattr(cur, part, None)
    return cur


def _go_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{k}:{_go_str(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_go_str(x) for x in v) + "]"
    return str(v)


def _tokens(expr: str) -> list[str]:
    return re.findall(r'"(?:[^"\\]|\\.)*"|\S+', expr)


def _eval(expr: str, data: Any) -> Any:
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")"):
        return _eval(expr[1:-1], data)
    toks = _tokens(expr)
    if not toks:
        return ""
    head, args = toks[0], toks[1:]

    def arg(t: str) -> Any:
        if t.startswith('"'):
            return json.loads(t)
        if t.startswith("."):
            return _lookup(data, t)
        return t

    if head.startswith(".") and not args:
        return _lookup(data, head)
    if head.startswith('"') and not args:
        return json.loads(head)
    if head == "json":
        return json.dumps(arg(args[0]) if args else data, separators=(",", ":"))
    if head == "index":
        cur = arg(args[0])
        for a in args[1:]:
            k = arg(a)
            cur = cur.get(k) if isinstance(cur, Mapping) else cur[int(k)]
        return cur
    if head == "join":
        return str(arg(args[1])).join(_go_str(x) for x in (arg(args[0]) or []))
    if head in ("upper", "lower", "title"):
        s = _go_str(arg(args[0]))
        return {"upper": s.upper(), "lower": s.lower(), "title": s.title()}[head]
    if head == "println":
        return " ".join(_go_str(arg(a)) for a in args) + "\n"
    if head == "len":
        return len(arg(args[0]) or [])
    if head == "truncate":
        return _go_str(arg(args[0]))[: int(args[1])]
    raise TemplateError(f'template: :1: function "{head}" not defined')


def render_template(template: str, data: Any) -> str:
    out = []
    pos = 0
    for m in _ACTION.finditer(template):
        out.append(template[pos : m.start()])
        value = _eval(m.group(1), data)
        out.append(value if isinstance(value, str) else _go_str(value))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out).replace("\\t", "\t").replace("\\n", "\n")


def print_listing(
    rows: Sequence[Mapping[str, Any]],
    fmt: str | None,
    default_columns: Sequence[tuple[str, str]],
    echo: Callable[[str], None] = click.echo,
) -> None:
    """Render a listing as Docker does: table (default), `json` (one object a line), `table TEMPLATE` or TEMPLATE."""
    if fmt == "json":
        for r in rows:
            echo(json.dumps(r, separators=(",", ":")))
        return
    if fmt and fmt != "table":
        if fmt.startswith("table"):
            tmpl = fmt[5:].strip()
            fields = [f.strip() for f in tmpl.split("\\t")]
            headers = [_header_for(f) for f in fields]
            body = [[render_template(f, r) for f in fields] for r in rows]
            echo(table(headers, body))
        else:
            for r in rows:
                echo(render_template(fmt, r))
        return
    headers = [h for h, _ in default_columns]
    echo(table(headers, [[r.get(k, "") for _, k in default_columns] for r in rows]))


def _header_for(field: str) -> str:
    m = re.fullmatch(r"{{\s*\.(\w+)\s*}}", field)
    if not m:
        return field.upper()
    name = m.group(1)
    special = {"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Repository": "REPOSITORY"}
    if name in special:
        return special[name]
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).upper()
