"""CIFAR-10's pickle dialect: writing batch files exactly as Python 2 and numpy 1 wrote them.

The original ``cifar-10-batches-py`` files were written by Python 2's ``cPickle`` at
protocol 2 from dicts of Python 2 ``str`` (byte strings), ints, lists and a numpy 1
``uint8`` array. Python 3's pickler cannot reproduce them: it writes ``bytes`` at protocol 2
as ``_codecs.encode(text, "latin1")`` calls, which Keras' CIFAR reader
(``keras.datasets.cifar.load_batch``, a restricted unpickler) refuses, and which make the
files about 10% larger (every pixel byte >= 0x80 is two bytes of UTF-8 text). This module
emits the opcodes itself, so generated files are what the originals are: the same
constructs, the same globals, about the same size.

Opcode layout (protocol 2; ``put`` is BINPUT ``q i`` below 256 else LONG_BINPUT ``r i4``)::

    PROTO 2                                         \\x80\\x02, once, then the value, then STOP .
    str / bytes   SHORT_BINSTRING U len1 raw        (len < 256)  or  BINSTRING T len4 raw;
                  put when longer than 1 byte (cPickle did not memoize 1-byte strings)
    int           BININT1 K u1 (0..255), BININT2 M u2 (256..65535), else BININT J i4
    bool, None    NEWTRUE \\x88, NEWFALSE \\x89, NONE N
    tuple         EMPTY_TUPLE ), or items + TUPLE1/2/3 (\\x85 \\x86 \\x87), or MARK ( items
                  TUPLE t; then put
    list          EMPTY_LIST ] put, then per 1000 items: MARK items APPENDS e (one item:
                  item APPEND a)
    dict          EMPTY_DICT } put, then per 1000 items: MARK key value ... SETITEMS u
                  (one item: key value SETITEM s); keys in the dict's order
    uint8 array   GLOBAL c "numpy.core.multiarray\\n_reconstruct\\n" put
                  GLOBAL c "numpy\\nndarray\\n" put   K 0 TUPLE1 put   U "b"   TUPLE3 put
                  REDUCE R put                                  -> an empty ndarray
                  MARK  K 1  shape-tuple
                        GLOBAL c "numpy\\ndtype\\n" put  U "u1" put  K 0 K 1 TUPLE3 put
                        REDUCE R put  MARK K 3 U "|" N N N J -1 J -1 K 0 TUPLE t put
                        BUILD b                                  -> dtype('uint8')
                        NEWFALSE (C order)  BINSTRING T len4 pixel-bytes (not memoized)
                  TUPLE t put  BUILD b                          -> __setstate__ fills it

The only globals are ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
``numpy.dtype`` (numpy 1's module name, which numpy 2 still resolves for old pickles), the
exact set Keras' restricted unpickler allows. Read back with
``pickle.load(f, encoding="bytes")``, every string is ``bytes``, as with the originals.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

#: The globals a file written here may name: (module, name).
GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})

_BATCH = 1000  # items per APPENDS / SETITEMS, as both picklers batch them


def dumps(obj: Any) -> bytes:
    """``obj`` pickled as Python 2's cPickle (protocol 2) with numpy 1 would have.

    Supports what CIFAR-10's files contain: dicts, lists, tuples, str / bytes (written as
    Python 2 ``str``), int, bool, None and C-contiguous ``uint8`` numpy arrays.

    Raises:
        TypeError: anything else (floats, other arrays), which the originals never held.
    """
    writer = _Writer()
    writer.parts.append(b"\x80\x02")
    writer.save(obj)
    writer.parts.append(b".")
    return b"".join(writer.parts)


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.memo_size = 0

    def put(self) -> None:
        index = self.memo_size
        self.memo_size += 1
        self.parts.append(b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index))

    def save(self, obj: Any) -> None:
        if isinstance(obj, bytes | str):
            self.string(obj.encode("utf-8") if isinstance(obj, str) else obj)
        elif obj is None:
            self.parts.append(b"N")
        elif isinstance(obj, bool):
            self.parts.append(b"\x88" if obj else b"\x89")
        elif isinstance(obj, int | np.integer) and not isinstance(obj, np.bool_):
            self.integer(int(obj))
        elif isinstance(obj, tuple):
            self.tuple(obj)
        elif isinstance(obj, list):
            self.list(obj)
        elif isinstance(obj, dict):
            self.dict(obj)
        elif isinstance(obj, np.ndarray):
            self.uint8_array(obj)
        else:
            raise TypeError(f"CIFAR-10 files hold no {type(obj).__name__}")

    def string(self, raw: bytes, *, memoize: bool = True) -> None:
        if len(raw) < 256:
            self.parts.append(b"U" + bytes([len(raw)]))
        elif len(raw) < 2**31:
            self.parts.append(b"T" + struct.pack("<i", len(raw)))  # Python 2: a signed int
        else:
            raise TypeError("a Python 2 str holds less than 2 GiB")
        self.parts.append(raw)
        if memoize and len(raw) > 1:
            self.put()

    def integer(self, value: int) -> None:
        if 0 <= value < 256:
            self.parts.append(b"K" + bytes([value]))
        elif 0 <= value < 65536:
            self.parts.append(b"M" + struct.pack("<H", value))
        elif -(2**31) <= value < 2**31:
            self.parts.append(b"J" + struct.pack("<i", value))
        else:
            raise TypeError(f"integer {value} does not fit Python 2's BININT")

    def tuple(self, items: tuple[Any, ...]) -> None:
        if not items:
            self.parts.append(b")")
            return
        if len(items) <= 3:
            for item in items:
                self.save(item)
            self.parts.append(b"\x85\x86\x87"[len(items) - 1:len(items)])
        else:
            self.parts.append(b"(")
            for item in items:
                self.save(item)
            self.parts.append(b"t")
        self.put()

    def list(self, items: list[Any]) -> None:
        self.parts.append(b"]")
        self.put()
        for start in range(0, len(items), _BATCH):
            batch = items[start:start + _BATCH]
            if len(batch) == 1:
                self.save(batch[0])
                self.parts.append(b"a")
                continue
            self.parts.append(b"(")
            for item in batch:
                self.save(item)
            self.parts.append(b"e")

    def dict(self, mapping: dict[Any, Any]) -> None:
        self.parts.append(b"}")
        self.put()
        items = list(mapping.items())
        for start in range(0, len(items), _BATCH):
            batch = items[start:start + _BATCH]
            if len(batch) == 1:
                self.save(batch[0][0])
                self.save(batch[0][1])
                self.parts.append(b"s")
                continue
            self.parts.append(b"(")
            for key, value in batch:
                self.save(key)
                self.save(value)
            self.parts.append(b"u")

    def global_(self, module: str, name: str) -> None:
        self.parts.append(b"c" + f"{module}\n{name}\n".encode())
        self.put()

    def uint8_array(self, array: np.ndarray) -> None:
        if array.dtype != np.uint8 or not array.flags.c_contiguous:
            raise TypeError(f"only C-contiguous uint8 arrays, not {array.dtype}")
        self.global_("numpy.core.multiarray", "_reconstruct")
        self.global_("numpy", "ndarray")
        self.tuple((0,))
        self.string(b"b")
        self.parts.append(b"\x87")  # TUPLE3: (ndarray, (0,), "b")
        self.put()
        self.parts.append(b"R")
        self.put()
        self.parts.append(b"(K\x01")  # MARK, state version 1
        self.tuple(tuple(int(n) for n in array.shape))
        self.global_("numpy", "dtype")
        self.string(b"u1")
        self.parts.append(b"K\x00K\x01\x87")  # (u1, 0, 1): numpy 1 passed ints
        self.put()
        self.parts.append(b"R")
        self.put()
        self.tuple((3, b"|", None, None, None, -1, -1, 0))
        self.parts.append(b"b\x89")  # BUILD the dtype; NEWFALSE: not Fortran order
        self.string(memoryview(array).cast("B"), memoize=False)  # type: ignore[arg-type]
        self.parts.append(b"t")  # TUPLE: the 5-item state (MARK above)
        self.put()
        self.parts.append(b"b")  # BUILD the array
