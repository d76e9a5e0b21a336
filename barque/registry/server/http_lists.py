"""Tag listing and the catalog, both paginated with ``n``/``last`` and a ``Link`` to the next page."""

from __future__ import annotations

from aiohttp import web

from barque.registry.server.pagination import next_link, parse_page, split_page


async def tags(request: web.Request, st, name: str) -> web.StreamResponse:
    n, last = parse_page(request.query)
    rows = await st.run(st.storage.list_tags, name, n, last)
    page, more = split_page(rows, n)
    headers = {"Link": next_link(f"/v2/{name}/tags/list", n, page[-1])} if more and n else {}
    return web.json_response({"name": name, "tags": page}, headers=headers)


async def catalog(request: web.Request, st) -> web.StreamResponse:
    n, last = parse_page(request.query)
    rows = await st.run(st.storage.list_repositories, n, last)
    page, more = split_page(rows, n)
    headers = {"Link": next_link("/v2/_catalog", n, page[-1])} if more and n else {}
    return web.json_response({"repositories": page}, headers=headers)
