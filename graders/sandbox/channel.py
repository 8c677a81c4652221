"""The result channel: a pipe from the sandboxed executor to the host.

A frame is an 8-byte big-endian length, then that many bytes of UTF-8 JSON (an object
with a ``kind``). The executor (``execute_inside``) writes, the host's
:class:`FrameReader` reads. Only the executor holds the write end (see
``execute_inside.seal_result_channel``), so the student's code cannot add, change or
replace a frame; what a frame says about a cell's outputs is still what the kernel sent.

Both ends use only the standard library: the executor imports this inside the sandbox.
"""

from __future__ import annotations

import json
import os
import struct
import threading

HEADER = struct.Struct(">Q")


def send_to_end(fd: int, data: bytes) -> None:
    """Write ``data`` to the pipe ``fd`` and close it: the reader (a process waiting for its
    input) reads to end of file. A reader that has already ended is no error here: its
    own status says why."""
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass


def encode_frame(frame: dict) -> bytes:
    """``frame`` as one length-prefixed JSON frame."""
    body = json.dumps(frame, default=str).encode("utf-8")
    return HEADER.pack(len(body)) + body


class FrameReader(threading.Thread):
    """Drain the read end ``fd`` and decode frames, keeping at most ``cap`` bytes.

    After the writer is gone: ``frames`` holds the decoded frames in order; ``overflow``
    is True when the frames came to more than ``cap`` bytes (the rest was read and
    dropped, so the writer never blocks); ``cut_short`` is True when the channel ended
    inside a frame (the writer was killed while writing: the frames before it stand);
    ``error`` names a malformed frame, after which nothing more is decoded. The thread
    closes ``fd``.
    """

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.cap = cap
        self.frames: list[dict] = []
        self.overflow = False
        self.error: str | None = None
        self.cut_short = False
        self._kept = 0

    def run(self) -> None:
        buffer = bytearray()
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 1 << 20)
                except OSError:
                    break
                if not chunk:
                    break
                if self.overflow or self.error:
                    continue  # keep draining, decode nothing more
                self._kept += len(chunk)
                if self._kept > self.cap:
                    self.overflow = True
                    buffer.clear()
                    continue
                buffer += chunk
                self._decode(buffer)
            if buffer and not (self.overflow or self.error):
                self.cut_short = True
        finally:
            os.close(self.fd)

    def _decode(self, buffer: bytearray) -> None:
        while len(buffer) >= HEADER.size and not self.error:
            (size,) = HEADER.unpack_from(buffer)
            if size > self.cap:
                self.error = f"a frame of {size} bytes is over the cap of {self.cap}"
                return
            if len(buffer) < HEADER.size + size:
                return
            body = bytes(buffer[HEADER.size : HEADER.size + size])
            del buffer[: HEADER.size + size]
            try:
                frame = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                self.error = f"a frame is not JSON: {type(exc).__name__}: {str(exc)[:200]}"
                return
            if not isinstance(frame, dict) or not isinstance(frame.get("kind"), str):
                self.error = "a frame is not an object with a kind"
                return
            self.frames.append(frame)
