"""Type checks of request bodies where a wrong type would otherwise surface deep in the engine: Docker decodes
bodies into typed structs and answers 400 naming the field; so does barque."""

from __future__ import annotations

from barque.api.errors import BadParameter

__all__ = ["check_create_body", "check_config", "check_fields", "go_type", "string_map"]

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
            raise BadParameter(f"json: cannot unmarshal {go_type(value)} into Go struct field {where}.{key} of type "
                               f"{' or '.join(kinds)}")


#: the []string fields, the []struct fields (with their Go types) and the map[string]string fields of each struct
STRING_LISTS = {
    "Config": ("Env", "Cmd", "Entrypoint", "OnBuild", "Shell"),
    "HostConfig": ("Binds", "CapAdd", "CapDrop", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "Links",
                   "SecurityOpt", "VolumesFrom", "DeviceCgroupRules", "MaskedPaths", "ReadonlyPaths"),
}
MOUNT = {"Type": _STR, "Source": _STR, "Target": _STR, "ReadOnly": _BOOL, "Consistency": _STR, "BindOptions": _DICT,
         "VolumeOptions": _DICT, "TmpfsOptions": _DICT}
MOUNT_OPTIONS = {"BindOptions": {"Propagation": _STR, "NonRecursive": _BOOL, "CreateMountpoint": _BOOL},
                 "VolumeOptions": {"NoCopy": _BOOL, "Labels": _DICT, "DriverConfig": _DICT},
                 "TmpfsOptions": {"SizeBytes": _INT, "Mode": _INT}}
OBJECT_LISTS = {"Mounts": ("mount.Mount", MOUNT),
                "Devices": ("container.DeviceMapping", {"PathOnHost": _STR, "PathInContainer": _STR,
                                                        "CgroupPermissions": _STR}),
                "Ulimits": ("units.Ulimit", {"Name": _STR, "Soft": _INT, "Hard": _INT})}
STRING_MAPS = {"Config": ("Labels",), "HostConfig": ("Sysctls", "StorageOpt", "Tmpfs")}
HEALTHCHECK = {"Test": _LIST, "Interval": _INT, "Timeout": _INT, "StartPeriod": _INT, "StartInterval": _INT,
               "Retries": _INT}
RESTART_POLICY = {"Name": _STR, "MaximumRetryCount": _INT}
LOG_CONFIG = {"Type": _STR, "Config": _DICT}
PORT_BINDING = {"HostIp": _STR, "HostPort": _STR}


def _strings_in(obj: dict, keys, where: str) -> None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise BadParameter(f"json: cannot unmarshal a non-string into Go struct field {where}.{key} of type "
                               "[]string")


def _port(spec: str, shown: str | None = None) -> None:
    """dockerd's check of a port key (`80`, `80/tcp`, `8000-8010/udp`) or host port: 400 when it is none."""
    number = spec.partition("/")[0]
    low, dash, high = number.partition("-")
    if not all(p.isdigit() and 0 <= int(p) <= 65535 for p in ((low, high) if dash else (low,))):
        raise BadParameter(f'invalid port specification: "{shown if shown is not None else number}"')


def check_config(body: dict) -> None:
    """A container's Config (a create's body, a commit's): the types Docker's struct has, Cmd and Entrypoint as lists
    (Docker's StrSlice takes a string too), the exposed ports' keys."""
    _check(body, CONFIG, "Config")
    _strings_in(body, STRING_LISTS["Config"], "Config")
    for key in STRING_MAPS["Config"]:
        string_map(body.get(key), f"Config.{key}")
    health = body.get("Healthcheck")
    if isinstance(health, dict):
        _check(health, HEALTHCHECK, "HealthConfig")
        _strings_in(health, ("Test",), "HealthConfig")
    for key in body.get("ExposedPorts") or {}:
        _port(key)
    if isinstance(body.get("Cmd"), str):
        body["Cmd"] = [body["Cmd"]]
    if isinstance(body.get("Entrypoint"), str):
        body["Entrypoint"] = [body["Entrypoint"]]


def check_host_config(host: dict) -> None:
    _check(host, HOST_CONFIG, "HostConfig")
    _strings_in(host, STRING_LISTS["HostConfig"], "HostConfig")
    for key, (go, table) in OBJECT_LISTS.items():
        for item in host.get(key) or []:
            if not isinstance(item, dict):
                raise BadParameter(f"json: cannot unmarshal {go_type(item)} into Go struct field HostConfig.{key} of "
                                   f"type {go}")
            _check(item, table, go.partition(".")[2])
    for mount in host.get("Mounts") or []:
        for key, table in MOUNT_OPTIONS.items():
            if isinstance(mount.get(key), dict):
                _check(mount[key], table, key)
        volume = mount.get("VolumeOptions") or {}
        string_map(volume.get("Labels"), "VolumeOptions.Labels")
        if isinstance(volume.get("DriverConfig"), dict):
            _check(volume["DriverConfig"], {"Name": _STR, "Options": _DICT}, "Driver")
            string_map(volume["DriverConfig"].get("Options"), "Driver.Options")
    for key in STRING_MAPS["HostConfig"]:
        string_map(host.get(key), f"HostConfig.{key}")
    for key, table, where in (("RestartPolicy", RESTART_POLICY, "RestartPolicy"),
                              ("LogConfig", LOG_CONFIG, "LogConfig")):
        if isinstance(host.get(key), dict):
            _check(host[key], table, where)
    string_map((host.get("LogConfig") or {}).get("Config"), "LogConfig.Config")
    for key, bindings in (host.get("PortBindings") or {}).items():
        _port(key)
        if bindings is None:
            continue
        if not isinstance(bindings, list) or not all(isinstance(b, dict) for b in bindings):
            raise BadParameter(f"json: cannot unmarshal {go_type(bindings)} into Go struct field "
                               "HostConfig.PortBindings of type []nat.PortBinding")
        for b in bindings:
            _check(b, PORT_BINDING, "PortBinding")
            if b.get("HostPort"):
                _port(b["HostPort"], b["HostPort"])


def check_create_body(body: dict) -> None:
    check_config(body)
    host = body.get("HostConfig")
    if isinstance(host, dict):
        check_host_config(host)
    networking = body.get("NetworkingConfig")
    if isinstance(networking, dict):
        _check(networking, {"EndpointsConfig": _DICT}, "NetworkingConfig")
        for value in (networking.get("EndpointsConfig") or {}).values():
            if value is not None and not isinstance(value, dict):
                raise BadParameter(f"json: cannot unmarshal {go_type(value)} into Go struct field "
                                   "NetworkingConfig.EndpointsConfig of type network.EndpointSettings")


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
