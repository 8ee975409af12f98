"""Map-entry order at the protobuf wire level, so that ``delta.apply`` is byte-identical.

Python's protobuf (upb) writes a map field's entries in hash-table order, which
changes from process to process: a model with ``metadata.userDefined`` re-saved by
another process has the same content but other bytes. Every entry of one map
field is written as one run of consecutive records, so permuting those records
keeps every enclosing length prefix valid. ``map_orders`` records, for each map
occurrence in a serialized model, its entry keys in file order; ``reorder_maps``
permutes a serialization's entries into that order. Hand-written because no
protobuf API exposes or controls map entry order (the wire format is the
protobuf encoding spec's: varint tags, wire types 0/1/2/5).
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["map_orders", "reorder_maps"]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _records(data: bytes, start: int, end: int):
    """(field number, record start, payload start, payload end) of each record in data[start:end]."""
    pos = start
    while pos < end:
        begin = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            yield number, begin, pos, pos
        elif wire == 1:
            pos += 8
            yield number, begin, pos - 8, pos
        elif wire == 2:
            length, pos = _varint(data, pos)
            yield number, begin, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
            yield number, begin, pos - 4, pos
        else:
            raise ValueError(f"unsupported wire type {wire} at byte {begin}")


def _is_map(fd) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


@lru_cache(maxsize=None)
def _holds_map(descriptor, _seen: frozenset = frozenset()) -> bool:
    if descriptor.full_name in _seen:
        return False
    seen = _seen | {descriptor.full_name}
    return any(_is_map(fd) or (fd.message_type is not None and _holds_map(fd.message_type, seen))
               for fd in descriptor.fields)


def _key(data: bytes, start: int, end: int) -> str:
    for number, begin, _, stop in _records(data, start, end):
        if number == 1:
            return data[begin:stop].hex()
    return ""


def _walk(data: bytes, start: int, end: int, descriptor, path: str, found: dict) -> None:
    """Collect {map path: [(key, record start, record end), ...]} in file order."""
    counts: dict[int, int] = {}
    for number, begin, p_start, p_end in _records(data, start, end):
        fd = descriptor.fields_by_number.get(number)
        if fd is None or fd.message_type is None:
            continue
        if _is_map(fd):
            found.setdefault(f"{path}{fd.name}", []).append((_key(data, p_start, p_end), begin, p_end))
        elif _holds_map(fd.message_type):
            index = counts.get(number, 0)
            counts[number] = index + 1
            step = f"{fd.name}[{index}]" if fd.is_repeated else fd.name
            _walk(data, p_start, p_end, fd.message_type, f"{path}{step}.", found)


def map_orders(data: bytes, descriptor) -> dict[str, list[str]]:
    """For each map field occurrence with two or more entries: its entry keys (hex of the key record), in order."""
    found: dict[str, list] = {}
    _walk(data, 0, len(data), descriptor, "", found)
    return {path: [key for key, _, _ in entries] for path, entries in found.items() if len(entries) > 1}


def reorder_maps(data: bytes, descriptor, orders: dict[str, list[str]]) -> bytes:
    """``data`` with each recorded map's entries permuted into ``orders``' order (others untouched)."""
    found: dict[str, list] = {}
    _walk(data, 0, len(data), descriptor, "", found)
    out = bytearray(data)
    for path, wanted in orders.items():
        entries = found.get(path)
        if not entries or sorted(wanted) != sorted(key for key, _, _ in entries):
            continue
        first, last = entries[0][1], entries[-1][2]
        if sum(stop - begin for _, begin, stop in entries) != last - first:
            continue  # not one contiguous run: leave it
        by_key = {key: data[begin:stop] for key, begin, stop in entries}
        out[first:last] = b"".join(by_key[key] for key in wanted)
    return bytes(out)
