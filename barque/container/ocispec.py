"""A container record (Docker's Config and HostConfig) → the OCI runtime config.json barque-runtime runs.

Built afresh at every start, so what `update` or a restart changes is honoured. Starts from the runtime's defaults
(barque.runtime.defaults: Docker's capabilities, seccomp profile, masked paths, devices) and applies the record's
settings the way dockerd does. Where barque differs from its runtime's standalone defaults, it follows Docker:
no_new_privs is off unless `--security-opt no-new-privileges` asks for it (setuid programs such as `su` and `ping`
work in containers, as users expect), and no RLIMIT_NOFILE is imposed unless `--ulimit` sets one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from barque.errors import InvalidArgument

__all__ = ["build_spec", "INIT_PATH", "init_binary"]

#: where --init's binary appears in the container (Docker's name for it)
INIT_PATH = "/sbin/docker-init"
_INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init")
CPU_PERIOD = 100_000


def init_binary() -> str:
    for path in _INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise InvalidArgument("--init needs a static init binary: install tini (Debian's tini package ships tini-static)")


def _capabilities(host: dict) -> list[str]:
    from barque.runtime import caps as capsmod
    from barque.runtime.defaults import DEFAULT_CAPABILITIES

    def norm(c: str) -> str:
        c = c.upper()
        return c if c == "ALL" or c.startswith("CAP_") else "CAP_" + c

    add = [norm(c) for c in host.get("CapAdd") or []]
    drop = [norm(c) for c in host.get("CapDrop") or []]
    known = set(capsmod.available_capabilities())
    for c in add + drop:
        if c != "ALL" and c not in known:
            raise InvalidArgument(f"unknown capability: \"{c}\"")
    base = list(DEFAULT_CAPABILITIES)
    if "ALL" in drop:
        base = []
    if "ALL" in add:
        base = sorted(known)
    out = [c for c in base if c not in drop] + [c for c in add if c != "ALL" and c not in base]
    return [c for c in out if c not in drop or c in add]


def _resources(host: dict) -> dict:
    res: dict = {}
    mem: dict = {}
    if host.get("Memory"):
        mem["limit"] = host["Memory"]
        swap = host.get("MemorySwap") or 0
        if swap == -1:
            mem["swap"] = -1
        elif swap:
            mem["swap"] = swap
        else:
            mem["swap"] = host["Memory"] * 2  # Docker: with -m alone, as much swap again
    if host.get("MemoryReservation"):
        mem["reservation"] = host["MemoryReservation"]
    if host.get("OomKillDisable"):
        mem["disableOOMKiller"] = True
    if mem:
        res["memory"] = mem
    cpu: dict = {}
    if host.get("CpuShares"):
        cpu["shares"] = host["CpuShares"]
    if host.get("NanoCpus"):
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = host["NanoCpus"] * CPU_PERIOD // 1_000_000_000
    if host.get("CpuQuota"):
        cpu["quota"] = host["CpuQuota"]
        cpu["period"] = host.get("CpuPeriod") or CPU_PERIOD
    if host.get("CpusetCpus"):
        cpu["cpus"] = host["CpusetCpus"]
    if host.get("CpusetMems"):
        cpu["mems"] = host["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    if host.get("PidsLimit") and host["PidsLimit"] > 0:
        res["pids"] = {"limit": host["PidsLimit"]}
    return res


def _seccomp(host: dict, capabilities: list[str]) -> dict | None:
    from barque.container.options import parse_security_opts
    from barque.runtime.defaults import default_seccomp_profile

    sec = parse_security_opts(host.get("SecurityOpt") or [])
    choice = sec.get("seccomp")
    if choice == "unconfined":
        return None
    if choice:
        from barque.container.seccomp_profile import load_profile

        return load_profile(choice, capabilities)
    return default_seccomp_profile(capabilities)


def _sort_mounts(mounts: list[dict]) -> list[dict]:
    """Parents before children, as Docker sorts them (by the number of path components)."""
    return sorted(mounts, key=lambda m: len([p for p in m["destination"].split("/") if p]))


def build_spec(record: dict, rootfs: Path, files: dict[str, Path], user_mounts: list[dict],
               *, userns: tuple[list, list] | None = None, idmap_rootfs: bool = True) -> dict:
    """The OCI config for this container. `files`: host paths of hostname, hosts, resolv.conf to bind in;
    `user_mounts`: the OCI mounts of its volumes, binds and tmpfs; `userns`: (uidMappings, gidMappings)."""
    from barque.container.options import parse_security_opts, process_env
    from barque.container.rootfs import make_dirs, resolve_user
    from barque.runtime import defaults

    config, host = record["Config"], record["HostConfig"]
    args = [record["Path"], *record.get("Args", [])]
    if host.get("Init"):
        args = [INIT_PATH, "--", *args]
    spec = defaults.base_spec(args, str(rootfs), terminal=bool(config.get("Tty")))
    process = spec["process"]
    # ids as the container sees them
    uid, gid, extra, home = resolve_user(rootfs, config.get("User") or "", host.get("GroupAdd") or ())
    process["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
    # Docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM for a TTY, the links' variables, then the container's
    # Config.Env over them (a later entry wins, a bare K unsets one of these); HOME from the user's passwd entry
    # when not given
    env = [defaults.DEFAULT_ENV_PATH, f"HOSTNAME={config.get('Hostname') or record['Id'][:12]}"]
    if config.get("Tty"):
        env.append("TERM=xterm")
    env += (record.get("_barque") or {}).get("link_env") or []
    env = process_env(env, list(config.get("Env") or []))
    if "HOME" not in {e.split("=", 1)[0] for e in env}:
        env.append(f"HOME={home}")
    process["env"] = env
    cwd = config.get("WorkingDir") or "/"
    if cwd != "/":
        make_dirs(rootfs, cwd, uid if config.get("User") else 0, gid if config.get("User") else 0)
    process["cwd"] = cwd
    process.pop("rlimits", None)
    if host.get("Ulimits"):
        from barque.container.options import ulimits_to_rlimits

        process["rlimits"] = ulimits_to_rlimits(host["Ulimits"])
    sec = parse_security_opts(host.get("SecurityOpt") or [])
    process["noNewPrivileges"] = bool(sec.get("no_new_privileges"))
    if host.get("OomScoreAdj"):
        process["oomScoreAdj"] = host["OomScoreAdj"]

    capabilities = _capabilities(host)
    process["capabilities"] = {"bounding": list(capabilities), "effective": list(capabilities),
                               "permitted": list(capabilities)}
    linux = spec["linux"]
    seccomp = _seccomp(host, capabilities)
    if seccomp is None:
        linux.pop("seccomp", None)
    else:
        linux["seccomp"] = seccomp
    spec["hostname"] = config.get("Hostname") or record["Id"][:12]
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    spec["root"]["readonly"] = bool(host.get("ReadonlyRootfs"))

    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "cgroup")]
    modes = {"pid": host.get("PidMode") or "", "ipc": host.get("IpcMode") or "", "uts": host.get("UTSMode") or "",
             "network": host.get("NetworkMode") or ""}
    namespaces = [ns for ns in namespaces if modes.get(ns["type"]) != "host"]
    if record.get("_barque", {}).get("netns_path"):  # made and plugged in by barque.network.sandbox
        for ns in namespaces:
            if ns["type"] == "network":
                ns["path"] = record["_barque"]["netns_path"]
    if userns is not None:
        namespaces.append({"type": "user"})
        linux["uidMappings"] = [{"containerID": m[0], "hostID": m[1], "size": m[2]} for m in userns[0]]
        linux["gidMappings"] = [{"containerID": m[0], "hostID": m[1], "size": m[2]} for m in userns[1]]
        if idmap_rootfs:  # the runtime idmaps the rootfs (vfs, btrfs); an overlay came idmapped already
            from barque.runtime import IDMAP_ANNOTATION

            spec.setdefault("annotations", {})[IDMAP_ANNOTATION] = "true"
    linux["namespaces"] = namespaces
    resources = _resources(host)
    linux["resources"] = {**linux.get("resources", {}), **resources}
    if host.get("Sysctls"):
        linux["sysctl"] = dict(host["Sysctls"])
    linux["cgroupsPath"] = f"/barque/{record['Id']}"

    mounts = list(spec["mounts"])
    if host.get("ShmSize"):
        for m in mounts:
            if m["destination"] == "/dev/shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + [f"size={host['ShmSize']}"]
    if modes["network"] == "host":  # as Docker: sysfs of the host's network namespace
        for m in mounts:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m["options"] if o != "ro"] + ["ro"]
    if modes["ipc"] == "host":
        mounts = [m for m in mounts if m["destination"] not in ("/dev/shm", "/dev/mqueue")]
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind"]})
    destinations = {m["destination"] for m in user_mounts}
    for dest, key in (("/etc/resolv.conf", "resolv.conf"), ("/etc/hostname", "hostname"), ("/etc/hosts", "hosts")):
        if key in files and dest not in destinations:
            mounts.append({"destination": dest, "type": "bind", "source": str(files[key]),
                           "options": ["rbind", "rprivate"] + (["ro"] if host.get("ReadonlyRootfs") else [])})
    if host.get("Init"):
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                       "options": ["bind", "ro", "nosuid", "nodev"]})
    mounts = [m for m in mounts if m["destination"] not in destinations] + list(user_mounts)
    spec["mounts"] = _sort_mounts(mounts)
    for m in user_mounts:  # mount points must exist: made inside the rootfs, never through its symlinks
        if not spec["root"]["readonly"]:
            make_dirs(rootfs, m["destination"])

    if host.get("Privileged"):
        spec = defaults.privileged(spec)
    annotations = spec.setdefault("annotations", {})
    annotations["org.barque.container.name"] = record["Name"].lstrip("/")
    if not annotations:
        spec.pop("annotations")
    return spec


def write_spec(bundle: Path, spec: dict) -> Path:
    path = bundle / "config.json"
    tmp = bundle / ".config.json.tmp"
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, path)
    return path
