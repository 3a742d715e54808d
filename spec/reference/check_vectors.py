#!/usr/bin/env python3
"""Checks spec/vectors/*.json against the reference codec (PROTOCOL.md §10).

For each valid vector: decode(hex) == decoded and encode(decoded) == hex.
For each invalid vector: decode(hex) raises exactly the named error.
entries.json holds Entry records (§5.19), each with either "decoded" (checked
like a valid vector) or "error" (checked like an invalid one).

Prints one line per failure, then "N passed, M failed". Exits with status 1
if any vector failed or none was found, else 0. Runs from any directory.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VECTORS = HERE.parent / "vectors"

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, str(HERE))
from session_proto_ref import (  # noqa: E402
    DecodeError,
    decode_entry_record,
    decode_frame,
    encode_entry_record,
    encode_frame,
)


def canonical_json(value) -> str:
    """JSON text for comparison: key order ignored, but true != 1 and "1" != 1."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def load_vectors(filename: str, result_keys: tuple) -> list:
    """Loads one vector file; raises ValueError if it is not in the §10 format.

    Each vector has "name", "hex" and exactly one of `result_keys`.
    """
    vectors = json.loads((VECTORS / filename).read_text(encoding="utf-8"))
    if not isinstance(vectors, list):
        raise ValueError("expected a JSON array")
    for vector in vectors:
        if not isinstance(vector, dict) or not any(
            set(vector) == {"name", "hex", key} for key in result_keys
        ):
            expected = " or ".join(result_keys)
            raise ValueError(f"not a vector with name, hex, {expected}: {vector!r:.120}")
    return vectors


def parse_hex(text: str) -> bytes:
    """Vector hex is lowercase, two digits per byte, no separators (§10)."""
    if text != text.lower() or len(text) % 2 or " " in text:
        raise ValueError(f"hex is not lowercase pairs: {text!r:.60}")
    return bytes.fromhex(text)


def check_valid(vector: dict, decode=decode_frame, encode=encode_frame) -> list:
    """Returns the problems found with one valid vector (empty if it passes)."""
    problems = []
    expected = canonical_json(vector["decoded"])
    data = parse_hex(vector["hex"])
    try:
        decoded = canonical_json(decode(data))
        if decoded != expected:
            problems.append(f"decode gave {decoded}, expected {expected}")
    except DecodeError as exc:
        problems.append(f"decode raised {exc.error} ({exc.detail}), expected {expected}")
    try:
        encoded = encode(vector["decoded"]).hex()
        if encoded != vector["hex"]:
            problems.append(f"encode gave {encoded}, expected {vector['hex']}")
    except ValueError as exc:
        problems.append(f"encode raised {exc}")
    return problems


def check_invalid(vector: dict, decode=decode_frame) -> list:
    """Returns the problems found with one invalid vector (empty if it passes)."""
    expected = vector["error"]
    try:
        decoded = decode(parse_hex(vector["hex"]))
    except DecodeError as exc:
        if exc.error == expected:
            return []
        return [f"decode raised {exc.error} ({exc.detail}), expected {expected}"]
    return [f"decode succeeded with {canonical_json(decoded)}, expected {expected}"]


def check_entry(vector: dict) -> list:
    """An Entry record vector (§5.19, §10): valid if it has "decoded", else invalid."""
    if "decoded" in vector:
        return check_valid(vector, decode_entry_record, encode_entry_record)
    return check_invalid(vector, decode_entry_record)


def main() -> int:
    passed = failed = 0
    for filename, result_keys, check in (
        ("valid.json", ("decoded",), check_valid),
        ("invalid.json", ("error",), check_invalid),
        ("entries.json", ("decoded", "error"), check_entry),
    ):
        try:
            vectors = load_vectors(filename, result_keys)
        except (OSError, ValueError) as exc:
            print(f"{filename}: cannot load: {exc}")
            failed += 1
            continue
        for vector in vectors:
            try:
                problems = check(vector)
            except Exception as exc:  # a crash is a failure of this vector, not of the run
                problems = [f"unexpected {type(exc).__name__}: {exc}"]
            for problem in problems:
                print(f"{filename} {vector['name']}: {problem}")
            if problems:
                failed += 1
            else:
                passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
