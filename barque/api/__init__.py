"""The Docker Engine API (`barque serve`): the same engine the CLI drives, behind Docker's HTTP API on a unix socket
(or TCP with TLS), so the docker CLI, docker-py and docker-compose work against barque.

Layout: `serve.py` (listeners, signals), `app.py` (routing, version negotiation, headers, errors), `zygote.py`
(every operation that forks, mounts or runs long happens in a child forked from a single-threaded zygote made before
the server starts any thread), `ops/` (what those children run), `routes/` (one module per resource, the HTTP side),
`errors.py` (barque's error categories → Docker's statuses and bodies, in one place), `filters.py`, `streams.py`.
"""
