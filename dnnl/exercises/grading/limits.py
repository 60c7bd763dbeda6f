"""The limits a grading process puts on itself before any student code runs.

* memory: ``RLIMIT_AS`` (address space; torch reserves much more than it uses, so the default is generous);
* files: ``RLIMIT_FSIZE`` (no file over 256 MB) and no core dumps;
* writes: on Linux with Landlock (kernel 5.13+), files can be created or written only inside the
  submission's own temporary folder, so the package, the answer keys and the other submissions cannot
  be changed; with Landlock ABI 4+ (kernel 6.7+) TCP connections are refused too.

The process group and the time limits are the parent's business (:mod:`.sandbox`).
"""
from __future__ import annotations

import ctypes
import os
import resource
import sys

_FILE_MB = 256
# Landlock access rights (linux/landlock.h)
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_WRITES = sum(1 << b for b in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SYS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}


def _setrlimit(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY else hard))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock cannot be used here."""
    if not sys.platform.startswith("linux") or os.uname().machine not in _SYS:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(_SYS[os.uname().machine][0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)


class _Ruleset(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def restrict_writes(folders: list[str]) -> bool:
    """Allow writes only beneath ``folders`` (and to /dev/null), for this process and its children."""
    abi = landlock_abi()
    if abi < 1:
        return False
    create, add_rule, restrict = _SYS[os.uname().machine]
    libc = ctypes.CDLL(None, use_errno=True)
    writes = _FS_WRITE_FILE | _FS_WRITES | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = _Ruleset(writes, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0)
    size = ctypes.sizeof(_Ruleset) if abi >= 4 else 8
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, access in [(f, writes) for f in folders] + [("/dev/null", _FS_WRITE_FILE)]:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneath(access, fd)
                if libc.syscall(add_rule, ruleset, 1, ctypes.byref(rule), 0) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        if libc.prctl(38, 1, 0, 0, 0) < 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(restrict, ruleset, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return True


def apply(limits: dict, workdir: str) -> dict:
    """Apply ``limits`` (``memory_mb``, ``landlock``) to this process; return what was applied."""
    applied = {}
    memory = int(limits.get("memory_mb") or 0)
    if memory > 0:
        _setrlimit(resource.RLIMIT_AS, memory * 2**20)
        applied["memory_mb"] = memory
    _setrlimit(resource.RLIMIT_FSIZE, _FILE_MB * 2**20)
    _setrlimit(resource.RLIMIT_CORE, 0)
    if limits.get("landlock", True):
        applied["landlock"] = restrict_writes([workdir])
    return applied
