"""``n`` / ``last`` pagination of tag lists and the catalog, with the ``Link`` header of the next page.

Lists are in lexical order; ``last`` names the final entry of the previous page, so the next page starts after it
(whether or not it still exists); ``n`` bounds the page. A page that stops short of the end carries
``Link: </v2/...?n=N&last=X>; rel="next"``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from barque.registry.server.errors import RegistryError

__all__ = ["parse_page", "split_page", "next_link", "PAGE_MAX"]

PAGE_MAX = 10000


def parse_page(query) -> tuple[int | None, str | None]:
    """(n, last) from a query mapping; n None when not given."""
    n_text = query.get("n")
    n = None
    if n_text not in (None, ""):
        try:
            n = int(n_text)
        except ValueError:
            raise RegistryError("PAGINATION_NUMBER_INVALID", f"n={n_text!r} is not a number") from None
        if n < 0:
            raise RegistryError("PAGINATION_NUMBER_INVALID", f"n={n} is negative")
        n = min(n, PAGE_MAX)
    last = query.get("last") or None
    return n, last


def split_page(rows: list[str], n: int | None) -> tuple[list[str], bool]:
    """`rows` are the sorted entries after ``last`` (the storage fetches n+1 of them): the page, and whether more
    follow."""
    if n is None:
        return rows, False
    return rows[:n], len(rows) > n


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'
