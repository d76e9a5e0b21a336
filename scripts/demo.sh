#!/usr/bin/env bash
# The main job, as far as barque goes today: make base images offline, load and import images, list and inspect
# them, save them again; build one from a Dockerfile; run containers (detached, with a health check, a volume, exec, logs), commit one; then
# push it to barque's own registry and pull it into a second root; network containers (published ports reached from
# "outside", a user network with names, links); run a bundle with barque-runtime alone. Runs in its own roots, never
# /var/lib/barque, and removes its containers. Containers run in a throwaway network namespace that plays the host
# (barque0, veths and barque's nftables tables live there) and a second one plays the outside world: the machine's own
# interfaces and firewall are never touched. Only `bootstrap debian` (debootstrap from the mirror) runs outside it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEMO=${DEMO_DIR:-/tmp/barque-demo}
rm -rf "$DEMO"; mkdir -p "$DEMO"
HOSTNS=barque-demo-host-$$ OUTNS=barque-demo-out-$$
ip netns add "$HOSTNS"; ip netns add "$OUTNS"
drop_netns() {
  .venv/bin/python -c 'import sys; from barque.network.dns.client import stop; stop(sys.argv[1])' "$DEMO/run" || true
  ip netns delete "$HOSTNS" 2>/dev/null || true; ip netns delete "$OUTNS" 2>/dev/null || true
}
trap drop_netns EXIT
ip -n "$HOSTNS" link set lo up; ip -n "$OUTNS" link set lo up
ip -n "$HOSTNS" link add up0 type veth peer name out0 netns "$OUTNS"
ip -n "$HOSTNS" addr add 198.51.100.1/24 dev up0; ip -n "$OUTNS" addr add 198.51.100.2/24 dev out0
ip -n "$HOSTNS" link set up0 up; ip -n "$OUTNS" link set out0 up
inhost() { nsenter --net="/run/netns/$HOSTNS" -- "$@"; }
b() { echo "+ barque $*" >&2; inhost .venv/bin/barque --root "$DEMO/root" --run-root "$DEMO/run" "$@"; }

b bootstrap busybox --tag busybox:latest
if [ "${DEMO_DEBIAN:-1}" = 1 ]; then
  echo "+ barque bootstrap debian --suite bookworm --tag debian:bookworm   (in the machine's network: debootstrap)" >&2
  .venv/bin/barque --root "$DEMO/root" --run-root "$DEMO/run" bootstrap debian --suite bookworm --tag debian:bookworm
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

# Builds: the Dockerfile Docker built fixture/layers:1 from, rebuilt by barque (bb:latest is its base's name),
# then again from the cache — same image ID, every step "Using cache".
b tag busybox:latest bb:latest
b build -t demo/layers:built ../shared/fixtures/docker-made/build-context
b build -t demo/layers:built ../shared/fixtures/docker-made/build-context
b run --rm demo/layers:built

# Containers, as with docker: no daemon; each detached container has a small monitor of its own.
cleanup() { inhost .venv/bin/barque --root "$DEMO/root" --run-root "$DEMO/run" rm -f -v demo-web >/dev/null 2>&1 || true; drop_netns; }
trap cleanup EXIT
b run --rm busybox echo "hello from a container"
b run -d --name demo-web --restart on-failure:3 --health-cmd 'test -e /tmp/ok' --health-interval 1s \
  -v demo-data:/data busybox sh -c 'trap "exit 0" TERM; touch /tmp/ok; echo started; sleep 300 & wait'
for _ in $(seq 50); do
  [ "$(b inspect --format '{{.State.Health.Status}}' demo-web 2>/dev/null)" = healthy ] && break
  sleep 0.2
done
b ps
b logs demo-web
b exec demo-web sh -c 'echo written by exec > /data/f; echo changed > /etc/motd'
b run --rm --volumes-from demo-web:ro busybox cat /data/f
b diff demo-web
b commit -m "committed by the demo" demo-web demo/committed:1
b run --rm demo/committed:1 cat /etc/motd
b stop -t 1 demo-web
b inspect --format '{{.Name}} {{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}}' demo-web
b rm -v demo-web
b volume rm demo-data

# Registries: barque's own registry on loopback (token auth), push to it, pull back into a second, empty root.
reg_pid= api_pid=
cleanup() {
  inhost .venv/bin/barque --root "$DEMO/root" --run-root "$DEMO/run" rm -f -v demo-web >/dev/null 2>&1 || true
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null || true
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  drop_netns
}
.venv/bin/python -c "import bcrypt, sys; print('demo:' + bcrypt.hashpw(b'demo-pw', bcrypt.gensalt()).decode())" > "$DEMO/htpasswd"
echo "+ barque registry serve --addr 127.0.0.1:0 --auth token --htpasswd $DEMO/htpasswd" >&2
(exec nsenter --net="/run/netns/$HOSTNS" -- .venv/bin/barque registry serve --addr 127.0.0.1:0 --root "$DEMO/registry" \
  --auth token --htpasswd "$DEMO/htpasswd" > "$DEMO/registry.out" 2> "$DEMO/registry.log") &
reg_pid=$!
for _ in $(seq 100); do grep -q listening "$DEMO/registry.out" && break; sleep 0.1; done
reg=$(sed -n 's|.*listening on http://||p' "$DEMO/registry.out")
export DOCKER_CONFIG="$DEMO/docker-config"
echo demo-pw | b login -u demo --password-stdin "$reg"
b tag demo/committed:1 "$reg/demo/committed:1"
b push "$reg/demo/committed:1"
b2() { echo "+ barque (second root) $*" >&2; inhost .venv/bin/barque --root "$DEMO/root2" --run-root "$DEMO/run2" "$@"; }
b2 pull "$reg/demo/committed:1"
b2 run --rm "$reg/demo/committed:1" cat /etc/motd
b2 images --digests
b logout "$reg"

# Networks: a published port fetched from the "outside" namespace (198.51.100.2 -> the host's 198.51.100.1), a
# user-defined network whose containers find each other by name and alias, a link's variables, then nothing left.
b run -d --name demo-site -p 8080:80 busybox httpd -f -p 80 -h /etc
b port demo-site
sleep 0.5
echo "+ (outside) wget http://198.51.100.1:8080/hostname" >&2
nsenter --net="/run/netns/$OUTNS" -- python3 -c 'import urllib.request; print(urllib.request.urlopen("http://198.51.100.1:8080/hostname", timeout=5).read().decode().strip(), "answered from the outside")'
b network create --subnet 10.77.0.0/24 demo-net
b run -d --name demo-api --network demo-net --network-alias api busybox httpd -f -p 80 -h /etc
b run --rm --network demo-net busybox sh -c 'nslookup api | grep -A1 ^Name; wget -qO- http://api/hostname'
b run --rm --link demo-site:site busybox sh -c 'env | grep ^SITE_ | sort; grep site /etc/hosts'
b ps --format 'table {{.Names}}\t{{.Ports}}\t{{.Status}}'
b network ls
b rm -f demo-site demo-api
b network rm demo-net
b system check
echo "+ links left in the host namespace: $(inhost ip -o link show | cut -d: -f2 | tr -d ' ' | sort | tr '\n' ' ')" >&2

b system df
b info

# The Docker Engine API: `barque serve` on a socket of the demo's, the docker CLI (and docker-compose, docker-py)
# driving the same engine — the containers are the ones `barque ps` shows.
echo "+ barque serve -H unix://$DEMO/barque.sock" >&2
(exec nsenter --net="/run/netns/$HOSTNS" -- .venv/bin/barque --root "$DEMO/root" --run-root "$DEMO/run" serve \
  -H "unix://$DEMO/barque.sock" > "$DEMO/api.out" 2> "$DEMO/api.log") &
api_pid=$!
for _ in $(seq 100); do grep -qs listening "$DEMO/api.out" && break; sleep 0.1; done
d() { echo "+ docker $*" >&2; DOCKER_HOST="unix://$DEMO/barque.sock" docker "$@"; }
d version --format 'docker CLI {{.Client.Version}} (API {{.Client.APIVersion}}) -> {{.Server.Platform.Name}} (API {{.Server.APIVersion}})'
d run --rm busybox sh -c 'echo hello through the Engine API from $(hostname)'
d run -d --name demo-api-web busybox sleep 300
d exec demo-api-web sh -c 'echo exec in $(hostname)'
d ps --format 'table {{.ID}}\t{{.Image}}\t{{.Status}}\t{{.Names}}'
b ps --filter name=demo-api-web --format '{{.Names}} is seen by the barque CLI too'
d rm -f demo-api-web
kill "$api_pid"; wait "$api_pid" 2>/dev/null || true; api_pid=

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
