"""The `run`/`create` flag parsers and container names: values as Docker stores them, errors as Docker words them."""

from __future__ import annotations

import random

import pytest

from barque.container import names, options as o
from barque.errors import InvalidArgument


def err(fn, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --- sizes -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("0", 0), ("1024", 1024), ("10b", 10), ("10B", 10),
    ("512m", 512 << 20), ("512M", 512 << 20), ("10MB", 10 << 20), ("10mb", 10 << 20), ("10MiB", 10 << 20),
    ("1k", 1024), ("1KiB", 1024), ("2g", 2 << 30), ("1.5g", 3 << 29), ("1t", 1 << 40), ("1p", 1 << 50),
    ("10 MB", 10 << 20), ("10 ", 10), ("0.5k", 512), ("1.", 1), (".5k", 512), ("1e3", 1000),
])
def test_parse_bytes_accepts_docker_sizes(text, expected):
    assert o.parse_bytes(text, "-m, --memory") == expected


def test_parse_bytes_truncates_fractional_bytes():
    assert o.parse_bytes("1.7", "--shm-size") == 1


@pytest.mark.parametrize("text,reason", [
    ("10x", "invalid suffix: 'x'"),
    ("10kx", "invalid suffix: 'kx'"),
    ("10KIX", "invalid suffix: 'kix'"),
    ("10bb", "invalid suffix: 'bb'"),
    ("10kbbb", "invalid suffix: 'kbbb'"),
    ("abc", "invalid size: 'abc'"),
    ("", "invalid size: ''"),
    ("-1", "invalid size: '-1'"),
    ("-5m", "invalid size: '-5m'"),
    ("1.2.3m", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ("m10", 'strconv.ParseFloat: parsing "m10": invalid syntax'),
])
def test_parse_bytes_rejects_with_pflag_and_go_units_words(text, reason):
    assert err(o.parse_bytes, text, "-m, --memory") == f'invalid argument "{text}" for "-m, --memory" flag: {reason}'


def test_parse_bytes_names_the_flag_given():
    assert err(o.parse_bytes, "lots", "--shm-size") == \
        'invalid argument "lots" for "--shm-size" flag: invalid size: \'lots\''


def test_parse_memory_swap():
    assert o.parse_memory_swap("-1") == -1
    assert o.parse_memory_swap("1g") == 1 << 30
    assert err(o.parse_memory_swap, "-2") == 'invalid argument "-2" for "--memory-swap" flag: invalid size: \'-2\''


# --- cpus ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,nanos", [
    ("1", 1_000_000_000), ("1.5", 1_500_000_000), ("0.01", 10_000_000), ("3/2", 1_500_000_000),
    (".5", 500_000_000), ("2e0", 2_000_000_000), ("0.000000001", 1),
])
def test_parse_cpus(text, nanos):
    assert o.parse_cpus(text) == nanos


@pytest.mark.parametrize("text", ["x", "", "1,5", "1/0", "one", "1.5.2"])
def test_parse_cpus_rejects_non_rationals(text):
    assert err(o.parse_cpus, text) == \
        f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational number'


def test_parse_cpus_rejects_sub_nanosecond_precision():
    assert err(o.parse_cpus, "0.0000000001") == \
        'invalid argument "0.0000000001" for "--cpus" flag: value is too precise'


# --- ulimits ---------------------------------------------------------------------------------------------------

def test_parse_ulimit_soft_and_hard():
    assert o.parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}


def test_parse_ulimit_hard_defaults_to_soft():
    assert o.parse_ulimit("nproc=100") == {"Name": "nproc", "Soft": 100, "Hard": 100}


def test_parse_ulimit_infinity_is_minus_one():
    assert o.parse_ulimit("memlock=infinity") == {"Name": "memlock", "Soft": -1, "Hard": -1}
    assert o.parse_ulimit("core=10:infinity") == {"Name": "core", "Soft": 10, "Hard": -1}


@pytest.mark.parametrize("name", ["core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                                  "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"])
def test_parse_ulimit_knows_every_name(name):
    assert o.parse_ulimit(f"{name}=1")["Name"] == name


@pytest.mark.parametrize("text,reason", [
    ("nofile", "invalid ulimit argument: nofile"),
    ("files=10", "invalid ulimit type: files"),
    ("NOFILE=10", "invalid ulimit type: NOFILE"),
    ("nofile=1:2:3", "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"),
    ("nofile=2048:1024", "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"),
    ("nofile=infinity:10",
     "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 10"),
    ("nofile=lots", 'strconv.ParseInt: parsing "lots": invalid syntax'),
    ("nofile=1:x", 'strconv.ParseInt: parsing "x": invalid syntax'),
])
def test_parse_ulimit_errors(text, reason):
    assert err(o.parse_ulimit, text) == f'invalid argument "{text}" for "--ulimit" flag: {reason}'


def test_ulimits_to_rlimits():
    got = o.ulimits_to_rlimits([o.parse_ulimit("nofile=1024:2048"), o.parse_ulimit("core=infinity")])
    assert got == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
                   {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}]


def test_ulimits_to_rlimits_rejects_unknown_name():
    assert err(o.ulimits_to_rlimits, [{"Name": "bogus", "Soft": 1, "Hard": 1}]) == "invalid ulimit name bogus"


# --- restart ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("", {"Name": "no", "MaximumRetryCount": 0}),
    ("no", {"Name": "no", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ("on-failure", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
    ("always:0", {"Name": "always", "MaximumRetryCount": 0}),
])
def test_parse_restart(text, expected):
    assert o.parse_restart(text) == expected


@pytest.mark.parametrize("text,message", [
    ("always:3", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ("unless-stopped:1", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ("no:-1", "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"),
    ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
    ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
    (":3", "invalid restart policy format: no policy provided before colon"),
    ("sometimes", "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
                  "or 'unless-stopped'"),
    ("Always", "invalid restart policy: unknown policy 'Always'; use one of 'no', 'always', 'on-failure', "
               "or 'unless-stopped'"),
])
def test_parse_restart_errors(text, message):
    assert err(o.parse_restart, text) == message


# --- durations -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,nanos", [
    ("0", 0), ("-0", 0), ("+0", 0), ("1s", 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8), ("1.5h", 5400 * 10**9),
    ("2h45m", (2 * 3600 + 45 * 60) * 10**9), ("10ns", 10), ("3us", 3000), ("3µs", 3000), ("3μs", 3000),
    (".5s", 5 * 10**8), ("1.s", 10**9), ("-1.5s", -15 * 10**8), ("1h1h", 7200 * 10**9), ("0s", 0),
    ("1.0000000001s", 10**9),  # Go truncates below a nanosecond
])
def test_parse_duration(text, nanos):
    assert o.parse_duration(text, "--health-interval") == nanos


@pytest.mark.parametrize("text,reason", [
    ("", 'time: invalid duration ""'),
    ("x", 'time: invalid duration "x"'),
    ("-", 'time: invalid duration "-"'),
    (".", 'time: invalid duration "."'),
    ("s", 'time: invalid duration "s"'),
    ("10", 'time: missing unit in duration "10"'),
    ("1m30", 'time: missing unit in duration "1m30"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("5 s", 'time: unknown unit " s" in duration "5 s"'),
    ("1S", 'time: unknown unit "S" in duration "1S"'),
    ("9999999999h", 'time: invalid duration "9999999999h"'),
])
def test_parse_duration_errors(text, reason):
    assert err(o.parse_duration, text, "--health-timeout") == \
        f'invalid argument "{text}" for "--health-timeout" flag: {reason}'


# --- env -------------------------------------------------------------------------------------------------------

def test_parse_env_flags_and_host_lookup():
    host = {"HOME": "/root", "EMPTY": ""}
    assert o.parse_env(["A=1", "B=", "HOME", "EMPTY", "UNSET", "C=x=y"], [], host) == \
        ["A=1", "B=", "HOME=/root", "EMPTY=", "C=x=y"]


def test_parse_env_rejects_empty_name():
    assert err(o.parse_env, ["=x"], [], {}) == \
        'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x'
    assert err(o.parse_env, [""], [], {}) == 'invalid argument "" for "-e, --env" flag: invalid environment variable: '


def test_parse_env_file_format(tmp_path):
    f = tmp_path / "app.env"
    # BOM, comment, blank line, leading blanks, host lookups, quotes kept as-is, CRLF, no final newline
    f.write_bytes("\ufeffFOO=bar\n  # a comment\n\n   BAZ=two words \nFROM_HOST\nNOT_SET\n"
                  "Q=\"kept\"\r\nLAST=1".encode())
    got = o.parse_env([], [str(f)], {"FROM_HOST": "h"})
    assert got == ["FOO=bar", "BAZ=two words ", "FROM_HOST=h", 'Q="kept"', "LAST=1"]


def test_parse_env_flags_come_after_files(tmp_path):
    f = tmp_path / "e"
    f.write_text("A=file\nB=file\n")
    assert o.parse_env(["A=flag"], [str(f)], {}) == ["A=file", "B=file", "A=flag"]


def test_parse_env_missing_file(tmp_path):
    path = tmp_path / "nope.env"
    assert err(o.parse_env, [], [str(path)], {}) == f"open {path}: no such file or directory"


def test_parse_env_file_is_a_directory(tmp_path):
    assert err(o.parse_env, [], [str(tmp_path)], {}) == \
        f"invalid env file ({tmp_path}): read {tmp_path}: is a directory"


def test_parse_env_file_errors(tmp_path):
    f = tmp_path / "bad.env"
    f.write_text("OK=1\nMY VAR=1\n")
    assert err(o.parse_env, [], [str(f)], {}) == f"invalid env file ({f}): variable 'MY VAR' contains whitespaces"
    f.write_text("=nokey\n")
    assert err(o.parse_env, [], [str(f)], {}) == f"invalid env file ({f}): no variable name on line '=nokey'"
    f.write_bytes(b"A=1\nB=\xff\xfe\n")
    assert err(o.parse_env, [], [str(f)], {}) == \
        f"invalid env file ({f}): invalid utf8 bytes at line 2: [66 61 255 254]"


def test_merge_env_run_first_then_image_leftovers():
    image = ["PATH=/usr/bin", "LANG=C", "HOME=/root"]
    assert o.merge_env(image, ["LANG=en_US.UTF-8", "APP=1"]) == \
        ["LANG=en_US.UTF-8", "APP=1", "PATH=/usr/bin", "HOME=/root"]


def test_merge_env_without_run_env_is_image_env():
    assert o.merge_env(["PATH=/bin", "X=1"], []) == ["PATH=/bin", "X=1"]


def test_merge_env_keeps_the_run_entries_as_given_and_a_named_key_hides_the_image_one():
    # dockerd's create keeps Config.Env as the API gave it: repeated keys and a bare K stay (docker inspect shows
    # ["A=1", "B=2", "A=3", "SECRET", "PATH=/bin"]); the bare SECRET keeps the image's SECRET out
    assert o.merge_env(["PATH=/bin", "SECRET=s"], ["A=1", "B=2", "A=3", "SECRET"]) == \
        ["A=1", "B=2", "A=3", "SECRET", "PATH=/bin"]


def test_process_env_later_entry_wins_in_place_and_bare_key_unsets():
    defaults = ["PATH=/usr/bin", "HOSTNAME=abc", "TERM=xterm"]
    assert o.process_env(defaults, ["A=1", "HOSTNAME", "B=2", "A=3", "PATH=/x", "Foo"]) == \
        ["PATH=/x", "TERM=xterm", "A=3", "B=2"]
    assert o.process_env(["A=1"], ["A", "A=2"]) == ["A=2"]
    # dockerd's bare K removes only a default: not a variable an earlier entry appended
    assert o.process_env([], ["B=1", "B"]) == ["B=1"]
    assert o.process_env(["A=0"], ["B=1", "B", "A", "B=2"]) == ["B=2"]


# --- labels ----------------------------------------------------------------------------------------------------

def test_parse_labels(tmp_path):
    f = tmp_path / "labels"
    f.write_text("# labels\nteam=core\nflag\nversion=1\n")
    assert o.parse_labels(["version=2", "empty", "x=a=b"], [str(f)]) == \
        {"team": "core", "flag": "", "version": "2", "empty": "", "x": "a=b"}


def test_parse_labels_errors(tmp_path):
    assert err(o.parse_labels, ["=v"], []) == \
        'invalid argument "=v" for "-l, --label" flag: invalid label \'=v\': empty name'
    assert err(o.parse_labels, ["a b=v"], []) == \
        'invalid argument "a b=v" for "-l, --label" flag: label \'a b\' contains whitespaces'
    missing = tmp_path / "none"
    assert err(o.parse_labels, [], [str(missing)]) == f"open {missing}: no such file or directory"


# --- security options ------------------------------------------------------------------------------------------

def test_parse_security_opts_defaults():
    assert o.parse_security_opts([]) == {"seccomp": None, "no_new_privileges": None, "apparmor": None, "label": [],
                                         "systempaths": None}


def test_parse_security_opts_all_kinds():
    got = o.parse_security_opts(["seccomp=unconfined", "no-new-privileges", "apparmor=my-profile",
                                 "label=disable", "label:type:svirt_t", "systempaths=unconfined"])
    assert got == {"seccomp": "unconfined", "no_new_privileges": True, "apparmor": "my-profile",
                   "label": ["disable", "type:svirt_t"], "systempaths": "unconfined"}


@pytest.mark.parametrize("text,value", [
    ("no-new-privileges=true", True), ("no-new-privileges:true", True), ("no-new-privileges=1", True),
    ("no-new-privileges=false", False), ("no-new-privileges=F", False),
])
def test_parse_security_opts_no_new_privileges_values(text, value):
    assert o.parse_security_opts([text])["no_new_privileges"] is value


def test_parse_security_opts_seccomp_path_and_builtin():
    assert o.parse_security_opts(["seccomp=/etc/profile.json"])["seccomp"] == "/etc/profile.json"
    assert o.parse_security_opts(["seccomp=builtin"])["seccomp"] is None


@pytest.mark.parametrize("text,message", [
    ("x", 'invalid --security-opt: "x"'),
    ("label", 'invalid --security-opt: "label"'),
    ("seccomp=", 'invalid --security-opt: "seccomp="'),
    ("bogus=1", 'invalid --security-opt 2: "bogus=1"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("systempaths=confined", 'invalid --security-opt 2: "systempaths=confined"'),
])
def test_parse_security_opts_errors(text, message):
    assert err(o.parse_security_opts, [text]) == message


def test_security_opt_strings_round_trip():
    values = ["label=disable", "apparmor=unconfined", "seccomp=unconfined", "no-new-privileges"]
    parsed = o.parse_security_opts(values)
    assert o.security_opt_strings(parsed) == values
    assert o.parse_security_opts(o.security_opt_strings(parsed)) == parsed


def test_security_opt_strings_drops_systempaths_and_keeps_explicit_false():
    parsed = o.parse_security_opts(["systempaths=unconfined", "no-new-privileges=false"])
    assert o.security_opt_strings(parsed) == ["no-new-privileges=false"]
    assert o.security_opt_strings(o.parse_security_opts([])) == []


# --- healthcheck -----------------------------------------------------------------------------------------------

def hc(cmd=None, interval=None, timeout=None, retries=None, start_period=None, start_interval=None, none=False):
    return o.parse_healthcheck(cmd, interval, timeout, retries, start_period, start_interval, none)


def test_parse_healthcheck_nothing_given():
    assert hc() is None
    assert hc(cmd="", interval="0s", retries="0") is None


def test_parse_healthcheck_full():
    assert hc("curl -f http://localhost/", "10s", "3s", "5", "1m", "2s") == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 10 * 10**9, "Timeout": 3 * 10**9,
        "Retries": 5, "StartPeriod": 60 * 10**9, "StartInterval": 2 * 10**9}


def test_parse_healthcheck_only_given_keys():
    assert hc(interval="5s") == {"Interval": 5 * 10**9}
    assert hc(cmd="true") == {"Test": ["CMD-SHELL", "true"]}


def test_parse_healthcheck_none():
    assert hc(none=True) == {"Test": ["NONE"]}
    assert err(hc, cmd="true", none=True) == "--no-healthcheck conflicts with --health-* options"
    assert err(hc, retries="2", none=True) == "--no-healthcheck conflicts with --health-* options"


@pytest.mark.parametrize("kwargs,message", [
    ({"interval": "-1s"}, "--health-interval cannot be negative"),
    ({"timeout": "-1s"}, "--health-timeout cannot be negative"),
    ({"retries": "-1"}, "--health-retries cannot be negative"),
    ({"start_period": "-1s"}, "--health-start-period cannot be negative"),
    ({"start_interval": "-1s"}, "--health-start-interval cannot be negative"),
    ({"interval": "10us"}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"timeout": "999us"}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"interval": "1x"}, 'invalid argument "1x" for "--health-interval" flag: time: unknown unit "x" in duration "1x"'),
    ({"retries": "three"}, 'invalid argument "three" for "--health-retries" flag: '
                           'strconv.ParseInt: parsing "three": invalid syntax'),
])
def test_parse_healthcheck_errors(kwargs, message):
    assert err(hc, **kwargs) == message


def test_parse_healthcheck_retries_take_go_integer_syntax():
    assert hc(retries="0x10") == {"Retries": 16}


def test_effective_healthcheck_merges_like_docker():
    image = {"Test": ["CMD", "check"], "Interval": 5 * 10**9, "Retries": 2}
    assert o.effective_healthcheck(image, None) == image
    assert o.effective_healthcheck(image, {"Interval": 7 * 10**9}) == \
        {"Test": ["CMD", "check"], "Interval": 7 * 10**9, "Retries": 2}
    assert o.effective_healthcheck(image, {"Test": ["CMD-SHELL", "other"]}) == \
        {"Test": ["CMD-SHELL", "other"], "Interval": 5 * 10**9, "Retries": 2}


def test_effective_healthcheck_none_disables_and_missing_test_means_none():
    image = {"Test": ["CMD", "check"]}
    assert o.effective_healthcheck(image, {"Test": ["NONE"]}) is None
    assert o.effective_healthcheck({"Test": ["NONE"]}, None) is None
    assert o.effective_healthcheck(None, {"Interval": 10**9}) is None
    assert o.effective_healthcheck(None, None) is None
    assert o.effective_healthcheck(None, {"Test": ["CMD-SHELL", "x"]}) == {"Test": ["CMD-SHELL", "x"]}


def test_healthcheck_defaults():
    assert o.healthcheck_defaults({"Test": ["CMD", "x"], "Retries": 7}) == {
        "Test": ["CMD", "x"], "Interval": 30 * 10**9, "Timeout": 30 * 10**9, "Retries": 7, "StartPeriod": 0,
        "StartInterval": 5 * 10**9}


# --- signals ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,name", [
    ("SIGTERM", "SIGTERM"), ("TERM", "SIGTERM"), ("term", "SIGTERM"), ("sigterm", "SIGTERM"), ("15", "SIGTERM"),
    ("9", "SIGKILL"), ("SIGRTMIN", "SIGRTMIN"), ("SIGRTMIN+3", "SIGRTMIN+3"), ("37", "SIGRTMIN+3"),
    ("rtmax-1", "SIGRTMAX-1"), ("64", "SIGRTMAX"), ("IOT", "SIGABRT"), ("SIGCLD", "SIGCHLD"), ("POLL", "SIGIO"),
    ("SIGWINCH", "SIGWINCH"),
])
def test_parse_signal(text, name):
    assert o.parse_signal(text) == name


@pytest.mark.parametrize("text", ["0", "65", "-1", "SIGFOO", "", "SIG", "RTMIN+16", "1.5"])
def test_parse_signal_errors(text):
    assert err(o.parse_signal, text) == f"invalid signal: {text}"


def test_signal_number():
    assert o.signal_number("SIGTERM") == 15
    assert o.signal_number("SIGRTMIN+3") == 37
    assert o.signal_number("SIGRTMAX-14") == 50
    assert o.signal_number("hup") == 1
    assert err(o.signal_number, "NOPE") == "invalid signal: NOPE"


# --- key=value maps --------------------------------------------------------------------------------------------

def test_parse_key_value_opts_log_opt():
    assert o.parse_key_value_opts(["max-size=10m", "max-file=3", "tag", "max-size=20m"], "--log-opt") == \
        {"max-size": "20m", "max-file": "3", "tag": ""}


def test_parse_key_value_opts_sysctl():
    assert o.parse_key_value_opts(["net.ipv4.ip_forward=1", "kernel.shmmax=1024", "fs.mqueue.msg_max=20"],
                                  "--sysctl") == \
        {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1024", "fs.mqueue.msg_max": "20"}
    assert err(o.parse_key_value_opts, ["kernel.hostname=x"], "--sysctl") == \
        'invalid argument "kernel.hostname=x" for "--sysctl" flag: sysctl \'kernel.hostname=x\' is not allowed'
    assert err(o.parse_key_value_opts, ["net.core.somaxconn"], "--sysctl") == \
        'invalid argument "net.core.somaxconn" for "--sysctl" flag: sysctl \'net.core.somaxconn\' is not allowed'


def test_parse_key_value_opts_storage_opt():
    assert o.parse_key_value_opts(["size=10G"], "--storage-opt") == {"size": "10G"}
    assert err(o.parse_key_value_opts, ["size"], "--storage-opt") == "invalid storage option"


def test_parse_key_value_opts_other_flags_need_key_value():
    assert err(o.parse_key_value_opts, ["novalue"], "--opt") == \
        'invalid argument "novalue" for "--opt" flag: invalid key=value pair: novalue'


# --- user, cpuset, pids, userns --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("", ("", None)), ("nobody", ("nobody", None)), ("1000", ("1000", None)), ("1000:100", ("1000", "100")),
    ("www-data:staff", ("www-data", "staff")),
])
def test_parse_user(text, expected):
    assert o.parse_user(text) == expected


@pytest.mark.parametrize("text", [":100", "1000:", "a:b:c"])
def test_parse_user_errors(text):
    assert err(o.parse_user, text) == f'invalid user format: "{text}": expected user[:group]'


@pytest.mark.parametrize("text", ["", "0", "0-2", "0-2,4", "1,3,5-7", "0-0", "03,1-3"])
def test_parse_cpuset(text):
    assert o.parse_cpuset(text, "--cpuset-cpus") == text


@pytest.mark.parametrize("text", ["a", "0-", "-1", "2-1", "0,,1", "1 ", "0-2-4", "+1"])
def test_parse_cpuset_errors(text):
    for flag, what in (("--cpuset-cpus", "cpus"), ("--cpuset-mems", "mems")):
        assert err(o.parse_cpuset, text, flag) == f"Invalid value {text} for cpuset {what}: invalid format: {text}"


def test_parse_pids_limit():
    assert o.parse_pids_limit("100") == 100
    assert o.parse_pids_limit("0") == 0
    assert o.parse_pids_limit("-1") == 0
    assert err(o.parse_pids_limit, "lots") == \
        'invalid argument "lots" for "--pids-limit" flag: strconv.ParseInt: parsing "lots": invalid syntax'
    assert err(o.parse_pids_limit, "99999999999999999999") == ('invalid argument "99999999999999999999" for '
        '"--pids-limit" flag: strconv.ParseInt: parsing "99999999999999999999": value out of range')


def test_parse_userns():
    assert o.parse_userns("") == ""
    assert o.parse_userns("host") == "host"
    assert o.parse_userns("remap") == "remap"
    assert o.parse_userns("private") == ""
    assert err(o.parse_userns, "keep-id") == "--userns: invalid USER mode"
    assert err(o.parse_userns, "HOST") == "--userns: invalid USER mode"


def test_public_surface():
    assert set(o.__all__) == {name for name in dir(o) if not name.startswith("_") and callable(getattr(o, name))
                              and getattr(o, name).__module__ == o.__name__}


# --- names -----------------------------------------------------------------------------------------------------

def test_word_lists_are_big_distinct_and_valid():
    assert len(set(names.ADJECTIVES)) >= 60 and len(set(names.SURNAMES)) >= 100
    assert len(set(names.ADJECTIVES)) == len(names.ADJECTIVES) and len(set(names.SURNAMES)) == len(names.SURNAMES)
    for word in names.ADJECTIVES + names.SURNAMES:
        assert word.isascii() and word.isalpha() and word.islower()


def test_generate_name_shape_and_validity():
    rng = random.Random(42)
    for _ in range(200):
        name = names.generate_name(lambda n: False, rng)
        adjective, surname = name.split("_")
        assert adjective in names.ADJECTIVES and surname in names.SURNAMES
        assert names.validate_name(name) == name


def test_generate_name_default_rng_is_random_module():
    name = names.generate_name(lambda n: False)
    assert name.split("_")[0] in names.ADJECTIVES


def test_generate_name_appends_a_digit_when_taken():
    asked = []

    def taken(name):
        asked.append(name)
        return len(asked) == 1

    name = names.generate_name(taken, random.Random(7))
    assert asked[0].count("_") == 1 and not asked[0][-1].isdigit()
    assert name == asked[1] and name[-1].isdigit()
    assert name.rstrip("0123456789").split("_")[1] in names.SURNAMES


def test_generate_name_always_finds_a_free_name():
    def digits(name):
        return len(name) - len(name.rstrip("0123456789"))

    # every plain name and every one-digit name is taken: the generator must still end, with a wider number
    name = names.generate_name(lambda n: digits(n) <= 1, random.Random(3))
    assert digits(name) >= 2 and name.rstrip("0123456789").split("_")[0] in names.ADJECTIVES


@pytest.mark.parametrize("name,stored", [
    ("web", "web"), ("/web", "web"), ("a1", "a1"), ("my_app.v2-1", "my_app.v2-1"), ("0x", "0x"),
])
def test_validate_name(name, stored):
    assert names.validate_name(name) == stored


@pytest.mark.parametrize("name", ["a", "", "/", "_app", "-app", ".app", "my app", "app/1", "ü-app", "//web"])
def test_validate_name_errors(name):
    assert err(names.validate_name, name) == \
        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
