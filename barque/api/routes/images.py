"""Images: list, inspect, history, tag, remove, prune, create (pull, import), push, get (save), load, commit, and the
registry checks `/auth` and `/distribution/{name}/json`.

Reads run in a thread with an Engine of their own; everything else in a zygote child (barque/api/ops/images.py).
Streams are never held whole: a request body (import, load) goes to the child as it arrives, in frames (see
`pump_body`), and what the child streams back (an archive, Docker's JSON progress) goes to the client as it comes.
A client that goes away ends the call: the child's next write fails, or its read of the body ends short, and it
stops without making an image.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re

from aiohttp import web

from barque.api.app import json_body, json_response, query_bool, state_of
from barque.api.errors import BadParameter
from barque.api.filters import check_keys, parse_filters
from barque.api.schema import check_config
from barque.api.streams import stream_call

LIST_FILTERS = frozenset({"dangling", "label", "before", "since", "reference"})
PRUNE_FILTERS = frozenset({"dangling", "until", "label", "label!"})
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_TRUE = ("1", "t", "true")
_FALSE = ("0", "f", "false")


# ---- helpers ----------------------------------------------------------------------------------------------------

def _familiar(name: str) -> str:
    from barque.oci.reference import parse_reference

    return parse_reference(name).familiar()


def _familiar_digest(name: str) -> str:
    from barque.oci.reference import parse_reference

    repo, _, digest = name.partition("@")
    return f"{parse_reference(repo).familiar_name}@{digest}"


def _unix(created: str) -> int:
    from barque.oci.times import parse_time

    return int(parse_time(created) or 0)


def repo_tag(repo: str, tag: str) -> str:
    """Docker's RepoTagReference: `repo` (which may hold a tag) with `tag` put on it; never a digest."""
    from barque.oci.reference import parse_reference

    ref = parse_reference(repo)  # InvalidArgument → 400 with Docker's "invalid reference format…"
    if ref.digest is not None:
        raise BadParameter("refusing to create a tag with a digest reference")
    if tag:
        if not _TAG.match(tag):
            raise BadParameter("invalid tag format")
        ref = ref.with_tag(tag)
    return str(ref)


def decode_auth(text: str | None) -> dict:
    """Docker's X-Registry-Auth (and X-Registry-Config): base64url (padding optional) of a JSON object; {} when
    absent or unreadable (dockerd treats an unreadable one as none)."""
    if not text:
        return {}
    raw = text.strip()
    raw += "=" * (-len(raw) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            doc = json.loads(decode(raw))
        except (ValueError, TypeError):
            continue
        return doc if isinstance(doc, dict) else {}
    return {}


def _auth_header(request: web.Request) -> dict:
    return decode_auth(request.headers.get("X-Registry-Auth"))


async def pump_body(request: web.Request, writer: asyncio.StreamWriter) -> bool:
    """The request body to an operation's child as it arrives: frames of a 4-byte length and that many bytes, then
    an empty frame. A body the client cut short (it went away) gets no empty frame: the child sees it end early.
    True when the whole body went over."""
    try:
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            writer.write(len(chunk).to_bytes(4, "big") + chunk)
            await writer.drain()
        writer.write(b"\0\0\0\0")
        await writer.drain()
        return True
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the client's upload broke off, or the child stopped reading (it answers)
        return False


async def _stream_call(request: web.Request, name: str, args: dict, content_type: str,
                       body: bool = False) -> web.StreamResponse:
    state = state_of(request)
    call = await state.call(name, args)
    pump = asyncio.ensure_future(pump_body(request, call.writer)) if body else None
    try:
        await call.result()
        return await stream_call(request, call, content_type)
    finally:
        if pump is not None and not pump.done():
            pump.cancel()
        call.close()


# ---- list, inspect, history ---------------------------------------------------------------------------------------

def _listing(engine, flt: dict[str, list[str]], all_: bool, shared: bool) -> list[dict]:
    from barque.images.query import name_matches, select_images, shared_sizes

    images = select_images(engine, flt, all_)
    sizes = shared_sizes(engine, images) if shared else {}
    patterns = flt.get("reference")
    out = []
    for img in images:
        config = json.loads(engine.content.read(img.id))
        # with a reference filter, dockerd lists only the names that match
        tags = [_familiar(t) for t in img.tags if not patterns or name_matches(t, patterns)]
        digests = [_familiar_digest(d) for d in img.digests if not patterns or name_matches(d, patterns)]
        if not tags and not digests:
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        out.append({
            "Containers": -1,
            "Created": _unix(img.created),
            "Id": str(img.id),
            "Labels": (config.get("config") or {}).get("Labels"),
            "ParentId": img.parent,
            "RepoDigests": digests or None,
            "RepoTags": tags or None,
            "SharedSize": sizes.get(str(img.id), -1),
            "Size": img.size,
            "VirtualSize": img.size,
        })
    out.sort(key=lambda i: i["Created"], reverse=True)
    return out


def _bool_filter(flt: dict[str, list[str]], key: str, default: bool, listed: bool) -> bool:
    values = flt.get(key)
    if not values:
        return default
    if all(v.lower() in _TRUE for v in values):
        return True
    if all(v.lower() in _FALSE for v in values):
        return False
    shown = "[" + " ".join(values) + "]" if listed else ",".join(values)
    raise BadParameter(f"invalid filter '{key}={shown}'")


async def list_images(request: web.Request) -> web.StreamResponse:
    from barque.errors import InvalidArgument

    flt = parse_filters(request.query.get("filters"))
    check_keys(flt, LIST_FILTERS)
    if request.query.get("filter"):  # the old single reference parameter (API < 1.41)
        flt.setdefault("reference", []).append(request.query["filter"])
    if "dangling" in flt:
        flt["dangling"] = ["true" if _bool_filter(flt, "dangling", False, True) else "false"]
    try:
        out = await state_of(request).read(_listing, flt, query_bool(request, "all"),
                                           query_bool(request, "shared-size"))
    except InvalidArgument as e:
        raise BadParameter(e.message) from None
    return json_response(out)


def _inspect(engine, name: str) -> dict:
    from barque.images.inspect import inspect_image
    from barque.images.query import graph_driver

    image = engine.images.resolve(name)
    return inspect_image(engine, image, graph_driver(engine, image))


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(await state_of(request).read(_inspect, request.match_info["name"]))


def _history(engine, name: str) -> list[dict]:
    """Docker's history: newest first; the image's own ID on the top entry, its parents' (while they are here) on
    the entries below, as dockerd pairs them, `<missing>` on the rest."""
    from barque.errors import NotFound
    from barque.images.inspect import history

    image = engine.images.resolve(name)
    out = [{"Comment": h.comment, "Created": _unix(h.created), "CreatedBy": h.created_by, "Id": "<missing>",
            "Size": h.size, "Tags": None} for h in history(engine, image)]
    current = image
    for entry in out:
        entry["Id"] = str(current.id)
        entry["Tags"] = [_familiar(t) for t in current.tags] or None
        if not current.parent:
            break
        try:
            current = engine.images.by_id(current.parent)
        except NotFound:
            break
    return out


async def history(request: web.Request) -> web.StreamResponse:
    return json_response(await state_of(request).read(_history, request.match_info["name"]))


# ---- names ------------------------------------------------------------------------------------------------------

async def tag(request: web.Request) -> web.StreamResponse:
    ref = repo_tag(request.query.get("repo", ""), request.query.get("tag", ""))
    await state_of(request).op("image.tag", {"name": request.match_info["name"], "ref": ref})
    return web.Response(status=201)


async def remove(request: web.Request) -> web.StreamResponse:
    result = await state_of(request).op("image.remove", {"name": request.match_info["name"],
                                                         "force": query_bool(request, "force"),
                                                         "noprune": query_bool(request, "noprune")})
    return json_response(result)


async def prune(request: web.Request) -> web.StreamResponse:
    import time

    from barque.container.logs import parse_since
    from barque.errors import InvalidArgument

    flt = parse_filters(request.query.get("filters"))
    check_keys(flt, PRUNE_FILTERS)
    dangling = _bool_filter(flt, "dangling", True, False)
    until = None
    for value in flt.get("until", []):
        try:
            until = parse_since(value, time.time())
        except InvalidArgument as e:
            raise BadParameter(e.message) from None
    args = {"dangling": dangling, "until": until, "label": flt.get("label", []), "label!": flt.get("label!", [])}
    return json_response(await state_of(request).op("image.prune", args))


# ---- create: pull or import -----------------------------------------------------------------------------------------

async def create(request: web.Request) -> web.StreamResponse:
    q = request.query
    if q.get("fromImage"):
        return await _pull(request)
    if q.get("fromSrc"):
        return await _import(request)
    raise BadParameter("one of fromImage or fromSrc must be given")


async def _pull(request: web.Request) -> web.StreamResponse:
    from barque.oci.digest import Digest
    from barque.oci.reference import parse_reference
    from barque.errors import InvalidArgument

    q = request.query
    ref = parse_reference(q["fromImage"])
    tag_text = q.get("tag", "")
    if tag_text:
        try:
            ref = ref.with_digest(Digest.parse(tag_text))  # "tag" may be a digest
        except InvalidArgument:
            if not _TAG.match(tag_text):
                raise BadParameter("invalid tag format") from None
            ref = ref.with_tag(tag_text)
    all_tags = ref.tag is None and ref.digest is None  # Docker: no tag pulls every tag
    args = {"ref": str(ref), "all_tags": all_tags, "platform": q.get("platform") or None,
            "auth": _auth_header(request)}
    return await _stream_call(request, "image.pull", args, "application/json")


async def _import(request: web.Request) -> web.StreamResponse:
    q = request.query
    if q["fromSrc"] != "-":
        raise BadParameter(f"import from a URL is not supported: {q['fromSrc']} (send the archive as the body, "
                           "fromSrc=-)")
    ref = repo_tag(q["repo"], q.get("tag", "")) if q.get("repo") else None
    args = {"ref": ref, "changes": q.getall("changes", []), "message": q.get("message", ""),
            "platform": q.get("platform") or None}
    state = state_of(request)
    call = await state.call("image.import", args)
    pump = asyncio.ensure_future(pump_body(request, call.writer))
    try:
        result = await call.result()
    finally:
        if not pump.done():
            pump.cancel()
        call.close()
    body = json.dumps(result, separators=(",", ":")).encode() + b"\r\n"  # Docker's one JSON message
    return web.Response(status=200, body=body, content_type="application/json")


# ---- push, save, load -------------------------------------------------------------------------------------------

async def push(request: web.Request) -> web.StreamResponse:
    from barque.oci.reference import parse_reference

    if request.headers.get("X-Registry-Auth"):
        auth = _auth_header(request)
    else:  # the old form: the auth config as the body (dockerd's rule)
        raw = await request.read()
        try:
            auth = json.loads(raw) if raw.strip() else None
        except ValueError as e:
            raise BadParameter(f"Bad parameters and missing X-Registry-Auth: {e}") from None
        if auth is None:
            raise BadParameter("Bad parameters and missing X-Registry-Auth: EOF")
        if not isinstance(auth, dict):
            auth = {}
    ref = parse_reference(request.match_info["name"])
    tag_text = request.query.get("tag", "")
    if tag_text:
        if not _TAG.match(tag_text):
            raise BadParameter("invalid tag format")
        ref = ref.with_tag(tag_text)
    if ref.digest is not None:
        raise BadParameter("cannot push a digest reference")
    args = {"ref": str(ref), "all_tags": ref.tag is None, "auth": auth}
    return await _stream_call(request, "image.push", args, "application/json")


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _stream_call(request, "image.save", {"names": [request.match_info["name"]]}, "application/x-tar")


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _stream_call(request, "image.save", {"names": request.query.getall("names", [])},
                              "application/x-tar")


async def load(request: web.Request) -> web.StreamResponse:
    # dockerd's default is quiet; the output is the same here either way (no per-layer bars)
    return await _stream_call(request, "image.load", {"quiet": query_bool(request, "quiet", True)},
                              "application/json", body=True)


# ---- commit -----------------------------------------------------------------------------------------------------

async def commit(request: web.Request) -> web.StreamResponse:
    q = request.query
    container = q.get("container", "")
    if not container:
        raise BadParameter('invalid name or ID supplied: ""')
    raw_type = request.headers.get("Content-Type", "")
    if request.can_read_body and raw_type.split(";")[0].strip() not in ("application/json", ""):
        raise BadParameter(f"Content-Type specified ({raw_type}) must be 'application/json'")
    config = await json_body(request)
    if config is not None and not isinstance(config, dict):
        raise BadParameter("invalid JSON: the body must be a container config object")
    if config is not None:
        check_config(config)
    ref = repo_tag(q["repo"], q.get("tag", "")) if q.get("repo") else None
    pause_text = q.get("pause", "")
    args = {"container": container, "ref": ref, "comment": q.get("comment", ""), "author": q.get("author", ""),
            "changes": q.getall("changes", []), "pause": True if pause_text == "" else query_bool(request, "pause"),
            "config": config}
    return json_response(await state_of(request).op("image.commit", args), status=201)


# ---- registries ---------------------------------------------------------------------------------------------------

async def auth(request: web.Request) -> web.StreamResponse:
    body = await json_body(request, required=True)
    if not isinstance(body, dict):
        raise BadParameter("invalid JSON: the body must be an auth config object")
    return json_response(await state_of(request).op("image.auth", {"auth": body,
                                                                   "server": body.get("serveraddress") or ""}))


async def distribution(request: web.Request) -> web.StreamResponse:
    args = {"name": request.match_info["name"], "auth": _auth_header(request)}
    return json_response(await state_of(request).op("image.distribution", args))


ROUTES = [
    ("GET", "/images/json", list_images),
    ("POST", "/images/create", create),
    ("POST", "/images/load", load),
    ("POST", "/images/prune", prune),
    ("GET", "/images/get", save_many),
    ("GET", "/images/{name:.+}/json", inspect),
    ("GET", "/images/{name:.+}/history", history),
    ("POST", "/images/{name:.+}/tag", tag),
    ("POST", "/images/{name:.+}/push", push),
    ("GET", "/images/{name:.+}/get", save_one),
    ("DELETE", "/images/{name:.+}", remove),
    ("POST", "/commit", commit),
    ("POST", "/auth", auth),
    ("GET", "/distribution/{name:.+}/json", distribution),
]
