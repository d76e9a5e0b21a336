"""A container's mounts: the `-v`, `--mount`, `--tmpfs` and `--volumes-from` flags, what they resolve to, and the
OCI mounts that realise them.

The flow follows Docker's daemon so that `inspect` and the error messages match:

1. the parsers turn one flag's text into a HostConfig.Mounts-like dict (`Type`, `Source`, `Target`, `ReadOnly`,
   `BindOptions`, `VolumeOptions`, `TmpfsOptions`), with Docker's validation and wording;
2. `resolve` turns the parsed flags, the image's VOLUMEs and the `--volumes-from` containers' mounts into Docker's
   inspect `Mounts` entries, creating the volumes named or implied (at container create, as Docker does);
3. `oci_mounts` turns those entries into runtime-spec mounts (at start), and `populate` copies the image's content
   into a new, empty volume first (Docker's copy-up).

Entries carry barque-private keys prefixed with `_` (what `oci_mounts` and `populate` need later); `inspect_mounts`
gives the Docker view without them. Docker keeps `--tmpfs` mounts out of inspect's Mounts (they live in
HostConfig.Tmpfs); those entries are marked `_hidden` and `inspect_mounts` leaves them out.

Quirks kept on purpose: `-v /dst` is an anonymous volume declared like an image VOLUME (Config.Volumes), so it
never clashes with an explicit mount of the same path; `-v /host:/dst` creates a missing host directory, while
`--mount type=bind` refuses a missing source; mounts inherited through `--volumes-from` yield to the container's
own mounts at the same destination.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
import stat
import subprocess
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from barque.errors import FailedPrecondition, InvalidArgument, NotFound

__all__ = [
    "parse_volume_flag",
    "parse_mount_flag",
    "parse_tmpfs_flag",
    "parse_volumes_from",
    "validate_mount",
    "inherit",
    "resolve",
    "inspect_mounts",
    "oci_mounts",
    "rootfs_propagation",
    "verify_sources",
    "populate",
    "merge_tmpfs_options",
]

_RW_MODES = {"rw", "ro"}
_LABEL_MODES = {"z", "Z"}
_PROPAGATION = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
_COPY_MODES = {"nocopy"}
_CONSISTENCY = {"consistent", "cached", "delegated"}
DEFAULT_PROPAGATION = "rprivate"
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")


# ---- paths and modes --------------------------------------------------------------------------------------------

def _clean(path: str) -> str:
    """Go's path.Clean for absolute paths ('//a/./b/' → '/a/b')."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _target_error(target: str) -> str | None:
    if target == "/" or (target.startswith("/") and _clean(target) == "/"):
        return "invalid specification: destination can't be '/'"
    if not target.startswith("/"):
        return f"invalid mount path: '{target}' mount path must be absolute"
    return None


def _valid_mode(mode: str) -> bool:
    """Docker's ValidMountMode: comma-separated, at most one of each kind."""
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "propagation": 0, "copy": 0, "consistency": 0}
    for o in mode.split(","):
        if o in _RW_MODES:
            counts["rw"] += 1
        elif o in _LABEL_MODES:
            counts["label"] += 1
        elif o in _PROPAGATION:
            counts["propagation"] += 1
        elif o in _COPY_MODES:
            counts["copy"] += 1
        elif o in _CONSISTENCY:
            counts["consistency"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _mode_parts(mode: str) -> list[str]:
    return mode.split(",") if mode else []


def _absolute_source(source: str) -> str:
    """Docker's CLI makes `.` and `./x` sources absolute (relative to the current directory)."""
    if source == "." or source.startswith("./"):
        return os.path.abspath(source)
    return source


# ---- -v / --volume ------------------------------------------------------------------------------------------------

def parse_volume_flag(text: str) -> dict:
    """`-v [SOURCE:]TARGET[:MODE]`: a bind when SOURCE is absolute, else a named volume; `-v /dst` an anonymous one.

    MODE is a comma list of rw|ro, z|Z, a propagation (private, rprivate, shared, rshared, slave, rslave) and
    nocopy, each at most once.
    """
    def invalid_spec(reason: str | None = None) -> InvalidArgument:
        message = f"invalid volume specification: '{text}'"
        return InvalidArgument(f"{message}: {reason}" if reason else message)

    parts = text.split(":")
    if parts[0] == "":
        raise invalid_spec()
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):  # '/foo:rw' is a destination with a mode, which volumes cannot have
            raise invalid_spec()
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise invalid_spec()
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")

    options = _mode_parts(mode)
    source = _absolute_source(source)
    kind = "bind" if source.startswith("/") else "volume"
    propagation = next((o for o in options if o in _PROPAGATION), "")
    nocopy = "nocopy" in options
    if target == "":
        raise invalid_spec(f'invalid mount config for type "{kind}": field Target must not be empty')
    problem = _target_error(target)
    if problem:
        raise invalid_spec(f'invalid mount config for type "{kind}": {problem}')
    spec: dict = {"Type": kind, "Source": source, "Target": _clean(target), "ReadOnly": "ro" in options,
                  "_mode": mode}
    if kind == "bind":
        if nocopy:
            raise invalid_spec('invalid mount config for type "bind": field VolumeOptions must not be specified')
        spec["Source"] = _clean(source)
        spec["BindOptions"] = {"Propagation": propagation}
        spec["_create_source"] = True
    else:
        if propagation:
            raise invalid_spec('invalid mount config for type "volume": field BindOptions must not be specified')
        spec["VolumeOptions"] = {"NoCopy": nocopy}
        if source == "":
            spec["_config_volume"] = True
    return spec


# ---- --mount ----------------------------------------------------------------------------------------------------

_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")


def _ram_in_bytes(text: str) -> int:
    """go-units' RAMInBytes: binary multiples, '64m' == 64 MiB."""
    m = _RAM.match(text)
    if not m:
        raise ValueError(text)
    factor = 1024 ** (" kmgtp".index(m.group(2).lower()) if m.group(2) else 0)
    return int(float(m.group(1)) * factor)


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def parse_mount_flag(text: str) -> dict:
    """`--mount type=bind|volume|tmpfs,source=…,target=…,…` as the HostConfig.Mounts entry Docker's CLI sends (no
    private keys: `resolve` completes it), checked as Docker's CLI and then its daemon check it.

    CLI-side problems read `invalid argument "<text>" for "--mount" flag: <reason>` (Docker exits 125 on them);
    daemon-side ones `invalid mount config for type "<type>": <reason>`, e.g. a bind source that does not exist.
    """
    def flag_error(reason: str) -> InvalidArgument:
        return InvalidArgument(f'invalid argument "{text}" for "--mount" flag: {reason}')

    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as e:
        raise flag_error(str(e)) from None
    spec: dict = {"Type": "volume", "Source": "", "Target": "", "ReadOnly": False}
    bind: dict | None = None
    volume: dict | None = None
    tmpfs: dict | None = None

    def bind_options() -> dict:
        nonlocal bind
        bind = bind if bind is not None else {}
        return bind

    def volume_options() -> dict:
        nonlocal volume
        volume = volume if volume is not None else {}
        return volume

    def tmpfs_options() -> dict:
        nonlocal tmpfs
        tmpfs = tmpfs if tmpfs is not None else {}
        return tmpfs

    def key_value(target: dict, value: str) -> None:
        k, _, v = value.partition("=")
        if k:
            target[k] = v

    for field in fields:
        key, sep, value = field.partition("=")
        key = key.lower()
        if not sep:
            if key in ("readonly", "ro"):
                spec["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume_options()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind_options()["NonRecursive"] = True
            else:
                raise flag_error(f"invalid field '{field}' must be a key=value pair")
            continue
        try:
            if key == "type":
                spec["Type"] = value.lower()
            elif key in ("source", "src"):
                spec["Source"] = _absolute_source(value)
            elif key in ("target", "dst", "destination"):
                spec["Target"] = value
            elif key in ("readonly", "ro"):
                spec["ReadOnly"] = _parse_bool(value)
            elif key == "consistency":
                pass  # meaningful on Docker Desktop only; Linux ignores it
            elif key == "bind-propagation":
                bind_options()["Propagation"] = value.lower()
            elif key == "bind-nonrecursive":
                bind_options()["NonRecursive"] = _parse_bool(value)
            elif key == "volume-nocopy":
                volume_options()["NoCopy"] = _parse_bool(value)
            elif key == "volume-label":
                key_value(volume_options().setdefault("Labels", {}), value)
            elif key == "volume-driver":
                volume_options().setdefault("DriverConfig", {})["Name"] = value
            elif key == "volume-opt":
                key_value(volume_options().setdefault("DriverConfig", {}).setdefault("Options", {}), value)
            elif key == "tmpfs-size":
                tmpfs_options()["SizeBytes"] = _ram_in_bytes(value)
            elif key == "tmpfs-mode":
                tmpfs_options()["Mode"] = int(value, 8)
                if not 0 <= tmpfs_options()["Mode"] < 1 << 32:
                    raise ValueError(value)
            else:
                raise flag_error(f"unexpected key '{key}' in '{field}'")
        except ValueError:
            what = "volume-nocopy" if key == "volume-nocopy" else key
            raise flag_error(f"invalid value for {what}: {value}") from None

    kind = spec["Type"]
    if kind == "":
        raise flag_error("type is required")
    if spec["Target"] == "":
        raise flag_error("target is required")
    if volume is not None and kind != "volume":
        raise flag_error(f"cannot mix 'volume-*' options with mount type '{kind}'")
    if bind is not None and kind != "bind":
        raise flag_error(f"cannot mix 'bind-*' options with mount type '{kind}'")
    if tmpfs is not None and kind != "tmpfs":
        raise flag_error(f"cannot mix 'tmpfs-*' options with mount type '{kind}'")

    if bind is not None:
        spec["BindOptions"] = bind
    if volume is not None:
        spec["VolumeOptions"] = volume
    if tmpfs is not None:
        spec["TmpfsOptions"] = tmpfs
    validate_mount(spec)  # the daemon's checks, now: a bad mount fails before anything is made
    return _omit_empty(spec)


def _omit_empty(value):
    """What Docker's CLI sends (Go's `omitempty`): unset fields left out, so inspect's HostConfig.Mounts matches."""
    if isinstance(value, dict):
        kept = {k: _omit_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if k in ("Type", "Target") or v not in (None, "", False, 0, {})}
    return value


def validate_mount(mount: Mapping) -> dict:
    """Docker's daemon-side check of one HostConfig.Mounts entry (from `--mount` or the Engine API), normalised:
    Target cleaned, the options block of its type filled in, and a tmpfs's mount options computed (`_options`).

    A bind source must exist: unlike `-v`, `--mount` never creates it.
    """
    spec = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in mount.items()}
    kind = spec.get("Type") or ""
    spec.setdefault("Source", "")
    spec["Source"] = spec["Source"] or ""
    spec["ReadOnly"] = bool(spec.get("ReadOnly"))
    target = spec.get("Target") or ""

    def config_error(reason: str) -> InvalidArgument:
        return InvalidArgument(f'invalid mount config for type "{kind}": {reason}')

    def no_extra(*fields: str) -> None:
        for f in fields:
            if spec.get(f) is not None:
                raise config_error(f"field {f} must not be specified")

    if target == "":
        raise config_error("field Target must not be empty")
    problem = _target_error(target)
    if problem:
        raise config_error(problem)
    spec["Target"] = _clean(target)
    if kind == "bind":
        if spec["Source"] == "":
            raise config_error("field Source must not be empty")
        options = spec.get("BindOptions") or {}
        options.setdefault("Propagation", "")
        if options["Propagation"] and options["Propagation"] not in _PROPAGATION:
            raise config_error(f"invalid propagation mode: {options['Propagation']}")
        no_extra("VolumeOptions", "TmpfsOptions")
        if not spec["Source"].startswith("/"):
            raise config_error(f"invalid mount path: '{spec['Source']}' mount path must be absolute")
        spec["Source"] = _clean(spec["Source"])
        if not os.path.lexists(spec["Source"]):
            raise config_error(f"bind source path does not exist: {spec['Source']}")
        spec["BindOptions"] = options
    elif kind == "volume":
        no_extra("BindOptions", "TmpfsOptions")
        if spec["ReadOnly"] and spec["Source"] == "":
            raise config_error("must not set ReadOnly mode when using anonymous volumes")
        options = spec.get("VolumeOptions") or {}
        options["NoCopy"] = bool(options.get("NoCopy"))
        spec["VolumeOptions"] = options
    elif kind == "tmpfs":
        no_extra("BindOptions", "VolumeOptions")
        if spec["Source"]:
            raise config_error("field Source must not be specified")
        tmpfs = spec.get("TmpfsOptions") or {}
        data = _tmpfs_data(tmpfs, spec["ReadOnly"])
        try:
            spec["_options"] = merge_tmpfs_options(list(TMPFS_DEFAULTS) + [DEFAULT_PROPAGATION]
                                                   + _mode_parts(data))
        except ValueError as e:
            raise config_error(str(e)) from None
        spec["TmpfsOptions"] = tmpfs
    else:
        raise config_error("mount type unknown")
    return spec


def _tmpfs_data(options: Mapping[str, int], read_only: bool) -> str:
    """Docker's ConvertTmpfsOptions: ro, mode=<octal>, size with the largest unit dividing it evenly."""
    out = ["ro"] if read_only else []
    if options.get("Mode"):
        out.append(f"mode={options['Mode']:o}")
    size = options.get("SizeBytes") or 0
    if size:
        suffix = ""
        for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, unit
                break
        out.append(f"size={size}{suffix}")
    return ",".join(out)


# ---- --tmpfs ----------------------------------------------------------------------------------------------------

# mount flags, grouped by the bit they set or clear: a later option overrides an earlier one of its group
_FLAG_GROUPS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
    "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "bind", "rbind": "propagation",
    "unbindable": "propagation", "runbindable": "propagation", "private": "propagation",
    "rprivate": "propagation", "shared": "propagation", "rshared": "propagation", "slave": "propagation",
    "rslave": "propagation", "relatime": "relatime", "norelatime": "relatime", "strictatime": "strictatime",
    "nostrictatime": "strictatime",
}


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """Docker's MergeTmpfsOptions: the last of each flag group and of each `key=value` wins, order kept."""
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    merged: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        group = _FLAG_GROUPS.get(option)
        if group is not None:
            if group not in seen_flags:
                merged.insert(0, option)
                seen_flags.add(group)
            continue
        key, sep, _ = option.partition("=")
        if not sep or "/" in key:
            raise ValueError(f'invalid tmpfs option "{key}"')
        if key not in seen_data:
            merged.insert(0, option)
            seen_data.add(key)
    return merged


def parse_tmpfs_flag(text: str) -> dict:
    """`--tmpfs /path[:options]`: a tmpfs with Docker's defaults noexec,nosuid,nodev, overridable by the options."""
    target, _, data = text.partition(":")
    problem = _target_error(target)
    if problem:
        raise InvalidArgument(problem)
    try:
        options = merge_tmpfs_options(list(TMPFS_DEFAULTS) + [DEFAULT_PROPAGATION] + _mode_parts(data))
    except ValueError as e:
        raise InvalidArgument(str(e)) from None
    return {"Type": "tmpfs", "Source": "", "Target": _clean(target), "ReadOnly": "ro" in options,
            "_options": options, "_hidden": True}


# ---- --volumes-from -------------------------------------------------------------------------------------------

def parse_volumes_from(text: str) -> tuple[str, str]:
    """`--volumes-from CONTAINER[:ro|rw]` → (container reference, "ro" or "rw")."""
    if text == "":
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ref, _, mode = text.partition(":")
    if mode == "":
        return ref, "rw"
    options = _mode_parts(mode)
    # propagation is inherited from the source container, and copy modes make no sense for existing mounts
    if not _valid_mode(mode) or any(o in _PROPAGATION or o in _COPY_MODES for o in options):
        raise InvalidArgument(f"invalid mode: {mode}")
    return ref, "ro" if "ro" in options else "rw"


def inherit(mounts: Iterable[Mapping], mode: str) -> list[dict]:
    """Another container's Mounts as `--volumes-from` gives them: read-only when asked, never copied up again.

    Docker does not carry Mode over, nor mounts made with `--tmpfs` (they are not mount points).
    """
    out = []
    for m in mounts:
        if m.get("_hidden"):
            continue
        entry = dict(m)
        entry["RW"] = bool(m.get("RW", True)) and mode != "ro"
        entry["Mode"] = ""
        entry["_nocopy"] = True
        if entry.get("Type") == "tmpfs" and not entry["RW"]:
            entry["_options"] = merge_tmpfs_options(list(entry.get("_options") or TMPFS_DEFAULTS) + ["ro"])
        out.append(entry)
    return out


# ---- resolution -------------------------------------------------------------------------------------------------

def _volume_entry(volume: Mapping, destination: str, mode: str, rw: bool, nocopy: bool) -> dict:
    return {
        "Type": "volume",
        "Name": volume["Name"],
        "Source": volume["Mountpoint"],
        "Destination": destination,
        "Driver": volume["Driver"],
        "Mode": mode,
        "RW": rw,
        "Propagation": "",
        # copy-up into `_data` only helps a volume whose `_data` is what gets mounted
        "_nocopy": nocopy or bool((volume.get("Options") or {}).get("type")),
        "_volume_options": volume.get("Options"),
    }


def _resolve_volume(volumes, spec: Mapping, conn) -> dict:
    options = spec.get("VolumeOptions") or {}
    driver_config = options.get("DriverConfig") or {}
    driver = driver_config.get("Name") or "local"
    name = spec.get("Source") or None
    volume = None
    if name is not None:
        try:
            volume = volumes.get(name, conn=conn)
        except NotFound:
            pass
    if volume is None:
        volume = volumes.create(name, driver=driver, labels=options.get("Labels"),
                                options=driver_config.get("Options"), conn=conn)
    if spec.get("_config_volume"):
        mode = ""
    else:
        mode = spec.get("_mode") or "z"  # Docker marks local volumes "z" when no mode was given
    return _volume_entry(volume, spec["Target"], mode, not spec.get("ReadOnly"), bool(options.get("NoCopy")))


def _resolve_bind(spec: Mapping) -> dict:
    source = spec["Source"]
    if spec.get("_create_source") and not os.path.lexists(source):
        os.makedirs(source, mode=0o755, exist_ok=True)  # `-v` creates a missing host directory, as Docker does
    options = spec.get("BindOptions") or {}
    entry = {
        "Type": "bind",
        "Source": source,
        "Destination": spec["Target"],
        "Mode": spec.get("_mode", ""),
        "RW": not spec.get("ReadOnly"),
        "Propagation": options.get("Propagation") or DEFAULT_PROPAGATION,
    }
    if options.get("NonRecursive"):
        entry["_nonrecursive"] = True
    return entry


def _resolve_tmpfs(spec: Mapping) -> dict:
    entry = {"Type": "tmpfs", "Source": "", "Destination": spec["Target"], "Mode": "",
             "RW": not spec.get("ReadOnly"), "Propagation": "", "_options": list(spec["_options"])}
    if spec.get("_hidden"):
        entry["_hidden"] = True
    return entry


def resolve(volumes, requested: Sequence[Mapping], image_volumes: Iterable[str], inherited: Sequence[Mapping],
            conn=None) -> list[dict]:
    """Every mount a new container gets, as Docker's inspect Mounts entries (plus `_` private keys).

    `volumes` is a VolumeStore; `requested` the parsed `-v`/`--mount`/`--tmpfs` flags, or HostConfig.Mounts
    entries from the Engine API (checked here as `validate_mount` checks them); `image_volumes` the image config's
    Volumes; `inherited` the Mounts of the `--volumes-from` containers with RW already false for `:ro` (as
    `inherit` gives them). Named volumes are created when missing, anonymous ones for `-v /dst` and each image
    VOLUME no other mount covers. Pass `conn` to do it inside the transaction that stores the container record,
    so no volume can be pruned in between.
    """
    by_destination: dict[str, dict] = {}
    for entry in inherit(inherited, "rw"):
        entry["Destination"] = _clean(entry["Destination"])
        if entry.get("Type") == "volume":
            volume = volumes.get(entry["Name"], conn=conn)  # it must still exist
            entry["Source"] = volume["Mountpoint"]
            entry["_volume_options"] = volume.get("Options")
        by_destination[entry["Destination"]] = entry

    explicit: set[str] = set()
    declared: list[str] = []  # `-v /dst`: declared volumes, like the image's
    for spec in requested:
        if "_mode" not in spec and not spec.get("_hidden"):  # not from -v or --tmpfs: a HostConfig.Mounts entry
            spec = validate_mount(spec)
        target = spec["Target"]
        if spec.get("_config_volume"):
            declared.append(target)
            continue
        if target in explicit:
            raise InvalidArgument(f"Duplicate mount point: {target}")
        explicit.add(target)
        kind = spec["Type"]
        if kind == "volume":
            by_destination[target] = _resolve_volume(volumes, spec, conn)
        elif kind == "bind":
            by_destination[target] = _resolve_bind(spec)
        elif kind == "tmpfs":
            by_destination[target] = _resolve_tmpfs(spec)
        else:
            raise InvalidArgument(f'invalid mount config for type "{kind}": mount type unknown')

    for path in declared + list(image_volumes):
        destination = _clean(path if path.startswith("/") else "/" + path)
        if destination in by_destination:
            continue
        volume = volumes.create(None, conn=conn)
        by_destination[destination] = _volume_entry(volume, destination, "", True, False)
    return list(by_destination.values())


def inspect_mounts(resolved: Iterable[Mapping]) -> list[dict]:
    """Docker's inspect `Mounts`: private keys dropped, `--tmpfs` mounts left out."""
    return [{k: v for k, v in m.items() if not k.startswith("_")} for m in resolved if not m.get("_hidden")]


# ---- OCI --------------------------------------------------------------------------------------------------------

def _depth(destination: str) -> int:
    return len([p for p in destination.split("/") if p])


def oci_mounts(resolved: Iterable[Mapping]) -> list[dict]:
    """Runtime-spec mounts for resolved entries, parents before children (Docker sorts by path depth)."""
    from barque.container.volumes import driver_mount

    out = []
    for m in sorted(resolved, key=lambda e: _depth(e["Destination"])):
        destination, read_only = m["Destination"], not m.get("RW", True)
        if m["Type"] == "tmpfs":
            options = list(m.get("_options") or TMPFS_DEFAULTS)
            if read_only and "ro" not in options:
                options = merge_tmpfs_options(options + ["ro"])
            out.append({"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            continue
        if m["Type"] == "volume":
            _, extra = driver_mount(m.get("_volume_options"), m["Source"])
            if extra is not None:
                options = list(extra["options"])
                if extra["type"] == "bind":
                    if not any(o in _PROPAGATION for o in options):
                        options.append(DEFAULT_PROPAGATION)
                if read_only and "ro" not in options:
                    options.append("ro")
                out.append({"destination": destination, "type": extra["type"], "source": extra["source"],
                            "options": options})
                continue
        options = ["bind" if m.get("_nonrecursive") else "rbind", m.get("Propagation") or DEFAULT_PROPAGATION]
        if read_only:
            options.append("ro")
        out.append({"destination": destination, "type": "bind", "source": m["Source"], "options": options})
    return out


def rootfs_propagation(resolved: Iterable[Mapping]) -> str | None:
    """The rootfs propagation a container needs for its binds to propagate: shared beats slave; None: the default."""
    modes = {m.get("Propagation") for m in resolved if m.get("Type") == "bind"}
    if modes & {"shared", "rshared"}:
        return "shared"
    if modes & {"slave", "rslave"}:
        return "rslave"
    return None


def verify_sources(resolved: Iterable[Mapping]) -> None:
    """At start: every bind source still exists (Docker's wording), and so does each bind volume's device."""
    from barque.container.volumes import driver_mount

    for m in resolved:
        if m["Type"] == "bind" and not os.path.lexists(m["Source"]):
            raise FailedPrecondition(f'invalid mount config for type "bind": bind source path does not exist: '
                                     f'{m["Source"]}')
        if m["Type"] == "volume":
            source, extra = driver_mount(m.get("_volume_options"), m["Source"])
            if extra is not None and extra["type"] == "bind" and not os.path.exists(source):
                raise FailedPrecondition(
                    f"error while mounting volume '{m['Source']}': failed to mount local volume: mount "
                    f"{source}:{m['Source']}, flags: 0x1000: no such file or directory")


# ---- copy-up ----------------------------------------------------------------------------------------------------

def populate(volume_dir: Path, rootfs: Path, target: str, shift: tuple[list, list] | None = None) -> bool:
    """Docker's copy-up: an empty volume gets what the image has at `target` — content, ownership and mode of the
    directory itself. Returns whether it copied. `target` is resolved inside `rootfs` as a chroot would (a symlink
    in the image cannot lead out), and the copy reads through the resolved directory's descriptor.

    `shift` (uid and gid mappings, [inside, outside, size] triples) moves the copied owners into a user
    namespace's range, for a remapped container whose rootfs shows its own ids while its volumes, plain bind mounts,
    must hold host ids."""
    from barque.layers.safepath import RootDir, clean_parts

    volume_dir = Path(volume_dir)
    with os.scandir(volume_dir) as entries:
        if any(True for _ in entries):
            return False
    with RootDir(Path(rootfs)) as root:
        found = root.resolve_dir(clean_parts(target, what="volume path"))
        if found is None:
            return False  # missing in the image, or not a directory: nothing to copy
        fd = found[0]
        source = f"/proc/self/fd/{fd}/."
        result = subprocess.run(["cp", "-a", "--", source, str(volume_dir)], pass_fds=(fd,),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise FailedPrecondition(f"failed to copy image content of {target} into volume {volume_dir}: "
                                     f"{result.stderr.strip()}")
        st = os.fstat(fd)
        os.chown(volume_dir, st.st_uid, st.st_gid)
        os.chmod(volume_dir, st.st_mode & 0o7777)
    if shift is not None:
        shift_owners(volume_dir, *shift)
    return True


def shift_owners(top: Path, uid_map: list, gid_map: list) -> None:
    """Every file under `top` (itself included) owned by its ids mapped through the mappings (the overflow id for
    one they do not cover, as the kernel shows it); modes are set again after the chown, which clears set-id
    bits."""
    from barque.container.userns import OVERFLOW_ID, to_host

    def shifted(mapping: list, value: int) -> int:
        host = to_host(mapping, value)
        return OVERFLOW_ID if host is None else host

    def one(path: str) -> None:
        st = os.lstat(path)
        os.lchown(path, shifted(uid_map, st.st_uid), shifted(gid_map, st.st_gid))
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    one(str(top))
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            one(os.path.join(dirpath, name))
