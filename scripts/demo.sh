#!/usr/bin/env bash
# The main job, as far as barque goes today: make base images offline, load and import images, list and inspect
# them, save them again; then run a container with barque-runtime. Runs in its own roots, never /var/lib/barque.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEMO=${DEMO_DIR:-/tmp/barque-demo}
rm -rf "$DEMO"; mkdir -p "$DEMO"
b() { echo "+ barque $*" >&2; .venv/bin/barque --root "$DEMO/root" --run-root "$DEMO/run" "$@"; }

b bootstrap busybox --tag busybox:latest
if [ "${DEMO_DEBIAN:-1}" = 1 ]; then
  b bootstrap debian --suite bookworm --tag debian:bookworm
fi
b load -i ../shared/fixtures/docker-made/docker-save-layers.tar
b load -i ../shared/fixtures/docker-made/oci-layout-layers
b import ../shared/fixtures/docker-made/docker-export-flat.tar demo/imported:1 --change 'CMD ["cat", "/data/a.txt"]' -m "imported by the demo"
b tag busybox:latest demo/busybox:v1
b images
b history fixture/layers:1
b image inspect --format '{{.Id}} {{json .Config.Cmd}} {{.RootFS.Layers}}' fixture/layers:1
b save -o "$DEMO/images.tar" busybox:latest fixture/layers:1
echo "+ saved $(du -h "$DEMO/images.tar" | cut -f1) to $DEMO/images.tar"
b system df
b info

# The OCI runtime on its own, as runc is used: a bundle (busybox rootfs + config.json with Docker's defaults).
mkdir -p "$DEMO/bundle/rootfs"
.venv/bin/python -c "import sys; from pathlib import Path; from barque.images.bootstrap import make_busybox_tree; make_busybox_tree(Path(sys.argv[1]))" "$DEMO/bundle/rootfs"
(cd "$DEMO/bundle" && "$REPO/.venv/bin/barque-runtime" spec)
.venv/bin/python - "$DEMO/bundle/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c", "echo hello from $(hostname) as pid $$; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"]
json.dump(spec, open(sys.argv[1], "w"))
PY
echo "+ barque-runtime run --bundle $DEMO/bundle demo" >&2
.venv/bin/barque-runtime --root "$DEMO/runtime" run --bundle "$DEMO/bundle" demo
echo "demo done: state in $DEMO (remove it with: rm -rf $DEMO)"
