"""Type checks of request bodies where a wrong type would otherwise surface deep in the engine: Docker decodes
bodies into typed structs and answers 400 naming the field; so does barque."""

from __future__ import annotations

from barque.api.errors import BadParameter

__all__ = ["check_create_body", "check_fields", "go_type", "string_map"]

_STR, _INT, _BOOL, _LIST, _DICT = "string", "integer", "boolean", "array", "object"

CONFIG = {
    "Hostname": _STR, "Domainname": _STR, "User": _STR, "AttachStdin": _BOOL, "AttachStdout": _BOOL,
    "AttachStderr": _BOOL, "ExposedPorts": _DICT, "Tty": _BOOL, "OpenStdin": _BOOL, "StdinOnce": _BOOL,
    "Env": _LIST, "Cmd": (_LIST, _STR), "Healthcheck": _DICT, "ArgsEscaped": _BOOL, "Image": _STR,
    "Volumes": _DICT, "WorkingDir": _STR, "Entrypoint": (_LIST, _STR), "NetworkDisabled": _BOOL,
    "MacAddress": _STR, "OnBuild": _LIST, "Labels": _DICT, "StopSignal": _STR, "StopTimeout": _INT, "Shell": _LIST,
    "HostConfig": _DICT, "NetworkingConfig": _DICT,
}

HOST_CONFIG = {
    "Binds": _LIST, "ContainerIDFile": _STR, "LogConfig": _DICT, "NetworkMode": _STR, "PortBindings": _DICT,
    "RestartPolicy": _DICT, "AutoRemove": _BOOL, "VolumeDriver": _STR, "VolumesFrom": _LIST, "Mounts": _LIST,
    "CapAdd": _LIST, "CapDrop": _LIST, "CgroupnsMode": _STR, "Dns": _LIST, "DnsOptions": _LIST, "DnsSearch": _LIST,
    "ExtraHosts": _LIST, "GroupAdd": _LIST, "IpcMode": _STR, "Cgroup": _STR, "Links": _LIST, "OomScoreAdj": _INT,
    "PidMode": _STR, "Privileged": _BOOL, "PublishAllPorts": _BOOL, "ReadonlyRootfs": _BOOL, "SecurityOpt": _LIST,
    "StorageOpt": _DICT, "Tmpfs": _DICT, "UTSMode": _STR, "UsernsMode": _STR, "ShmSize": _INT, "Sysctls": _DICT,
    "Runtime": _STR, "Isolation": _STR, "CpuShares": _INT, "Memory": _INT, "NanoCpus": _INT,
    "CgroupParent": _STR, "BlkioWeight": _INT, "CpuPeriod": _INT, "CpuQuota": _INT, "CpuRealtimePeriod": _INT,
    "CpuRealtimeRuntime": _INT, "CpusetCpus": _STR, "CpusetMems": _STR, "Devices": _LIST,
    "DeviceCgroupRules": _LIST, "KernelMemory": _INT, "MemoryReservation": _INT, "MemorySwap": _INT,
    "MemorySwappiness": _INT, "OomKillDisable": _BOOL, "Init": _BOOL, "PidsLimit": _INT, "Ulimits": _LIST,
    "MaskedPaths": _LIST, "ReadonlyPaths": _LIST, "ConsoleSize": _LIST,
}

_PY = {_STR: str, _INT: int, _BOOL: bool, _LIST: list, _DICT: dict}


def _is(value, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float)
                                                                         and value.is_integer())
    return isinstance(value, _PY[kind])


def _check(obj: dict, table: dict, where: str) -> None:
    for key, kinds in table.items():
        value = obj.get(key)
        if value is None:
            continue
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if not any(_is(value, k) for k in kinds):
            got = type(value).__name__.replace("str", "string").replace("dict", "object").replace("list", "array")
            raise BadParameter(f"json: cannot unmarshal {got} into Go struct field {where}.{key} of type "
                               f"{' or '.join(kinds)}")


def check_create_body(body: dict) -> None:
    _check(body, CONFIG, "Config")
    host = body.get("HostConfig")
    if isinstance(host, dict):
        _check(host, HOST_CONFIG, "HostConfig")
    for key in ("Env", "Cmd", "Entrypoint"):
        value = body.get(key)
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise BadParameter(f"json: cannot unmarshal a non-string into Go struct field Config.{key} of type "
                               "[]string")
    if isinstance(body.get("Cmd"), str):
        body["Cmd"] = [body["Cmd"]]
    if isinstance(body.get("Entrypoint"), str):
        body["Entrypoint"] = [body["Entrypoint"]]


def go_type(value) -> str:
    """How Go's encoding/json names a JSON value's type in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def check_fields(obj: dict, table: dict, where: str) -> None:
    """Each known field of `obj` has the JSON type `table` gives it, or 400 with Go's words."""
    for key, kind in table.items():
        value = obj.get(key)
        if value is not None and not _is(value, kind):
            go = {_STR: "string", _BOOL: "bool", _LIST: "[]string" if key in ("Aliases", "Links") else "array",
                  _DICT: "object"}.get(kind, kind)
            raise BadParameter(f"json: cannot unmarshal {go_type(value)} into Go struct field {where}.{key} of type "
                               f"{go}")


def string_map(value: dict | None, where: str) -> dict[str, str] | None:
    """A map[string]string field (labels, options; `check_fields` has made it an object): 400 with Go's words for a
    value that is not a string."""
    if value is None:
        return None
    for v in value.values():
        if not isinstance(v, str):
            raise BadParameter(f"json: cannot unmarshal {go_type(v)} into Go struct field {where} of type string")
    return dict(value)
