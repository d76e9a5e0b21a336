"""Control groups for barque's containers, on cgroup v1, v2 and hybrid hosts.

`CgroupManager` is one container's cgroup in every hierarchy; `ensure_parent` makes the `barque` cgroup they all
live under; `detect_mode` says what kind of host this is. Everything takes the cgroupfs root (and mountinfo) as
parameters, so unit tests run against fixture trees.

Not done: device allowlists on cgroup v2 (the kernel wants an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE, and
barque has no bpf(2) binding in its syscall seam yet) — a warning is logged and the rules are not enforced there.
"""

from ._detect import detect_mode
from ._manager import CgroupManager, ensure_parent

__all__ = ["CgroupManager", "detect_mode", "ensure_parent"]
