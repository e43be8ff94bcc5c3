#!/usr/bin/env python3
"""Writes the hand-made inputs in regressions/ (the fuzzer's finds are added
there as they are, named crash-*, timeout-*, leak-* or fuzz-*).

Files named valid-* must parse; every other file must be refused with a
BeamError. The unit test BeamRegressions replays them all.
Run from this directory: python3 make_regressions.py
"""

import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")


def u32(value):
    return struct.pack(">I", value & 0xFFFFFFFF)


def chunk(cid, data):
    return cid + u32(len(data)) + data + b"\0" * ((4 - len(data) % 4) % 4)


def form(chunks, length_delta=0):
    body = b"BEAM" + b"".join(chunks)
    return b"FOR1" + u32(len(body) + length_delta) + body


def compact_u(n):
    if n < 16:
        return bytes([n << 4])
    return bytes([((n >> 3) & 0xE0) | 0x08, n & 0xFF])


def atoms(names, compact=False):
    if compact:
        return u32(-len(names)) + b"".join(compact_u(len(n)) + n for n in names)
    return u32(len(names)) + b"".join(bytes([len(n)]) + n for n in names)


# header size, instruction set 0, highest opcode, labels, functions; then
# label 1, func_info, label 2, return, int_code_end.
CODE = u32(16) + u32(0) + u32(19) + u32(3) + u32(1) + bytes([1, 0x10, 2, 0x12, 0x22, 0x00, 1, 0x20, 19, 3])


def module(atom_chunk=None, code=CODE, imports=u32(0), exports=None, extra=()):
    exports = u32(1) + u32(2) + u32(0) + u32(2) if exports is None else exports
    chunks = [
        chunk(b"AtU8", atom_chunk or atoms([b"m", b"f"])),
        chunk(b"Code", code),
        chunk(b"StrT", b""),
        chunk(b"ImpT", imports),
        chunk(b"ExpT", exports),
    ]
    return chunks + [chunk(cid, data) for cid, data in extra]


def literals(table, declared=None):
    declared = len(table) if declared is None else declared
    return u32(declared) + zlib.compress(table)


CASES = {
    "valid-minimal.beam": form(module()),
    "valid-compact-atoms.beam": form(module(atoms([b"m", b"f"], compact=True))),
    "valid-legacy-atom-chunk.beam": form(
        [chunk(b"Atom", atoms([b"m", b"f\xe9"]))] + module()[1:4] + [chunk(b"ExpT", u32(1) + u32(2) + u32(0) + u32(2))]
    ),
    "valid-one-literal.beam": form(
        module(extra=[(b"LitT", literals(u32(1) + u32(2) + bytes([131, 106])))])
    ),
    "for1-length-off-by-four.beam": form(module(), length_delta=4),
    "chunk-size-ffffffff.beam": b"FOR1" + u32(12) + b"BEAM" + b"AtU8" + u32(0xFFFFFFFF),
    "atom-count-int32-min.beam": form(module(u32(0x80000000) + b"\x10m")),
    # 0x15555556 * 12 wraps to 8 in 32-bit arithmetic.
    "import-count-wraps-32-bits.beam": form(module(imports=u32(0x15555556) + u32(1) + u32(2))),
    "litt-declares-4-gib.beam": form(module(extra=[(b"LitT", u32(0xFFFFFFFF) + zlib.compress(b"x"))])),
    # 8 MiB of zeros in about 8 KiB: inflated in full, then refused.
    "litt-zip-bomb.beam": form(module(extra=[(b"LitT", literals(bytes(8 << 20)))])),
    "litt-literal-size-wraps.beam": form(
        module(extra=[(b"LitT", literals(u32(1) + u32(0xFFFFFFFF) + bytes([131])))])
    ),
    "code-header-size-ffffffff.beam": form(module(code=u32(0xFFFFFFFF) + CODE[4:])),
    "compact-atom-length-nested-form.beam": form(module(u32(-1) + b"\xf8\x00" + bytes(9))),
    "duplicate-code-chunk.beam": form(module() + [chunk(b"Code", CODE)]),
    "empty-form.beam": form([]),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in CASES.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
