"""The referrers API: manifests whose ``subject`` is a digest, as an OCI image index (empty when none)."""

from __future__ import annotations

import json

from aiohttp import web

from barque.oci import mediatypes as mt
from barque.registry.server.names import parse_digest


async def referrers(request: web.Request, st, name: str, digest: str) -> web.StreamResponse:
    subject = parse_digest(digest)
    artifact_type = request.query.get("artifactType") or None
    found = await st.run(st.storage.referrers, name, subject, artifact_type)
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [r.to_dict() for r in found]}
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    return web.Response(body=json.dumps(body).encode(), headers=headers)
