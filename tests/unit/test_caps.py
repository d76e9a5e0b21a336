"""Capabilities: names, masks and validation (no process state changes here; see tests/integration/test_security)."""

from __future__ import annotations

from pathlib import Path

import pytest

from barque.errors import InvalidArgument
from barque.runtime import caps
from barque.runtime.defaults import DEFAULT_CAPABILITIES


def test_all_capabilities_follow_the_kernel():
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert len(caps.ALL_CAPABILITIES) == min(last + 1, len(caps._CAPABILITY_NAMES))
    assert caps.ALL_CAPABILITIES[:3] == ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH")
    assert caps.ALL_CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert len(set(caps.ALL_CAPABILITIES)) == len(caps.ALL_CAPABILITIES)


def test_last_cap_read_from_the_given_proc(tmp_path: Path):
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/cap_last_cap").write_text("37\n")
    assert caps._kernel_last_cap(tmp_path) == 37
    assert caps._known_capabilities(37)[-1] == "CAP_AUDIT_READ"


def test_last_cap_falls_back_when_proc_cannot_tell(tmp_path: Path):
    assert caps._kernel_last_cap(tmp_path) == len(caps._CAPABILITY_NAMES) - 1


def test_available_capabilities_are_the_bounding_set(tmp_path: Path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self/status").write_text("Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n")
    available = caps.available_capabilities(tmp_path)
    assert "CAP_SYS_RESOURCE" not in available and "CAP_SYS_ADMIN" in available
    assert len(available) == len(caps.ALL_CAPABILITIES) - 1
    assert caps.available_capabilities(tmp_path / "none") == caps.ALL_CAPABILITIES


def test_default_set_mask_is_dockers():
    # what `grep CapEff /proc/self/status` shows in a default Docker container
    assert caps.capability_mask(DEFAULT_CAPABILITIES) == 0x00000000A80425FB


@pytest.mark.parametrize("spec", [
    None,
    {},
    {"bounding": list(DEFAULT_CAPABILITIES), "effective": [], "ambient": None},
    {s: ["CAP_SYS_ADMIN"] for s in caps.CAPABILITY_SETS},
])
def test_validate_accepts(spec):
    caps.validate_capabilities(spec)


@pytest.mark.parametrize("spec, message", [
    ({"bounding": ["CAP_CHOWN", "CAP_FOO"]}, 'unknown capability "CAP_FOO"'),
    ({"effective": ["cap_chown"]}, 'unknown capability "cap_chown"'),
    ({"permitted": ["CHOWN"]}, 'unknown capability "CHOWN"'),
    ({"ambient": [7]}, 'unknown capability "7"'),
    ({"bounded": []}, 'unknown capability set "bounded"'),
    ({"bounding": "CAP_CHOWN"}, "process.capabilities.bounding must be a list of capability names"),
    (["CAP_CHOWN"], "process.capabilities must be an object, not list"),
])
def test_validate_refuses(spec, message):
    with pytest.raises(InvalidArgument) as e:
        caps.validate_capabilities(spec)
    assert str(e.value) == message


def test_apply_refuses_effective_outside_permitted_before_touching_anything():
    with pytest.raises(InvalidArgument) as e:
        caps.apply_capabilities({"effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_KILL"]})
    assert str(e.value) == "effective capabilities must also be permitted: CAP_CHOWN"


def test_apply_refuses_unknown_names():
    with pytest.raises(InvalidArgument, match='unknown capability "CAP_NOPE"'):
        caps.apply_capabilities({"bounding": ["CAP_NOPE"]})


def test_importing_does_not_load_pyprctl():
    import subprocess
    import sys

    code = "import sys, barque.runtime.caps, barque.runtime.seccomp, barque.runtime.defaults; " \
           "print('pyprctl' in sys.modules, 'pyseccomp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
