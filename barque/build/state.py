"""A build stage's state between steps: the image it would be if the build stopped here.

A state is an image config (the container settings Dockerfile instructions edit, the history, the diff IDs) and the
layer blobs behind it. Every step turns one state into the next; `save` writes a state's config and manifest to the
content store, and the config's digest is the state's ID — the `---> 3f2a…` Docker prints after each step, and the
parent half of the next step's cache key. Since a state holds no wall-clock time (see `created`), the same steps on
the same inputs always give the same IDs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from barque.images.unpack import LayerRef
from barque.oci.digest import Digest

__all__ = ["State", "Saved", "DEFAULT_PATH"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Saved:
    config_digest: Digest
    config_size: int
    manifest_digest: Digest
    manifest_size: int


@dataclass
class State:
    config: dict                                 # the image config's "config": Env, Cmd, WorkingDir, Labels…
    layers: list[LayerRef] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    platform: dict = field(default_factory=dict)  # architecture, os, variant… of the base; author (MAINTAINER)
    created: str = ""                            # the build's fixed time (SOURCE_DATE_EPOCH or the base's)
    scratch: bool = False
    saved: Saved | None = None                   # set once written; cleared by every change

    @classmethod
    def scratch_state(cls, created: str) -> "State":
        from barque.oci.platform import host_architecture

        # as Docker's builder: FROM scratch starts with the default PATH and nothing else
        return cls(config={"Env": [DEFAULT_PATH]}, platform={"architecture": host_architecture(), "os": "linux"},
                   created=created, scratch=True)

    @classmethod
    def from_image(cls, engine, image_id: Digest, created: str) -> "State":
        image = engine.images.by_id(image_id)
        doc = json.loads(engine.content.read(image_id))
        manifest = json.loads(engine.content.read(image.target_digest))
        state = cls._from_docs(doc, manifest, created)
        if state.platform.pop("author", None) is not None:  # MAINTAINER is the building stage's, never inherited
            return state
        # the image as it is: its own config and manifest (OCI or Docker's) are the state's, its ID the step's
        state.saved = Saved(image_id, engine.content.info(image_id).size, image.target_digest, image.target_size)
        return state

    @classmethod
    def load(cls, engine, config_digest: Digest, manifest_digest: Digest, created: str) -> "State":
        doc = json.loads(engine.content.read(config_digest))
        manifest = json.loads(engine.content.read(manifest_digest))
        state = cls._from_docs(doc, manifest, created)
        state.saved = Saved(config_digest, engine.content.info(config_digest).size, manifest_digest,
                            engine.content.info(manifest_digest).size)
        return state

    @classmethod
    def _from_docs(cls, doc: dict, manifest: dict, created: str) -> "State":
        from barque.images.register import layer_refs

        platform = {k: doc[k] for k in ("architecture", "os", "variant", "os.version", "os.features", "author")
                    if doc.get(k)}
        return cls(config=copy.deepcopy(doc.get("config") or {}), layers=layer_refs(manifest, doc),
                   history=list(doc.get("history") or []), platform=platform, created=created)

    def clone(self) -> "State":
        return State(copy.deepcopy(self.config), list(self.layers), list(self.history), dict(self.platform),
                     self.created, self.scratch, self.saved)

    # -- changes
    def changed(self) -> "State":
        self.saved = None
        return self

    def add_history(self, created_by: str, layer: LayerRef | None) -> None:
        entry = {"created": self.created, "created_by": created_by}
        if layer is None:
            entry["empty_layer"] = True
        else:
            self.layers.append(layer)
        self.history.append(entry)
        self.changed()

    # -- the environment steps see
    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def set_env(self, key: str, value: str) -> None:
        env = list(self.config.get("Env") or [])
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config["Env"] = env
        self.changed()

    # -- the image
    def image_config(self) -> dict:
        from barque.images.importer import image_config

        config = {k: v for k, v in self.config.items() if v not in (None, "", [], {}) or k == "Cmd" and v == []}
        return image_config([str(layer.diff_id) for layer in self.layers], config, self.history, self.created,
                            self.platform)

    def save(self, engine) -> Saved:
        """Write the state's config and manifest to the content store (once); their digests."""
        if self.saved is not None:
            return self.saved
        from barque.container.commit import oci_layer_type
        from barque.images.register import oci_manifest

        config_bytes = json.dumps(self.image_config(), separators=(",", ":"), sort_keys=False).encode()
        config_info = engine.content.add(config_bytes)
        descs = [(oci_layer_type(layer.media_type), layer.digest, engine.content.info(layer.digest).size)
                 for layer in self.layers]
        manifest_info = engine.content.add(oci_manifest(config_info.digest, config_info.size, descs))
        self.saved = Saved(config_info.digest, config_info.size, manifest_info.digest, manifest_info.size)
        return self.saved

    @property
    def chain_id(self) -> str | None:
        """The committed snapshot of the top layer (None for an empty rootfs)."""
        from barque.images.unpack import chain_ids

        chains = chain_ids([layer.diff_id for layer in self.layers])
        return str(chains[-1]) if chains else None
