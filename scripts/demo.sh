#!/usr/bin/env bash
# The main job, as far as barque goes today: make base images offline, load and import images, list and inspect
# them, save them again. Runs against its own root so it never touches /var/lib/barque.
set -euo pipefail
cd "$(dirname "$0")/.."
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
echo "demo done: state in $DEMO (remove it with: rm -rf $DEMO)"
