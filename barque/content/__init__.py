"""Content-addressable blob storage (containerd's content store, sized down)."""

from barque.content.store import BlobInfo, ContentStore, Writer

__all__ = ["BlobInfo", "ContentStore", "Writer"]
