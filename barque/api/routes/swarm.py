"""Swarm mode, which barque does not have: every swarm path (/swarm, /services, /nodes, /tasks, /secrets, /configs)
answers what a dockerd that is not in a swarm answers — 503 and its message — so clients (the docker CLI,
docker-py, compose) behave as they do against a plain Docker host. Plugins: none are installed.
"""

from __future__ import annotations

from aiohttp import web

from barque.api.app import json_response
from barque.api.errors import ApiError

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this '
               "node to swarm and try again.")
#: what dockerd says when asked to leave a swarm it is not part of
NOT_IN_SWARM = "This node is not part of a swarm"


async def not_a_manager(request: web.Request) -> web.StreamResponse:
    raise ApiError(503, NOT_MANAGER)


async def not_in_swarm(request: web.Request) -> web.StreamResponse:
    raise ApiError(503, NOT_IN_SWARM)


async def plugins(request: web.Request) -> web.StreamResponse:
    return json_response([])


async def plugin(request: web.Request) -> web.StreamResponse:
    raise ApiError(404, f'plugin "{request.match_info["name"]}" not found')


ROUTES = [("*", "/swarm/leave", not_in_swarm)]
for _base in ("swarm", "services", "nodes", "tasks", "secrets", "configs"):
    ROUTES += [("*", f"/{_base}", not_a_manager), ("*", f"/{_base}/{{rest:.*}}", not_a_manager)]
ROUTES += [
    ("GET", "/plugins", plugins),
    ("GET", "/plugins/{name:.+}/json", plugin),
]
