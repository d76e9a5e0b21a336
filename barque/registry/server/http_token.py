"""The registry's own token endpoint (Docker's token authentication spec, and its OAuth2 POST variant).

``GET /token?service=S&scope=repository:NAME:pull,push`` with optional Basic credentials answers
``{"token", "access_token", "expires_in", "issued_at"}``; the granted actions are the requested ones the policy
allows (possibly none: the spec says to answer with a token anyway, and let the registry refuse). Wrong credentials
are a 401. ``POST /token`` takes the form ``grant_type=password&username=…&password=…&scope=…&service=…``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from barque.registry.server.auth import basic_credentials
from barque.registry.server.errors import RegistryError
from barque.registry.server.tokens import parse_scopes


async def _issue(request: web.Request, creds: tuple[str, str] | None, service: str | None, scopes: list[str]):
    st = request.app["registry"]
    issuer, users, policy = st.token
    if service and service != issuer.service:
        raise RegistryError("DENIED", f"this issuer serves {issuer.service!r}, not {service!r}", status=400,
                            message="unknown service")
    user = ""
    if creds is not None:
        if not await st.run(users.verify, *creds):
            raise RegistryError("UNAUTHORIZED", "invalid username or password",
                                headers={"WWW-Authenticate": 'Basic realm="barque-registry"'})
        user = creds[0]
    access = []
    for scope in parse_scopes(scopes):
        actions = policy.grant(user, scope)
        if actions:
            access.append(type(scope)(scope.type, scope.name, actions))
    return web.json_response(issuer.issue(user, access))


async def token_get(request: web.Request) -> web.StreamResponse:
    creds = basic_credentials(request.headers.get("Authorization"))
    return await _issue(request, creds, request.query.get("service"), request.query.getall("scope", []))


async def token_post(request: web.Request) -> web.StreamResponse:
    timeout = request.app["registry"].config.body_timeout
    try:
        async with asyncio.timeout(timeout or None):
            form = await request.post()
    except TimeoutError:
        raise RegistryError("UNSUPPORTED", f"the request body sent nothing for {timeout:g} s", status=408,
                            message="request body timed out") from None
    grant = form.get("grant_type")
    if grant != "password":
        raise RegistryError("UNSUPPORTED", f"grant_type {grant!r} (only password)", status=400)
    creds = (str(form.get("username") or ""), str(form.get("password") or ""))
    response = await _issue(request, creds, form.get("service"), [str(s) for s in form.getall("scope", [])])
    return response
