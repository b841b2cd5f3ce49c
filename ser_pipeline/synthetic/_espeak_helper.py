"""The espeak-ng helper process of :mod:`.spoken`: run as a script, never imported by the pipeline.

``python -I -S _espeak_helper.py LIBRARY DATA_DIR`` loads libespeak-ng once, initialises it
(data from ``DATA_DIR``, synchronous mode) and then serves requests on stdin until stdin closes.
For each request it forks a child that sets up the voice, synthesises and writes the int16
samples back through a pipe, then exits: every utterance starts from the same library state,
the one just after ``espeak_Initialize``, and no library is ever unloaded. The helper itself is
single-threaded and imports only the standard library (``-S``: not even site-packages), so the
fork is safe and cheap (about a millisecond).

The wire format (all integers little-endian): a request is an 8-byte length and that many bytes
of JSON ``{"markup", "voice", "rate", "wordgap", "volume", "seed"}``; a reply is one status byte
(``O``: the payload is the samples, native int16; ``E``: a UTF-8 error message) and an 8-byte
length then the payload. The helper sends one reply as soon as it starts: ``O`` with no payload
once the library is initialised, else ``E``. File descriptor 1 is pointed at stderr before
anything else runs, so nothing espeak prints can corrupt the replies.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

ESPEAK_SAMPLE_RATE = 22_050
CHILD_TIMEOUT_S = 120.0
"""A child that has not finished after this long is killed and its request reported as failed."""

_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8, _SSML = 1, 0x10
_INITIALIZE_DONT_EXIT = 0x8000
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LENGTH = struct.Struct("<Q")
_PROTOCOL_FDS: list[int] = []


def _read_exactly(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _reply(fd: int, status: bytes, payload: bytes) -> None:
    _write_all(fd, status + _LENGTH.pack(len(payload)) + payload)


def _load(library: str, data: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_SetVoiceByFile.argtypes = [ctypes.c_char_p]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
    if rate != ESPEAK_SAMPLE_RATE:
        raise RuntimeError(f"espeak-ng failed to initialise from {data} (returned {rate})")
    # The list of installed voices, which espeak otherwise reads (~290 files) the first time an
    # utterance selects a voice: read once here, every child inherits it.
    lib.espeak_ListVoices.restype = ctypes.c_void_p
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices(None)
    return lib


def _synthesize(lib: ctypes.CDLL, request: dict, voice_path: str) -> bytes:
    """In the child: the utterance's int16 samples as bytes."""
    chunks: list[bytes] = []

    @_SYNTH_CALLBACK
    def collect(wav, n, _events):
        if wav and n > 0:
            chunks.append(ctypes.string_at(wav, 2 * n))
        return 0

    lib.espeak_SetSynthCallback(collect)
    if lib.espeak_SetVoiceByFile(voice_path.encode()) != 0:
        raise RuntimeError(f"espeak-ng rejected the voice file:\n{request['voice']}")
    lib.espeak_ng_SetRandSeed(int(request["seed"]))
    for parameter, value in ((_RATE, request["rate"]), (_WORDGAP, request["wordgap"]),
                             (_VOLUME, request["volume"]), (_PITCH, 50), (_RANGE, 50)):
        lib.espeak_SetParameter(parameter, int(value), 0)
    encoded = request["markup"].encode()
    status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8 | _SSML, None, None)
    if status != 0:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    return b"".join(chunks)


def _child(lib: ctypes.CDLL, request: dict, voice_path: str, out: int) -> None:
    """Runs in the forked child and never returns: ``O`` or ``E`` then the payload, on ``out``."""
    code = 0
    try:
        try:
            _write_all(out, b"O" + _synthesize(lib, request, voice_path))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
            _write_all(out, b"E" + f"{type(err).__name__}: {err}".encode())
    except BaseException:  # noqa: BLE001 - whatever happens, never return into the helper's loop
        code = 1
    finally:
        os._exit(code)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"was killed by signal {name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _serve_one(lib: ctypes.CDLL, request: dict, voice_path: str) -> tuple[bytes, bytes]:
    with open(voice_path, "w") as f:
        f.write(request["voice"])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (read_end, *_PROTOCOL_FDS):
            os.close(fd)  # a stuck child must not keep the caller's pipes open if the helper dies
        _child(lib, request, voice_path, write_end)
    os.close(write_end)
    parts, deadline, timed_out = [], time.monotonic() + CHILD_TIMEOUT_S, False
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(read_end, 1 << 20)
            if not chunk:
                break
            parts.append(chunk)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    result = b"".join(parts)
    if timed_out:
        return b"E", f"the espeak-ng child took longer than {CHILD_TIMEOUT_S:.0f} s and was killed".encode()
    if status != 0 or not result:
        return b"E", f"the espeak-ng child {_describe(status)}".encode()
    return result[:1], result[1:]


def main(argv: list[str]) -> int:
    library, data = argv[1], argv[2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller's Ctrl-C is the caller's; stdin closing ends us
    requests, replies = os.dup(0), os.dup(1)
    _PROTOCOL_FDS[:] = [requests, replies]
    os.dup2(2, 1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    try:
        lib = _load(library, data)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
        _reply(replies, b"E", f"{type(err).__name__}: {err}".encode())
        return 1
    tmp = tempfile.mkdtemp(prefix="ser-espeak-")
    voice_path = os.path.join(tmp, "voice")
    try:
        _reply(replies, b"O", b"")
        while True:
            header = _read_exactly(requests, _LENGTH.size)
            if header is None:
                return 0
            body = _read_exactly(requests, _LENGTH.unpack(header)[0])
            if body is None:
                return 0
            _reply(replies, *_serve_one(lib, json.loads(body), voice_path))
    except BrokenPipeError:
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
