"""barque's default seccomp profile, as data: which syscalls a container may make, and on what condition.

Written for barque from the documented behaviour of Docker's default profile (the same syscalls allowed, gated
and blocked; not a copy of its JSON). The shape:

- an allowlist; anything not listed fails with EPERM (the spec's defaultAction SCMP_ACT_ERRNO, errno 1);
- `ALWAYS`: allowed for every container, grouped by what they are for;
- `BY_CAPABILITY`: allowed only when the container is granted one of the named capabilities — the kernel would
  refuse most of them without it anyway, and the filter removes the attack surface behind the check;
- `BY_ARCHITECTURE`: syscalls that exist (and are harmless) only on some architectures;
- `with_arguments()`: syscalls allowed only for some argument values (clone without namespace flags, personality
  to the safe personas, socket for address families other than AF_ALG and AF_VSOCK);
- `SINCE_KERNEL`: syscalls allowed to everyone on kernels where they are safe (ptrace and friends from 4.8, when
  the kernel stopped letting ptrace bypass seccomp), and to CAP_SYS_PTRACE holders everywhere.

What stays blocked for a default container (the intent; the tests check it): mount and the new mount API,
umount, pivot_root, unshare, setns and namespace flags to clone (clone3 gets ENOSYS so libc falls back to clone),
kexec_load/kexec_file_load, init_module/finit_module/delete_module, reboot (without CAP_SYS_BOOT), keyctl,
add_key, request_key, clock_settime/settimeofday/stime, bpf, perf_event_open, userfaultfd, io_uring,
open_by_handle_at, swapon/swapoff, acct, quotactl, lookup_dcookie, sethostname/setdomainname, syslog, iopl,
ioperm, vhangup, NUMA policy calls, the lsm_* calls, and obsolete calls (uselib, ustat, sysfs, _sysctl,
nfsservctl, create_module, query_module, get_kernel_syms, vm86, vm86old, bdflush).

Known gap, shared with Docker: 32-bit x86 programs reach socket() through socketcall(2), whose arguments seccomp
cannot see, so AF_ALG/AF_VSOCK are blocked only on the direct socket(2) path. Docker closes that path with
AppArmor/SELinux rules, which barque does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

__all__ = ["ALWAYS", "BY_CAPABILITY", "BY_ARCHITECTURE", "SINCE_KERNEL", "ARCH_FAMILIES",
           "Rule", "with_arguments", "allowed_names", "render"]

ALLOW = "SCMP_ACT_ALLOW"
ENOSYS = 38
EPERM = 1


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# -- allowed for every container ------------------------------------------------------------------------------
ALWAYS: dict[str, tuple[str, ...]] = {
    "processes and threads": _names("""
        execve execveat exit exit_group fork vfork wait4 waitid waitpid getpid getppid gettid getpgid getpgrp
        setpgid getsid setsid set_tid_address set_robust_list get_robust_list rseq restart_syscall
        prctl capget capset seccomp landlock_add_rule landlock_create_ruleset
        landlock_restrict_self membarrier getcpu getrusage times uname sysinfo
        pidfd_open pidfd_send_signal process_mrelease
    """),
    "credentials": _names("""
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 getresgid
        getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32
        setresuid setresuid32 setresgid setresgid32 setgroups setgroups32 setfsuid setfsuid32 setfsgid setfsgid32
    """),
    "scheduling and limits": _names("""
        sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr sched_getparam sched_setparam
        sched_getscheduler sched_setscheduler sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval sched_rr_get_interval_time64 getpriority setpriority ioprio_get ioprio_set
        getrlimit setrlimit ugetrlimit prlimit64
    """),
    "signals": _names("""
        kill tkill tgkill rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_tgsigqueueinfo
        rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 sigaltstack sigprocmask sigreturn
        signalfd signalfd4 pause
    """),
    "memory": _names("""
        brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock munlockall
        remap_file_pages memfd_create memfd_secret pkey_alloc pkey_free pkey_mprotect map_shadow_stack mseal
        cachestat
    """),
    "time and timers": _names("""
        time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_nanosleep
        clock_nanosleep_time64 nanosleep adjtimex clock_adjtime clock_adjtime64 alarm getitimer setitimer
        timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
        timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64
    """),
    "synchronisation": _names("""
        futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue
    """),
    "file descriptors and I/O": _names("""
        read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 close close_range dup dup2 dup3
        fcntl fcntl64 ioctl lseek _llseek pipe pipe2 sendfile sendfile64 splice tee vmsplice copy_file_range
        readahead fadvise64 fadvise64_64 fallocate flock fsync fdatasync sync syncfs sync_file_range
        eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    """),
    "waiting for events": _names("""
        select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create epoll_create1
        epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2
    """),
    "asynchronous I/O": _names("""
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    """),
    "files and directories": _names("""
        open openat openat2 creat access faccessat faccessat2 stat stat64 lstat lstat64 fstat fstat64 fstatat64
        newfstatat statx statfs statfs64 fstatfs fstatfs64 getdents getdents64 getcwd chdir fchdir mkdir mkdirat
        mknod mknodat rmdir rename renameat renameat2 link linkat symlink symlinkat unlink unlinkat readlink
        readlinkat truncate truncate64 ftruncate ftruncate64 chmod fchmod fchmodat fchmodat2 chown chown32
        fchown fchown32 fchownat lchown lchown32 umask utime utimes utimensat utimensat_time64 futimesat
        name_to_handle_at listmount statmount
    """),
    "extended attributes": _names("""
        getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat listxattr llistxattr
        flistxattr listxattrat removexattr lremovexattr fremovexattr removexattrat
    """),
    "sockets": _names("""
        socketpair socketcall bind connect listen accept accept4 getsockname getpeername getsockopt setsockopt
        send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64 shutdown
    """),
    "System V and POSIX IPC": _names("""
        ipc msgget msgctl msgsnd msgrcv semget semctl semop semtimedop semtimedop_time64 shmget shmctl shmat shmdt
        mq_open mq_unlink mq_getsetattr mq_notify mq_timedsend mq_timedsend_time64 mq_timedreceive
        mq_timedreceive_time64
    """),
    "probes": _names("""
        uretprobe
    """),
}


# -- allowed with a capability (any one of those named) -------------------------------------------------------
BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": _names("""
        mount umount umount2 mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick unshare setns
        clone clone3 sethostname setdomainname quotactl quotactl_fd lookup_dcookie fanotify_init bpf
        perf_event_open syslog lsm_get_self_attr lsm_set_self_attr lsm_list_modules
    """),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("ptrace", "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}

# -- allowed on some architecture families only ---------------------------------------------------------------
BY_ARCHITECTURE: dict[str, tuple[str, ...]] = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "x86": ("modify_ldt",),
    "aarch64": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                "set_tls"),
    "arm": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"),
    "ppc64le": ("sync_file_range2", "swapcontext"),
    "s390x": ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
    "riscv64": ("riscv_flush_icache", "riscv_hwprobe"),
}

# -- allowed to everyone from a kernel version (and to holders of the capability on any kernel) ---------------
SINCE_KERNEL: tuple[tuple[tuple[int, int], tuple[str, ...]], ...] = (
    ((4, 8), BY_CAPABILITY["CAP_SYS_PTRACE"]),
)

# The architectures each family's filter covers (the native one first).
ARCH_FAMILIES: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "x86": ("SCMP_ARCH_X86",),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "arm": ("SCMP_ARCH_ARM",),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
    "mips64": ("SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPS"),
    "mips64el": ("SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_MIPSEL"),
}
ARCH_ALIASES: dict[str, str] = {
    "amd64": "x86_64", "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "386": "x86",
    "arm64": "aarch64", "armv7l": "arm", "armv6l": "arm", "armhf": "arm", "armel": "arm",
    "ppc64el": "ppc64le", "s390": "s390x", "riscv": "riscv64", "mips64le": "mips64el",
}


# -- restricted by argument -----------------------------------------------------------------------------------
from barque.linux._libc import (  # noqa: E402
    CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS,
)
#: The namespace flags clone(2) may not carry without CAP_SYS_ADMIN. (CLONE_NEWTIME overlaps the exit-signal
#: bits of clone(2)'s flags and is only reachable through unshare/clone3, which are blocked.)
CLONE_NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                         | CLONE_NEWPID | CLONE_NEWNET)

PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
UNAME26 = 0x0020000
PERSONALITY_QUERY = 0xFFFFFFFF
#: Personas a container may switch to: Linux, 32-bit Linux, each with the 2.6-uname quirk, and the query.
SAFE_PERSONAS = (PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, PERSONALITY_QUERY)

AF_ALG = 38
AF_VSOCK = 40


def _arg(index: int, op: str, value: int, value_two: int = 0) -> dict:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


class Rule(NamedTuple):
    """One conditional rule: allowed (or `action`) for `names` when every condition holds."""

    names: tuple[str, ...]
    args: tuple[dict, ...] = ()
    action: str = ALLOW
    errno_ret: int | None = None
    unless_caps: frozenset[str] = frozenset()  # dropped when one of these is granted

    def entry(self) -> dict:
        e: dict = {"names": list(self.names), "action": self.action}
        if self.errno_ret is not None:
            e["errnoRet"] = self.errno_ret
        if self.args:
            e["args"] = [dict(a) for a in self.args]
        return e


def with_arguments(family: str) -> list[Rule]:
    """The argument-restricted rules for an architecture family."""
    clone_flags_index = 1 if family == "s390x" else 0  # s390 swaps clone's first two arguments
    no_admin = frozenset({"CAP_SYS_ADMIN"})
    return [
        *(Rule(("personality",), (_arg(0, "SCMP_CMP_EQ", p),)) for p in SAFE_PERSONAS),
        Rule(("socket",), (_arg(0, "SCMP_CMP_LT", AF_ALG),)),
        *(Rule(("socket",), (_arg(0, "SCMP_CMP_EQ", af),)) for af in range(AF_ALG + 1, AF_VSOCK)),
        Rule(("socket",), (_arg(0, "SCMP_CMP_GT", AF_VSOCK),)),
        Rule(("clone",), (_arg(clone_flags_index, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),),
             unless_caps=no_admin),
        Rule(("clone3",), action="SCMP_ACT_ERRNO", errno_ret=ENOSYS, unless_caps=no_admin),
    ]



def allowed_names(capabilities: Iterable[str], family: str, kernel: tuple[int, int]) -> set[str]:
    """Every syscall allowed unconditionally for a container with `capabilities` on `family` and `kernel`."""
    caps = set(capabilities)
    names = {n for group in ALWAYS.values() for n in group}
    names.update(BY_ARCHITECTURE.get(family, ()))
    for cap, granted in BY_CAPABILITY.items():
        if cap in caps:
            names.update(granted)
    for since, granted in SINCE_KERNEL:
        if kernel >= since:
            names.update(granted)
    return names


def render(capabilities: Sequence[str], family: str, kernel: tuple[int, int],
           keep: Callable[[str], bool] = lambda name: True) -> dict:
    """The profile in the spec's `linux.seccomp` form; `keep` filters out names libseccomp cannot resolve."""
    caps = set(capabilities)
    allowed = {n for n in allowed_names(caps, family, kernel) if keep(n)}
    rules = [r for r in with_arguments(family)
             if not (r.unless_caps & caps) and not set(r.names) & allowed and all(keep(n) for n in r.names)]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(ARCH_FAMILIES[family]),
        "syscalls": [{"names": sorted(allowed), "action": ALLOW}, *(r.entry() for r in rules)],
    }
