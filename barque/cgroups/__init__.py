"""Control groups for barque's containers, on cgroup v1, v2 and hybrid hosts.

`CgroupManager` is one container's cgroup in every hierarchy; `ensure_parent` makes the `barque` cgroup they all
live under; `detect_mode` says what kind of host this is. Everything takes the cgroupfs root (and mountinfo) as
parameters, so unit tests run against fixture trees.

Device allowlists: on v1 and hybrid hosts through the v1 devices controller; on pure v2 hosts as an eBPF program of
type BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup2 directory (`devices_bpf`). A hybrid host without
a v1 devices controller gets a warning, and the rules are not enforced there.
"""

from ._detect import detect_mode
from ._manager import CgroupManager, ensure_parent

__all__ = ["CgroupManager", "detect_mode", "ensure_parent"]
