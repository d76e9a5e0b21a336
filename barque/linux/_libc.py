"""Raw syscalls Python 3.11 has no binding for, through ctypes. Nothing else in barque uses ctypes.

Every function raises OSError with errno and a message naming the call and its arguments.
"""

from __future__ import annotations

import ctypes
import os
import struct


def _load_libc() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)  # glibc; find_library would fork ldconfig on every start
    except OSError:
        from ctypes import util  # only here: it imports subprocess and shutil, costly at every runtime start

        return ctypes.CDLL(util.find_library("c"), use_errno=True)


_libc = _load_libc()

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21

# umount2(2) flags
MNT_FORCE = 1
MNT_DETACH = 2

# unshare(2)/setns(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# new mount API (fsopen/fsconfig/fsmount/move_mount), x86_64 and aarch64 share these numbers
_SYS_move_mount = 429
_SYS_fsopen = 430
_SYS_fsconfig = 431
_SYS_fsmount = 432
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
        f"mount {source!r} on {target!r} ({fstype}, flags={flags:#x}, data={data!r})",
    )


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target!r}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, {nstype:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(155 if os.uname().machine == "x86_64" else 41), _b(new_root), _b(put_old)),
           f"pivot_root({new_root!r}, {put_old!r})")


def fsopen(fstype: str, flags: int = FSOPEN_CLOEXEC) -> int:
    return _check(_libc.syscall(ctypes.c_long(_SYS_fsopen), _b(fstype), ctypes.c_uint(flags)), f"fsopen({fstype!r})")


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0) -> None:
    _check(
        _libc.syscall(ctypes.c_long(_SYS_fsconfig), ctypes.c_int(fd), ctypes.c_uint(cmd), _b(key), _b(value),
                      ctypes.c_int(aux)),
        f"fsconfig({key!r}={value!r})",
    )


def fsmount(fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0) -> int:
    return _check(_libc.syscall(ctypes.c_long(_SYS_fsmount), ctypes.c_int(fd), ctypes.c_uint(flags),
                                ctypes.c_uint(attr_flags)), "fsmount")


def move_mount(from_fd: int, to_path: str) -> None:
    _check(
        _libc.syscall(ctypes.c_long(_SYS_move_mount), ctypes.c_int(from_fd), b"", ctypes.c_int(AT_FDCWD),
                      _b(to_path), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
        f"move_mount to {to_path!r}",
    )


# ---- additions for the runtime -------------------------------------------------------------------------------------

CLONE_NEWTIME = 0x00000080

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# open_tree(2) / mount_setattr(2) / move_mount(2)
_SYS_open_tree = 428
_SYS_mount_setattr = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def setdomainname(name: str) -> None:
    data = _b(name)
    _check(_libc.setdomainname(data, ctypes.c_size_t(len(data))), f"setdomainname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f"prctl({option})")


_SYS_rt_sigaction = 13 if os.uname().machine == "x86_64" else 134


def default_signal(signum: int) -> None:
    """rt_sigaction(signum, SIG_DFL) straight to the kernel: glibc's sigaction refuses the two real-time signals it
    keeps for itself (32 and 33), yet an ignored disposition of them is inherited across execve like any other."""
    act = ctypes.create_string_buffer(32)  # struct sigaction, all zero: SIG_DFL, no flags, empty mask
    _check(_libc.syscall(ctypes.c_long(_SYS_rt_sigaction), ctypes.c_int(signum), act, None, ctypes.c_size_t(8)),
           f"rt_sigaction({signum})")


_SYS_close_range = 436  # x86_64 and aarch64 share it
CLOSE_RANGE_CLOEXEC = 1 << 2


def cloexec_from(first: int) -> None:
    """Mark every descriptor from `first` up close-on-exec (runc's CloseExecFrom): close_range(2), or, on kernels
    before 5.11, each one /proc/self/fd lists."""
    ret = _libc.syscall(ctypes.c_long(_SYS_close_range), ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF),
                        ctypes.c_uint(CLOSE_RANGE_CLOEXEC))
    if ret == 0:
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listing's own descriptor, gone by now


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def set_dumpable(on: bool = True) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
              dirfd: int = AT_FDCWD) -> int:
    """A file descriptor for the mount tree at `path`; with OPEN_TREE_CLONE a detached copy of it."""
    return _check(_libc.syscall(ctypes.c_long(_SYS_open_tree), ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags)),
                  f"open_tree({path!r})")


def mount_setattr(fd: int, attr_set: int, userns_fd: int = 0, flags: int = AT_EMPTY_PATH | AT_RECURSIVE,
                  path: str = "") -> None:
    attr = _MountAttr(attr_set, 0, 0, userns_fd)
    _check(_libc.syscall(ctypes.c_long(_SYS_mount_setattr), ctypes.c_int(fd), _b(path), ctypes.c_uint(flags),
                         ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           f"mount_setattr(fd {fd}, set={attr_set:#x})")


# seccomp(2) with a raw BPF program (struct sock_fprog)
_SYS_seccomp = 317 if os.uname().machine == "x86_64" else 277
SECCOMP_SET_MODE_FILTER = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """Load a compiled classic-BPF seccomp program (8-byte sock_filter instructions) into the calling thread."""
    if len(program) % 8 or not program:
        raise ValueError("a seccomp program is a non-empty sequence of 8-byte instructions")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.syscall(ctypes.c_long(_SYS_seccomp), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
                         ctypes.byref(prog)), f"seccomp(SET_MODE_FILTER, flags={flags:#x})")


# bpf(2): just what a cgroup v2 device program needs (load, attach, query, detach)
_SYS_bpf = 321 if os.uname().machine == "x86_64" else 280
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_LOG_SIZE = 1 << 16


def _bpf(cmd: int, buf: ctypes.Array, what: str) -> int:
    return _check(_libc.syscall(ctypes.c_long(_SYS_bpf), ctypes.c_int(cmd), buf, ctypes.c_uint(len(buf))), what)


def bpf(cmd: int, attr_bytes: bytes) -> int:
    """bpf(cmd, &attr, sizeof attr) with `attr_bytes` a packed `union bpf_attr` (the kernel reads only what it is
    given; fields past the end are taken as zero)."""
    buf = ctypes.create_string_buffer(attr_bytes, len(attr_bytes))
    return _bpf(cmd, buf, f"bpf(cmd {cmd})")


def bpf_prog_load_cgroup_device(insns: bytes, license: str = "Apache", name: str = "barque_devices") -> int:
    """Load an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE (8-byte instructions); its fd. A program the
    verifier refuses raises OSError with the verifier's log in the message."""
    if len(insns) % 8 or not insns:
        raise ValueError("an eBPF program is a non-empty sequence of 8-byte instructions")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log_buf = ctypes.create_string_buffer(_BPF_LOG_SIZE)
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16]
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // 8, ctypes.addressof(code),
                       ctypes.addressof(lic), 1, _BPF_LOG_SIZE, ctypes.addressof(log_buf), 0, 0,
                       name.encode()[:15])
    buf = ctypes.create_string_buffer(attr, len(attr))
    ret = _libc.syscall(ctypes.c_long(_SYS_bpf), ctypes.c_int(BPF_PROG_LOAD), buf, ctypes.c_uint(len(buf)))
    if ret < 0:
        err = ctypes.get_errno()
        log = log_buf.value.decode(errors="replace").strip()
        raise OSError(err, f"bpf(BPF_PROG_LOAD, cgroup device program of {len(insns) // 8} instructions): "
                           f"{os.strerror(err)}" + (f"; verifier log:\n{log}" if log else ""))
    return ret


def bpf_prog_attach(prog_fd: int, cgroup_fd: int, attach_type: int = BPF_CGROUP_DEVICE,
                    flags: int = BPF_F_ALLOW_MULTI) -> None:
    # target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd
    bpf_attr = struct.pack("<IIIII", cgroup_fd, prog_fd, attach_type, flags, 0)
    _bpf(BPF_PROG_ATTACH, ctypes.create_string_buffer(bpf_attr, len(bpf_attr)),
         f"bpf(BPF_PROG_ATTACH, prog fd {prog_fd} to cgroup fd {cgroup_fd}, type {attach_type})")


def bpf_prog_detach(prog_fd: int, cgroup_fd: int, attach_type: int = BPF_CGROUP_DEVICE) -> None:
    bpf_attr = struct.pack("<IIIII", cgroup_fd, prog_fd, attach_type, 0, 0)
    _bpf(BPF_PROG_DETACH, ctypes.create_string_buffer(bpf_attr, len(bpf_attr)),
         f"bpf(BPF_PROG_DETACH, prog fd {prog_fd} from cgroup fd {cgroup_fd}, type {attach_type})")


def bpf_prog_query(cgroup_fd: int, attach_type: int = BPF_CGROUP_DEVICE, max_progs: int = 64) -> list[int]:
    """The ids of the programs attached to the cgroup directly (not inherited) for `attach_type`."""
    ids = (ctypes.c_uint32 * max_progs)()
    # target_fd, attach_type, query_flags, attach_flags (out), prog_ids, prog_cnt (in/out)
    bpf_attr = struct.pack("<IIIIQI4x", cgroup_fd, attach_type, 0, 0, ctypes.addressof(ids), max_progs)
    buf = ctypes.create_string_buffer(bpf_attr, len(bpf_attr))
    _bpf(BPF_PROG_QUERY, buf, f"bpf(BPF_PROG_QUERY, cgroup fd {cgroup_fd}, type {attach_type})")
    count = struct.unpack_from("<I", buf, 24)[0]
    return list(ids[:min(count, max_progs)])


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    bpf_attr = struct.pack("<III", prog_id, 0, 0)
    return _bpf(BPF_PROG_GET_FD_BY_ID, ctypes.create_string_buffer(bpf_attr, len(bpf_attr)),
                f"bpf(BPF_PROG_GET_FD_BY_ID, {prog_id})")


CGROUP2_SUPER_MAGIC = 0x63677270


def statfs_type(path: str | os.PathLike) -> int:
    """statfs(2)'s f_type (the filesystem's magic number) for `path`; os.statvfs does not report it."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on x86_64 and aarch64; f_type comes first
    _check(_libc.statfs(_b(os.fspath(path)), buf), f"statfs({os.fspath(path)!r})")
    return struct.unpack_from("=l", buf, 0)[0] & 0xffffffff


# inotify(7): Python 3.11 has no binding
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


def inotify_init1(flags: int = IN_NONBLOCK | IN_CLOEXEC) -> int:
    return _check(_libc.inotify_init1(ctypes.c_int(flags)), "inotify_init1")


def inotify_add_watch(fd: int, path: str | os.PathLike, mask: int) -> int:
    return _check(_libc.inotify_add_watch(ctypes.c_int(fd), _b(os.fspath(path)), ctypes.c_uint32(mask)),
                  f"inotify_add_watch({os.fspath(path)!r}, {mask:#x})")


def inotify_rm_watch(fd: int, wd: int) -> None:
    _check(_libc.inotify_rm_watch(ctypes.c_int(fd), ctypes.c_int(wd)), f"inotify_rm_watch({wd})")
