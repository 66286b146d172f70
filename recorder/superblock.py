"""Reopen a crashed run file for writing (``Recorder(..., resume=True)``).

A writer that died (``kill -9``, preemption) leaves the "open for write / SWMR write" flags set
in the HDF5 superblock, and HDF5 then refuses to open the file for writing again ("file is
already open for write ... may use <h5clear file>"). ``clear_write_flags`` does what
``h5clear -s -i`` does, for the superblock versions 2 and 3 that ``libver="latest"`` writes:
zero the flags, raise the end-of-allocation address to the file's size (space the dead writer
allocated after its last superblock write must not be handed out again), and store the
superblock's Jenkins lookup3 checksum. The old checksum is verified first: a superblock this
code does not understand is left untouched.

Only call it while holding the writer lock (claim.py): it must never run under a live writer.
"""
from __future__ import annotations

import os
import struct

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, as HDF5's ``H5_checksum_lookup3``."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M
    k = 0
    while length > 12:
        a = (a + int.from_bytes(data[k:k + 4], "little")) & _M
        b = (b + int.from_bytes(data[k + 4:k + 8], "little")) & _M
        c = (c + int.from_bytes(data[k + 8:k + 12], "little")) & _M
        a = (a - c) & _M; a ^= _rot(c, 4); c = (c + b) & _M      # noqa: E702 - the mix, as published
        b = (b - a) & _M; b ^= _rot(a, 6); a = (a + c) & _M      # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 8); b = (b + a) & _M      # noqa: E702
        a = (a - c) & _M; a ^= _rot(c, 16); c = (c + b) & _M     # noqa: E702
        b = (b - a) & _M; b ^= _rot(a, 19); a = (a + c) & _M     # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 4); b = (b + a) & _M      # noqa: E702
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = data[k:k + length] + b"\0" * (12 - length)   # the fall-through switch adds zeros past the end
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b; c = (c - _rot(b, 14)) & _M     # noqa: E702 - the final mix
    a ^= c; a = (a - _rot(c, 11)) & _M     # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M     # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M     # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M      # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M     # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M     # noqa: E702
    return c


class SuperblockError(OSError):
    """The file's superblock is not one this module can safely rewrite."""


MARK_SPAN = 4096     # a run's root attributes (its trainspect_format value at byte ~148) lie in these


def carries_run_mark(path) -> bool:
    """Do the file's first bytes hold the trainspect run mark (``format.FORMAT_MAGIC``)? Read
    without HDF5, so it answers for a file HDF5 will not open (open for writing elsewhere, cut
    short) and changes nothing."""
    from .format import FORMAT_MAGIC

    import stat

    try:   # non-blocking, and regular files only: reading a FIFO waits for a writer for ever (trial 18 A9)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return FORMAT_MAGIC.encode() in os.read(fd, MARK_SPAN)
    except OSError:
        return False
    finally:
        os.close(fd)


def clear_write_flags(path) -> bool:
    """Clear a dead writer's flags; True if anything was changed. Raises SuperblockError."""
    with open(path, "r+b") as fh:
        head = fh.read(64)
        if head[:8] != SIGNATURE:
            raise SuperblockError("not an HDF5 file")
        version, offsets = head[8], head[9]
        if version not in (2, 3) or offsets not in (4, 8):
            raise SuperblockError(f"not a trainspect run file (HDF5 superblock version {version}; "
                                  "the recorder writes 2 or 3)")
        end = 12 + 4 * offsets
        stored = struct.unpack("<I", head[end:end + 4])[0]
        if lookup3(head[:end]) != stored:
            raise SuperblockError("its HDF5 superblock checksum does not match (a damaged file)")
        fmt = "<Q" if offsets == 8 else "<I"
        eoa_at = 12 + 2 * offsets
        eoa = struct.unpack(fmt, head[eoa_at:eoa_at + offsets])[0]
        size = os.fstat(fh.fileno()).st_size
        flags = head[11]
        if flags == 0 and eoa >= size:
            return False
        block = bytearray(head[:end])
        block[11] = 0
        block[eoa_at:eoa_at + offsets] = struct.pack(fmt, max(eoa, size))
        fh.seek(0)
        fh.write(bytes(block) + struct.pack("<I", lookup3(bytes(block))))
        fh.flush()
        os.fsync(fh.fileno())
        return True
