"""Garbage collection of barque's registry: what it deletes (unreferenced and old), what it keeps (everything a tag,
an index or a subject reaches; whatever a push used within the grace period), and the race with a concurrent push —
collections running in another process, again and again, while images are pushed — after which every image pulls
back intact."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import threading
import time

from tests import registry_support
from tests.integration.test_registry_server import (
    CONFIG, OCI_INDEX, OCI_MANIFEST, desc, manifest_doc, push_blob, push_image, sha,
)

registry = registry_support.registry                    # fixtures
registry_factory = registry_support.registry_factory


def present(reg, repo: str, digest: str, kind: str = "blobs") -> bool:
    return reg.request("HEAD", f"/v2/{repo}/{kind}/{digest}").status == 200


def on_disk(reg, digest: str) -> bool:
    alg, hexd = digest.split(":")
    return (reg.root / "blobs" / alg / hexd).is_file()


def age(reg, *digests: str, seconds: float = 7200) -> None:
    """Make blobs look last used `seconds` ago (the GC's clock), as if the push had happened long before."""
    with sqlite3.connect(reg.root / "registry.db") as db:
        for d in digests:
            db.execute("UPDATE blobs SET last_used = last_used - ? WHERE digest = ?", (seconds, d))
        db.execute("UPDATE manifests SET created = created - ?", (seconds,))


def gc(reg, *args: str) -> dict:
    return json.loads(reg.garbage_collect("--format", "json", *args).stdout)


def test_gc_deletes_unreferenced_and_old_keeps_reachable(registry):
    reg = registry
    tagged, tagged_d = push_image(reg, "app", "v1", layers=(b"shared", b"tagged-only"))
    untagged, untagged_d = push_image(reg, "app", None, layers=(b"shared", b"untagged-only"))
    deleted, deleted_d = push_image(reg, "app", "gone", layers=(b"deleted-only",))
    assert reg.request("DELETE", f"/v2/app/manifests/{deleted_d}").status == 202
    orphan = push_blob(reg, "app", b"never referenced")
    # an index, tagged, whose children are untagged; a referrer of the tagged image
    _, child = push_image(reg, "app", None, layers=(b"child-layer",))
    child_size = int(reg.request("HEAD", f"/v2/app/manifests/{child}").header("Content-Length"))
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": child_size}]}).encode()
    assert reg.request("PUT", "/v2/app/manifests/multi", index, {"Content-Type": OCI_INDEX}).status == 201
    push_blob(reg, "app", b"{}")
    push_blob(reg, "app", b"signature")
    referrer = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.sig",
                           "config": desc("application/vnd.oci.empty.v1+json", b"{}"),
                           "layers": [desc("application/octet-stream", b"signature")],
                           "subject": {"mediaType": OCI_MANIFEST, "digest": tagged_d, "size": len(tagged)}}).encode()
    assert reg.request("PUT", f"/v2/app/manifests/{sha(referrer)}", referrer,
                       {"Content-Type": OCI_MANIFEST}).status == 201

    # everything is recent: the grace period protects even what nothing references
    report = gc(reg)
    assert report["blobs_deleted"] == [] and report["blobs_kept_recent"] >= 2
    assert on_disk(reg, orphan)

    every = [sha(b) for b in (b"shared", b"tagged-only", b"untagged-only", b"deleted-only", b"never referenced",
                              b"child-layer", b"signature", b"{}", CONFIG)]
    age(reg, *every, tagged_d, untagged_d, deleted_d, child, sha(index), sha(referrer))
    report = gc(reg)
    assert sorted(report["blobs_deleted"]) == sorted([orphan, sha(b"deleted-only"), deleted_d])
    assert report["manifests_deleted"] == []
    assert not on_disk(reg, orphan) and not present(reg, "app", orphan)
    assert present(reg, "app", untagged_d, "manifests")

    report = gc(reg, "--delete-untagged")
    assert report["manifests_deleted"] == [f"app@{untagged_d}"]
    assert sorted(report["blobs_deleted"]) == sorted([untagged_d, sha(b"untagged-only")])
    assert not present(reg, "app", untagged_d, "manifests")
    # what the tags reach is whole: the image, its referrer, the index and its child
    for d in (tagged_d, sha(referrer), sha(index), child):
        assert present(reg, "app", d, "manifests"), d
    for blob in (b"shared", b"tagged-only", b"child-layer", b"signature", b"{}", CONFIG):
        r = reg.request("GET", f"/v2/app/blobs/{sha(blob)}")
        assert r.status == 200 and r.body == blob
    assert reg.request("GET", f"/v2/app/referrers/{tagged_d}").json()["manifests"][0]["digest"] == sha(referrer)
    # a dry run deletes nothing
    reg.request("DELETE", "/v2/app/manifests/v1")
    report = gc(reg, "--delete-untagged", "--dry-run")
    assert f"app@{tagged_d}" in report["manifests_deleted"]
    assert present(reg, "app", tagged_d, "manifests")


def test_head_refreshes_a_blob_for_the_grace_period(registry):
    reg = registry
    kept, lost = push_blob(reg, "h", b"head-checked"), push_blob(reg, "h", b"not checked")
    age(reg, kept, lost)
    assert present(reg, "h", kept)   # a pushing client's "do you have it?"
    report = gc(reg, "--grace-period", "60")
    assert report["blobs_deleted"] == [lost]
    # the push that HEAD-checked it now completes
    push_blob(reg, "h", CONFIG)
    body = manifest_doc(layers=(b"head-checked",))
    assert reg.request("PUT", "/v2/h/manifests/v1", body, {"Content-Type": OCI_MANIFEST}).status == 201
    assert reg.request("GET", f"/v2/h/blobs/{kept}").body == b"head-checked"


def test_without_grace_a_late_manifest_is_refused_cleanly(registry):
    """The failure the grace period prevents: a collection between the blobs and the manifest of a push. The manifest
    is then refused (MANIFEST_BLOB_UNKNOWN), never stored half-backed; pushing the blob again mends it."""
    reg = registry
    push_blob(reg, "late", CONFIG)
    push_blob(reg, "late", b"layer-one")
    assert len(gc(reg, "--grace-period", "0")["blobs_deleted"]) == 2
    body = manifest_doc()
    r = reg.request("PUT", "/v2/late/manifests/v1", body, {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert not present(reg, "late", sha(b"layer-one"))   # a HEAD tells the client to upload again
    push_blob(reg, "late", CONFIG)
    push_blob(reg, "late", b"layer-one")
    assert reg.request("PUT", "/v2/late/manifests/v1", body, {"Content-Type": OCI_MANIFEST}).status == 201


def test_abandoned_uploads_are_removed(registry):
    reg = registry
    location = reg.request("POST", "/v2/ab/blobs/uploads/").header("Location")
    assert reg.request("PATCH", location, b"half a blob").status == 202
    assert len(list((reg.root / "uploads").iterdir())) == 1
    assert gc(reg, "--upload-expiry", "3600")["uploads_removed"] == 0
    assert gc(reg, "--upload-expiry", "0")["uploads_removed"] == 1
    assert reg.request("GET", location).status == 404
    assert list((reg.root / "uploads").iterdir()) == []


def test_signal_runs_an_online_collection(registry_factory):
    reg = registry_factory(extra_args=["--gc-grace", "0", "--gc-delete-untagged"])
    orphan = push_blob(reg, "sig", b"orphan for SIGUSR1")
    _, kept = push_image(reg, "sig", "v1")   # no timer: nothing collects before the signal
    reg.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 15
    while present(reg, "sig", orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not present(reg, "sig", orphan)
    assert reg.request("GET", "/v2/sig/manifests/v1").status == 200
    assert "garbage collection: 0 manifests, 1 blobs" in reg.log()


def test_gc_race_with_concurrent_pushes(registry):
    """Collections in another process, back to back, while four pushers upload blobs (monolithic, chunked, mounted
    or skipped after a HEAD), wait, then PUT their manifests. Every push must succeed, and every image pull back
    whole; afterwards a collection with no grace still removes what nothing references."""
    reg = registry
    stop = threading.Event()
    runs: list[dict] = []
    errors: list[BaseException] = []

    def collector() -> None:
        try:
            while not stop.is_set() and len(runs) < 60:
                runs.append(gc(reg, "--grace-period", "30", "--delete-untagged", "--upload-expiry", "30"))
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    shared = push_blob(reg, "base/img", b"shared base layer")
    pushed: dict[str, tuple[bytes, list[bytes]]] = {}
    lock = threading.Lock()

    def pusher(worker: int) -> None:
        rnd = random.Random(worker)
        try:
            for i in range(6):
                repo, tag = f"race/w{worker}", f"t{i}"
                layers = [os.urandom(rnd.randint(1, 300_000)) for _ in range(2)]
                push_blob(reg, repo, layers[0])
                # chunked
                location = reg.request("POST", f"/v2/{repo}/blobs/uploads/").header("Location")
                half = len(layers[1]) // 2
                r = reg.request("PATCH", location, layers[1][:half], {"Content-Range": f"0-{half - 1}"} if half else {})
                assert r.status == 202, r.body
                r = reg.request("PUT", f"{r.header('Location')}?digest={sha(layers[1])}", layers[1][half:])
                assert r.status == 201, r.body
                # the shared layer: HEAD in the repo, else mount it from base/img
                if not present(reg, repo, shared):
                    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/?mount={shared}&from=base/img")
                    assert r.status == 201, r.body
                config = json.dumps({"architecture": "amd64", "os": "linux", "n": [worker, i]}).encode()
                push_blob(reg, repo, config)
                time.sleep(rnd.uniform(0.05, 0.4))   # the window a collection could strike in
                all_layers = [b"shared base layer", *layers]
                body = manifest_doc(config, tuple(all_layers))
                r = reg.request("PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST})
                assert r.status == 201, (r.status, r.body)
                with lock:
                    pushed[f"{repo}:{tag}"] = (body, [config, *all_layers])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    workers = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    stop.set()
    gc_thread.join(120)
    assert not errors, errors
    assert len(pushed) == 24 and len(runs) >= 3, (len(pushed), len(runs))

    orphan = push_blob(reg, "race/w0", b"orphan at the end")
    age(reg, orphan)
    final = gc(reg, "--grace-period", "0", "--delete-untagged")
    assert orphan in final["blobs_deleted"]
    for ref, (body, blobs) in pushed.items():
        repo, tag = ref.split(":")
        r = reg.request("GET", f"/v2/{repo}/manifests/{tag}")
        assert r.status == 200 and r.body == body, ref
        for blob in blobs:
            r = reg.request("GET", f"/v2/{repo}/blobs/{sha(blob)}")
            assert r.status == 200 and r.body == blob, (ref, sha(blob))


def test_periodic_online_collection(registry_factory):
    reg = registry_factory(extra_args=["--gc-interval", "0.3", "--gc-grace", "30"])
    _, kept = push_image(reg, "tick", "v1")   # inside the grace period while its manifest is on its way
    orphan = push_blob(reg, "tick", b"orphan for the timer")
    age(reg, orphan)
    # polled with GET: a HEAD would refresh the blob (a pushing client's check) and so keep it
    deadline = time.monotonic() + 15
    while reg.request("GET", f"/v2/tick/blobs/{orphan}").status == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reg.request("GET", f"/v2/tick/blobs/{orphan}").status == 404
    assert reg.request("GET", f"/v2/tick/manifests/{kept}").status == 200
