"""Content hashes of files: what says two files hold the same bytes (renames, changes, provenance)."""

from __future__ import annotations

import threading

import xxhash

__all__ = ["content_hash"]

_HASH_CHUNK = 1 << 20
_hash_buffers = threading.local()


def content_hash(path: str) -> str | None:
    """XXH3-128 of a file's bytes; None if unreadable.

    The bytes come in 1 MiB pieces into one buffer per thread: copying them from the page
    cache costs less CPU than a memory map's page faults. A 128-bit hash tells one file's
    content from another's (renames, changes, provenance) at memory speed; it is not meant
    to resist deliberate forgery.
    """
    buffer = getattr(_hash_buffers, "buffer", None)
    if buffer is None:
        buffer = _hash_buffers.buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    digest = xxhash.xxh3_128()
    try:
        with open(path, "rb", buffering=0) as stream:
            while n := stream.readinto(buffer):
                digest.update(view[:n])
    except (OSError, ValueError):
        return None
    return digest.hexdigest()
