"""Independent reference codec for session-proto v1 frames.

Written from spec/PROTOCOL.md alone, as a test tool: it checks that the
specification, the test vectors and other implementations agree. It favours
being obviously correct over being fast; do not use it in production.

Section numbers in comments ("§4.1") refer to PROTOCOL.md.

Public API:

- decode_frame(data, max_body) -> dict   whole-frame decode (§4.1, steps 1-8)
- encode_frame(decoded, max_body) -> bytes  canonical encoder (§3.10)
- DecodeError   raised by decode_frame; .error is the §4.2 error name
- EncodeError   a ValueError raised by encode_frame for a message that a
                decoder would reject; .error is the §4.2 error name
- decode_entry_record(data) -> dict   one whole Entry record of a listing (§5.19)
- encode_entry_record(decoded) -> bytes  its canonical encoding

Messages use the JSON form of the test vectors (§10); Entry records use the
form of spec/vectors/entries.json (§10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "DecodeError",
    "EncodeError",
    "decode_entry_record",
    "decode_frame",
    "encode_entry_record",
    "encode_frame",
]

# --- Limits (§2.2) ---------------------------------------------------------

PROTOCOL_VERSION = 1
HEADER_LEN = 6
MAX_BODY_LEN = 0xFF_FFFF
MIN_MAX_FRAME = 16_384
DEFAULT_MAX_FRAME = 131_072
MAX_TOKEN_LEN = 32
MAX_MESSAGE_LEN = 256
MAX_TERM_LEN = 64
MAX_COMMAND_LEN = 4_096
MAX_HOST_LEN = 255
MAX_ENV = 16
MAX_ENV_NAME_LEN = 64
MAX_ENV_VALUE_LEN = 256
MAX_PATH_LEN = 4_096
DIGEST_LEN = 32
MAX_ENTRY_LEN = 8_219
MAX_SESSION_ID_LEN = 64
MAX_INSTANCE_LEN = 64

# Mode bounds (§5.19): a request asks for permission bits only; a Start or an
# Entry reports them with set-user-id, set-group-id and sticky bits.
REQUEST_MODE_MAX = 0o777
FILE_MODE_MAX = 0o7777

FIRST_IGNORABLE_CODE = 0x80  # 0x80..=0xFF are ignorable (§9.2): Reason, or an Extension

STREAM_NAMES = ("stdin", "stdout", "stderr")  # Data `stream` values 0, 1, 2 (§6.1)

# Open kind indexes (§5.5) and ExitStatus variant indexes (§5.13).
OPEN_SHELL, OPEN_EXEC, OPEN_FORWARD, OPEN_FILE = 0, 1, 2, 4
DEFINED_OPEN_KINDS = (OPEN_SHELL, OPEN_EXEC, OPEN_FORWARD, OPEN_FILE)  # index 3 stays unknown

# FileRequest variant indexes (§5.19), in index order: 0 home .. 8 chmod.
FILE_OPS = ("home", "stat", "list", "read", "write", "mkdir", "rename", "remove", "chmod")
# FileEvent variant indexes (§5.19), in index order.
FILE_EVENTS = ("start", "end", "done", "failed")
EXIT_CODE, EXIT_SIGNAL = 0, 1


# --- Errors ----------------------------------------------------------------


class DecodeError(Exception):
    """A frame was rejected; `error` is the §4.2 error name, e.g. "bad_varint".

    `str(exc)` is exactly the error name; `detail` says what was wrong.
    """

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


class EncodeError(ValueError):
    """A message that a conforming decoder would reject (§3.10).

    `error` is the error name a decoder would raise, e.g. "too_long".
    Malformed JSON forms (missing keys, wrong types) raise plain ValueError.
    """

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail


# --- Field rules shared by decoder and encoder -------------------------------


@dataclass(frozen=True)
class VarintType:
    """An unsigned LEB128 integer type (§3.2)."""

    name: str
    bits: int
    max_bytes: int
    last_byte_max: int  # largest value allowed in byte number `max_bytes`

    @property
    def max_value(self) -> int:
        return (1 << self.bits) - 1


U16 = VarintType("u16", bits=16, max_bytes=3, last_byte_max=0x03)
U32 = VarintType("u32", bits=32, max_bytes=5, last_byte_max=0x0F)
U64 = VarintType("u64", bits=64, max_bytes=10, last_byte_max=0x01)


@dataclass(frozen=True)
class LengthRule:
    """Rules of one str or bytes field (§3.6 checks 2 and 5)."""

    field: str
    max_len: int
    non_empty: bool = False
    forbidden: str = ""  # characters that make a str `invalid_value`

    def check_length(self, length: int, fail: Callable[[str, str], Exception]) -> None:
        if length > self.max_len:
            raise fail("too_long", f"{self.field}: {length} bytes > {self.max_len}")

    def check_content(self, value: str | bytes, fail: Callable[[str, str], Exception]) -> None:
        if self.non_empty and len(value) == 0:
            raise fail("invalid_value", f"{self.field} must not be empty")
        for char in self.forbidden:
            needle = char if isinstance(value, str) else char.encode("ascii")
            if needle in value:
                raise fail("invalid_value", f"{self.field} must not contain {char!r}")


MESSAGE_RULE = LengthRule("message", MAX_MESSAGE_LEN)
TOKEN_RULE = LengthRule("resume token", MAX_TOKEN_LEN, non_empty=True)
TERM_RULE = LengthRule("term", MAX_TERM_LEN, forbidden="\0")
COMMAND_RULE = LengthRule("command", MAX_COMMAND_LEN, non_empty=True, forbidden="\0")
HOST_RULE = LengthRule("host", MAX_HOST_LEN, non_empty=True, forbidden="\0")
ENV_NAME_RULE = LengthRule("env name", MAX_ENV_NAME_LEN, non_empty=True, forbidden="\0=")
ENV_VALUE_RULE = LengthRule("env value", MAX_ENV_VALUE_LEN, forbidden="\0")
SESSION_ID_RULE = LengthRule("session id", MAX_SESSION_ID_LEN, non_empty=True)
ENTRY_NAME_RULE = LengthRule("entry name", MAX_PATH_LEN, non_empty=True, forbidden="\0")
ENTRY_TARGET_RULE = LengthRule("entry target", MAX_PATH_LEN, forbidden="\0")


class PathRule(LengthRule):
    """A `path` field (§5.19): bytes, at most MAX_PATH_LEN, absolute and normal."""

    def __init__(self, field: str) -> None:
        super().__init__(field, MAX_PATH_LEN)

    def check_content(self, value: bytes, fail: Callable[[str, str], Exception]) -> None:
        problem = _path_problem(value)
        if problem:
            raise fail("invalid_value", f"{self.field}: {problem}")


def _path_problem(path: bytes) -> str:
    """Why `path` is not absolute and normal (§5.19), or "" if it is."""
    if path[:1] != b"/":
        return "not absolute (first byte is not /)"
    if b"\0" in path:
        return "contains NUL"
    if path == b"/":
        return ""  # the root is normal although its one component is empty
    for component in path[1:].split(b"/"):
        if component in (b"", b".", b".."):
            return f"component {component!r} (empty, . or ..)"
    return ""


class InstanceRule(LengthRule):
    """OpenOn `instance` (§5.21): 1 to MAX_INSTANCE_LEN bytes of A-Z a-z 0-9 - _ . @."""

    ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.@")

    def __init__(self) -> None:
        super().__init__("instance", MAX_INSTANCE_LEN, non_empty=True)

    def check_content(self, value: str, fail: Callable[[str, str], Exception]) -> None:
        super().check_content(value, fail)
        for char in value:
            if char not in self.ALLOWED:
                raise fail("invalid_value", f"instance: {char!r} is not A-Z a-z 0-9 - _ . @")


INSTANCE_RULE = InstanceRule()


PATH_RULE = PathRule("path")
FROM_RULE = PathRule("from")
TO_RULE = PathRule("to")


def _check_mode(mode: int, maximum: int, fail: Callable[[str, str], Exception]) -> None:
    """Mode bounds (§5.19): REQUEST_MODE_MAX in a request, FILE_MODE_MAX in Start/Entry."""
    if mode > maximum:
        raise fail("invalid_value", f"mode {mode:#o} > {maximum:#o}")


def _check_prefix(has_prefix: bool, offset: int, fail: Callable[[str, str], Exception]) -> None:
    """Read and Write: `prefix` is Some exactly when `offset` > 0 (§5.19)."""
    if has_prefix != (offset > 0):
        state = "Some" if has_prefix else "None"
        raise fail("invalid_value", f"prefix {state} with offset {offset}")


def _check_write_offset(offset: int, size: int, fail: Callable[[str, str], Exception]) -> None:
    """Write: `offset` > `size` is invalid (§5.19)."""
    if offset > size:
        raise fail("invalid_value", f"write offset {offset} > size {size}")


def _check_receiver_maximum(max_body: int) -> None:
    """A receiver maximum is a Hello `max_frame`, so it has the same range (§2.3)."""
    if isinstance(max_body, bool) or not isinstance(max_body, int):
        raise TypeError("max_body must be an int")
    if not MIN_MAX_FRAME <= max_body <= MAX_BODY_LEN:
        raise ValueError(f"max_body must be in {MIN_MAX_FRAME}..={MAX_BODY_LEN} (§2.3)")


# --- Decoding ----------------------------------------------------------------


class BodyReader:
    """Reads the fields of one frame body in order; never reads past the body."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._pos = 0

    def remaining(self) -> int:
        return len(self._body) - self._pos

    def u8(self, field: str) -> int:
        if self.remaining() < 1:
            raise DecodeError("truncated", f"{field}: body ends")
        value = self._body[self._pos]
        self._pos += 1
        return value

    def varint(self, kind: VarintType, field: str) -> int:
        """The read_varint procedure of §3.2, check for check."""
        value = 0
        for i in range(kind.max_bytes):
            byte = self.u8(field)
            if i == kind.max_bytes - 1 and byte > kind.last_byte_max:
                raise DecodeError("bad_varint", f"{field}: too long or overflows {kind.name}")
            value |= (byte & 0x7F) << (7 * i)
            if byte & 0x80 == 0:
                if i > 0 and byte == 0x00:
                    raise DecodeError("bad_varint", f"{field}: overlong {kind.name}")
                return value
        raise AssertionError("unreachable: the last byte check stops the loop")

    def bool(self, field: str) -> bool:
        tag = self.u8(field)
        if tag > 1:
            raise DecodeError("invalid_value", f"{field}: bool byte {tag:#04x}")
        return tag == 1

    def option_tag(self, field: str) -> bool:
        """Reads an Option tag (§3.4); True means Some."""
        tag = self.u8(field)
        if tag > 1:
            raise DecodeError("invalid_value", f"{field}: option tag {tag:#04x}")
        return tag == 1

    def bytes(self, rule: LengthRule) -> bytes:
        """A length-prefixed byte string, checks 1-3 and 5 of §3.6."""
        raw = self._length_prefixed(rule)
        rule.check_content(raw, DecodeError)
        return raw

    def str(self, rule: LengthRule) -> str:
        """A length-prefixed UTF-8 string, checks 1-5 of §3.6."""
        raw = self._length_prefixed(rule)
        try:
            text = raw.decode("utf-8")  # strict: RFC 3629, no surrogates
        except UnicodeDecodeError:
            raise DecodeError("bad_utf8", f"{rule.field} is not well-formed UTF-8") from None
        rule.check_content(text, DecodeError)
        return text

    def list_count(self, field: str, max_count: int) -> int:
        count = self.varint(U32, f"{field} count")
        if count > max_count:
            raise DecodeError("too_long", f"{field}: {count} entries > {max_count}")
        return count

    def digest(self, field: str) -> bytes:
        """A Digest (§5.19): exactly DIGEST_LEN bytes, no length before them."""
        if self.remaining() < DIGEST_LEN:
            raise DecodeError("truncated", f"{field}: {self.remaining()} of {DIGEST_LEN} bytes")
        return self.take(DIGEST_LEN)

    def mode(self, maximum: int) -> int:
        """A Mode (§5.19): a u32, then its bound."""
        mode = self.varint(U32, "mode")
        _check_mode(mode, maximum, DecodeError)
        return mode

    def take(self, count: int) -> bytes:
        """The next `count` bytes; the caller has checked that they are there."""
        assert count <= self.remaining()
        raw = self._body[self._pos : self._pos + count]
        self._pos += count
        return raw

    def rest(self) -> bytes:
        """A rest-of-body field (§3.9): every remaining byte, possibly none."""
        raw = self._body[self._pos :]
        self._pos = len(self._body)
        return raw

    def _length_prefixed(self, rule: LengthRule) -> bytes:
        length = self.varint(U32, f"{rule.field} length")
        rule.check_length(length, DecodeError)
        if self.remaining() < length:
            raise DecodeError("truncated", f"{rule.field}: {length} bytes announced")
        return self.take(length)


def _decode_window_size(reader: BodyReader) -> dict:
    return {
        "cols": reader.varint(U16, "cols"),
        "rows": reader.varint(U16, "rows"),
        "width_px": reader.varint(U16, "width_px"),
        "height_px": reader.varint(U16, "height_px"),
    }


def _decode_pty(reader: BodyReader) -> dict:
    return {"term": reader.str(TERM_RULE), **_decode_window_size(reader)}


def _decode_env(reader: BodyReader) -> list:
    count = reader.list_count("env", MAX_ENV)
    return [
        {"name": reader.str(ENV_NAME_RULE), "value": reader.str(ENV_VALUE_RULE)}
        for _ in range(count)
    ]


def _decode_hello(reader: BodyReader) -> dict:
    version = reader.varint(U16, "version")
    if version != PROTOCOL_VERSION:  # checked before any later field (§5.2)
        raise DecodeError("unsupported_version", f"version {version}")
    capabilities = reader.varint(U64, "capabilities")
    max_frame = reader.varint(U32, "max_frame")
    if not MIN_MAX_FRAME <= max_frame <= MAX_BODY_LEN:
        raise DecodeError("invalid_value", f"max_frame {max_frame} out of range")
    initial_window = reader.varint(U32, "initial_window")
    keepalive_ms = reader.varint(U32, "keepalive_ms")
    resume = None
    if reader.option_tag("resume"):
        token = reader.bytes(TOKEN_RULE)
        offset = reader.varint(U64, "offset")
        resume = {"token_hex": token.hex(), "offset": str(offset)}
    return {
        "capabilities": str(capabilities),
        "max_frame": max_frame,
        "initial_window": initial_window,
        "keepalive_ms": keepalive_ms,
        "resume": resume,
    }


def _decode_nonce(reader: BodyReader) -> dict:
    return {"nonce": str(reader.varint(U64, "nonce"))}


def _decode_ack(reader: BodyReader) -> dict:
    return {"offset": str(reader.varint(U64, "offset"))}


def _decode_go_away(reader: BodyReader) -> dict:
    return {"code": reader.varint(U32, "code"), "message": reader.str(MESSAGE_RULE)}


def _decode_open(reader: BodyReader) -> dict:
    index = reader.varint(U32, "kind index")
    if index == OPEN_SHELL:
        kind = {"kind": "shell", "pty": _decode_pty(reader), "env": _decode_env(reader)}
    elif index == OPEN_EXEC:
        command = reader.str(COMMAND_RULE)
        pty = _decode_pty(reader) if reader.option_tag("pty") else None
        kind = {"kind": "exec", "command": command, "pty": pty, "env": _decode_env(reader)}
    elif index == OPEN_FORWARD:
        host = reader.str(HOST_RULE)
        port = reader.varint(U16, "port")
        if port == 0:
            raise DecodeError("invalid_value", "port 0")
        kind = {"kind": "forward", "host": host, "port": port}
    elif index == OPEN_FILE:
        kind = {"kind": "file", "request": _decode_file_request(reader)}
    else:  # unknown kinds (index 3 among them) are valid; the receiver refuses them (§5.5)
        kind = {"kind": "unknown", "index": index, "params_hex": reader.rest().hex()}
    return {"kind": kind}


def _decode_prefix(reader: BodyReader, offset: int) -> str | None:
    """Read/Write `prefix`: Option<Digest>, Some exactly when offset > 0 (§5.19).

    The rule is checked once the whole field has been read (§4.1 step 7).
    """
    prefix = reader.digest("prefix") if reader.option_tag("prefix") else None
    _check_prefix(prefix is not None, offset, DecodeError)
    return None if prefix is None else prefix.hex()


def _decode_file_request(reader: BodyReader) -> dict:
    """FileRequest (§5.19), fields in order, each checked as it is read."""
    index = reader.varint(U32, "request index")
    if index >= len(FILE_OPS):  # unknown requests decode, like unknown kinds (§5.19)
        return {"op": "unknown", "index": index, "params_hex": reader.rest().hex()}
    op = FILE_OPS[index]
    request: dict = {"op": op}
    if op == "home":
        pass
    elif op in ("stat", "list", "remove"):
        request["path_hex"] = reader.bytes(PATH_RULE).hex()
    elif op == "read":
        request["path_hex"] = reader.bytes(PATH_RULE).hex()
        offset = reader.varint(U64, "offset")
        request["offset"] = str(offset)
        request["prefix_hex"] = _decode_prefix(reader, offset)
    elif op == "write":
        request["path_hex"] = reader.bytes(PATH_RULE).hex()
        size = reader.varint(U64, "size")
        request["size"] = str(size)
        request["mode"] = reader.mode(REQUEST_MODE_MAX)
        request["overwrite"] = reader.bool("overwrite")
        offset = reader.varint(U64, "offset")
        _check_write_offset(offset, size, DecodeError)  # a rule of `offset`, checked as read
        request["offset"] = str(offset)
        request["prefix_hex"] = _decode_prefix(reader, offset)
    elif op in ("mkdir", "chmod"):
        request["path_hex"] = reader.bytes(PATH_RULE).hex()
        request["mode"] = reader.mode(REQUEST_MODE_MAX)
    elif op == "rename":
        request["from_hex"] = reader.bytes(FROM_RULE).hex()
        request["to_hex"] = reader.bytes(TO_RULE).hex()
        request["overwrite"] = reader.bool("overwrite")
    else:
        raise AssertionError(f"unhandled request {op}")
    return request


def _decode_file(reader: BodyReader) -> dict:
    """File message (0x1B): enum FileEvent (§5.19)."""
    index = reader.varint(U32, "event index")
    if index >= len(FILE_EVENTS):
        raise DecodeError("invalid_value", f"file event index {index}")
    name = FILE_EVENTS[index]
    if name == "start":
        event = {
            "event": name,
            "offset": str(reader.varint(U64, "offset")),
            "size": str(reader.varint(U64, "size")),
            "mode": reader.mode(FILE_MODE_MAX),
            "mtime": str(reader.varint(U64, "mtime")),
        }
    elif name == "end":
        size = str(reader.varint(U64, "size"))
        event = {"event": name, "size": size, "sha256_hex": reader.digest("sha256").hex()}
    elif name == "done":
        event = {"event": name}
    else:
        # Any u32 error decodes; unknown ones mean UNSPECIFIED (§6.8).
        error = reader.varint(U32, "error")
        event = {"event": name, "error": error, "message": reader.str(MESSAGE_RULE)}
    return {"event": event}


def _decode_open_on(reader: BodyReader) -> dict:
    """OpenOn (0x1C, §5.21): the instance, then an Open body."""
    instance = reader.str(INSTANCE_RULE)
    return {"instance": instance, **_decode_open(reader)}


def _decode_session(reader: BodyReader) -> dict:
    return {"id": reader.str(SESSION_ID_RULE)}


def _decode_entry(reader: BodyReader) -> dict:
    """Entry struct (§5.19)."""
    return {
        "name_hex": reader.bytes(ENTRY_NAME_RULE).hex(),
        "kind": reader.u8("kind"),  # any value decodes; unknown ones mean "other"
        "size": str(reader.varint(U64, "size")),
        "mode": reader.mode(FILE_MODE_MAX),
        "mtime": str(reader.varint(U64, "mtime")),
        "target_hex": reader.bytes(ENTRY_TARGET_RULE).hex(),
    }


def _decode_empty(reader: BodyReader) -> dict:
    return {}  # any byte is reported as trailing_bytes (§5.15)


def _decode_refuse(reader: BodyReader) -> dict:
    return {"reason": reader.varint(U32, "reason"), "message": reader.str(MESSAGE_RULE)}


def _decode_reason(reader: BodyReader) -> dict:
    # Any u32 code decodes; unknown ones mean UNSPECIFIED to the application (§6.7).
    return {"code": reader.varint(U32, "code"), "message": reader.str(MESSAGE_RULE)}


def _decode_data(reader: BodyReader) -> dict:
    stream = reader.u8("stream")
    if stream >= len(STREAM_NAMES):
        raise DecodeError("invalid_value", f"stream {stream}")
    return {"stream": STREAM_NAMES[stream], "payload_hex": reader.rest().hex()}


def _decode_credit(reader: BodyReader) -> dict:
    increment = reader.varint(U32, "increment")
    if increment == 0:
        raise DecodeError("invalid_value", "credit increment 0")
    return {"increment": increment}


def _decode_signal_code(reader: BodyReader) -> int:
    signal = reader.u8("signal")
    if signal == 0:
        raise DecodeError("invalid_value", "signal 0")
    return signal


def _decode_signal(reader: BodyReader) -> dict:
    return {"signal": _decode_signal_code(reader)}


def _decode_exit(reader: BodyReader) -> dict:
    index = reader.varint(U32, "status index")
    if index == EXIT_CODE:
        status = {"code": reader.varint(U32, "code")}
    elif index == EXIT_SIGNAL:
        signal = _decode_signal_code(reader)
        status = {"signal": signal, "core_dumped": reader.bool("core_dumped")}
    else:
        raise DecodeError("invalid_value", f"exit status index {index}")
    return {"status": status}


# --- Encoding ----------------------------------------------------------------


class BodyWriter:
    """Appends fields in canonical form (§3.10) to a growing body."""

    def __init__(self) -> None:
        self.body = bytearray()

    def u8(self, value: int) -> None:
        self.body.append(value)

    def varint(self, value: int) -> None:
        """Shortest unsigned LEB128 (§3.2); range checked by the caller."""
        while value >= 0x80:
            self.body.append((value & 0x7F) | 0x80)
            value >>= 7
        self.body.append(value)

    def bool(self, value: bool) -> None:
        self.body.append(1 if value else 0)

    def bytes(self, value: bytes, rule: LengthRule) -> None:
        rule.check_length(len(value), EncodeError)
        rule.check_content(value, EncodeError)
        self.varint(len(value))
        self.body += value

    def str(self, value: str, rule: LengthRule) -> None:
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError("bad_utf8", f"{rule.field} is not valid Unicode text") from None
        rule.check_length(len(raw), EncodeError)
        rule.check_content(value, EncodeError)
        self.varint(len(raw))
        self.body += raw

    def rest(self, value: bytes) -> None:
        self.body += value


# JSON accessors: strict about the §10 form, so that a wrong vector is noticed.


def _object(value: Any, keys: set[str], where: str) -> dict:
    """Checks that `value` is a JSON object with exactly `keys`."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object")
    if set(value) != keys:
        missing = sorted(keys - set(value))
        extra = sorted(set(value) - keys)
        raise ValueError(f"{where}: missing keys {missing}, unexpected keys {extra} (§10)")
    return value


def _number(obj: dict, key: str, maximum: int) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: expected a JSON integer")
    if not 0 <= value <= maximum:
        raise ValueError(f"{key}: {value} does not fit its type (0..={maximum})")
    return value


def _u64_string(obj: dict, key: str) -> int:
    """u64 values travel as decimal strings (§10)."""
    value = obj[key]
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise ValueError(f"{key}: expected a decimal string")
    if value != str(int(value)):
        raise ValueError(f"{key}: leading zeros in {value!r}")
    number = int(value)
    if number > U64.max_value:
        raise ValueError(f"{key}: {value} does not fit a u64")
    return number


def _hex(obj: dict, key: str) -> bytes:
    value = obj[key]
    if not isinstance(value, str) or value != value.lower():
        raise ValueError(f"{key}: expected a lowercase hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{key}: not a hex string") from None


def _text(obj: dict, key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a JSON string")
    return value


def _mode(obj: dict, maximum: int) -> int:
    mode = _number(obj, "mode", U32.max_value)
    _check_mode(mode, maximum, EncodeError)
    return mode


def _bool(obj: dict, key: str) -> bool:
    value = obj[key]
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false")
    return value


def _digest_hex(obj: dict, key: str) -> bytes:
    """A Digest in JSON: exactly 64 hex digits (§10)."""
    value = _hex(obj, key)
    if len(value) != DIGEST_LEN:
        raise ValueError(f"{key}: expected {DIGEST_LEN * 2} hex digits")
    return value


def _encode_prefix(writer: BodyWriter, obj: dict, offset: int) -> None:
    _check_prefix(obj["prefix_hex"] is not None, offset, EncodeError)
    if obj["prefix_hex"] is None:
        writer.u8(0)
    else:
        writer.u8(1)
        writer.rest(_digest_hex(obj, "prefix_hex"))


FILE_REQUEST_KEYS = {
    "home": set(),
    "stat": {"path_hex"},
    "list": {"path_hex"},
    "read": {"path_hex", "offset", "prefix_hex"},
    "write": {"path_hex", "size", "mode", "overwrite", "offset", "prefix_hex"},
    "mkdir": {"path_hex", "mode"},
    "rename": {"from_hex", "to_hex", "overwrite"},
    "remove": {"path_hex"},
    "chmod": {"path_hex", "mode"},
    "unknown": {"index", "params_hex"},
}


def _encode_file_request(writer: BodyWriter, value: Any) -> None:
    op = value.get("op") if isinstance(value, dict) else None
    if op not in FILE_REQUEST_KEYS:
        raise ValueError(f"request: expected an object with op one of {sorted(FILE_REQUEST_KEYS)}")
    request = _object(value, {"op"} | FILE_REQUEST_KEYS[op], f"{op} request")
    if op == "unknown":
        index = _number(request, "index", U32.max_value)
        if index < len(FILE_OPS):
            raise ValueError(f"unknown request: index {index} is a defined request (§5.19)")
        writer.varint(index)
        writer.rest(_hex(request, "params_hex"))
        return
    writer.varint(FILE_OPS.index(op))
    if op == "rename":
        writer.bytes(_hex(request, "from_hex"), FROM_RULE)
        writer.bytes(_hex(request, "to_hex"), TO_RULE)
        writer.bool(_bool(request, "overwrite"))
        return
    if op != "home":
        writer.bytes(_hex(request, "path_hex"), PATH_RULE)
    if op == "read":
        offset = _u64_string(request, "offset")
        writer.varint(offset)
        _encode_prefix(writer, request, offset)
    elif op == "write":
        size = _u64_string(request, "size")
        writer.varint(size)
        writer.varint(_mode(request, REQUEST_MODE_MAX))
        writer.bool(_bool(request, "overwrite"))
        offset = _u64_string(request, "offset")
        _check_write_offset(offset, size, EncodeError)
        writer.varint(offset)
        _encode_prefix(writer, request, offset)
    elif op in ("mkdir", "chmod"):
        writer.varint(_mode(request, REQUEST_MODE_MAX))


FILE_EVENT_KEYS = {
    "start": {"offset", "size", "mode", "mtime"},
    "end": {"size", "sha256_hex"},
    "done": set(),
    "failed": {"error", "message"},
}


def _encode_file(writer: BodyWriter, msg: dict) -> None:
    value = msg["event"]
    name = value.get("event") if isinstance(value, dict) else None
    if name not in FILE_EVENT_KEYS:
        raise ValueError(f"event: expected an object with event one of {list(FILE_EVENTS)}")
    event = _object(value, {"event"} | FILE_EVENT_KEYS[name], f"{name} event")
    writer.varint(FILE_EVENTS.index(name))
    if name == "start":
        writer.varint(_u64_string(event, "offset"))
        writer.varint(_u64_string(event, "size"))
        writer.varint(_mode(event, FILE_MODE_MAX))
        writer.varint(_u64_string(event, "mtime"))
    elif name == "end":
        writer.varint(_u64_string(event, "size"))
        writer.rest(_digest_hex(event, "sha256_hex"))
    elif name == "failed":
        writer.varint(_number(event, "error", U32.max_value))
        writer.str(_text(event, "message"), MESSAGE_RULE)


def _encode_session(writer: BodyWriter, msg: dict) -> None:
    writer.str(_text(msg, "id"), SESSION_ID_RULE)


ENTRY_KEYS = {"name_hex", "kind", "size", "mode", "mtime", "target_hex"}


def _encode_entry(writer: BodyWriter, value: Any) -> None:
    entry = _object(value, ENTRY_KEYS, "entry")
    writer.bytes(_hex(entry, "name_hex"), ENTRY_NAME_RULE)
    writer.u8(_number(entry, "kind", 0xFF))
    writer.varint(_u64_string(entry, "size"))
    writer.varint(_mode(entry, FILE_MODE_MAX))
    writer.varint(_u64_string(entry, "mtime"))
    writer.bytes(_hex(entry, "target_hex"), ENTRY_TARGET_RULE)


def _encode_window_size(writer: BodyWriter, obj: dict) -> None:
    for key in ("cols", "rows", "width_px", "height_px"):
        writer.varint(_number(obj, key, U16.max_value))


def _encode_pty(writer: BodyWriter, value: Any) -> None:
    pty = _object(value, {"term", "cols", "rows", "width_px", "height_px"}, "pty")
    writer.str(_text(pty, "term"), TERM_RULE)
    _encode_window_size(writer, pty)


def _encode_env(writer: BodyWriter, value: Any) -> None:
    if not isinstance(value, list):
        raise ValueError("env: expected a JSON array")
    if len(value) > MAX_ENV:
        raise EncodeError("too_long", f"env: {len(value)} entries > {MAX_ENV}")
    writer.varint(len(value))
    for entry in value:
        entry = _object(entry, {"name", "value"}, "env entry")
        writer.str(_text(entry, "name"), ENV_NAME_RULE)
        writer.str(_text(entry, "value"), ENV_VALUE_RULE)


def _encode_hello(writer: BodyWriter, msg: dict) -> None:
    writer.varint(PROTOCOL_VERSION)  # not in the JSON form (§10)
    writer.varint(_u64_string(msg, "capabilities"))
    max_frame = _number(msg, "max_frame", U32.max_value)
    if not MIN_MAX_FRAME <= max_frame <= MAX_BODY_LEN:
        raise EncodeError("invalid_value", f"max_frame must be in {MIN_MAX_FRAME}..={MAX_BODY_LEN}")
    writer.varint(max_frame)
    writer.varint(_number(msg, "initial_window", U32.max_value))
    writer.varint(_number(msg, "keepalive_ms", U32.max_value))
    if msg["resume"] is None:
        writer.u8(0)
    else:
        resume = _object(msg["resume"], {"token_hex", "offset"}, "resume")
        writer.u8(1)
        writer.bytes(_hex(resume, "token_hex"), TOKEN_RULE)
        writer.varint(_u64_string(resume, "offset"))


def _encode_nonce(writer: BodyWriter, msg: dict) -> None:
    writer.varint(_u64_string(msg, "nonce"))


def _encode_ack(writer: BodyWriter, msg: dict) -> None:
    writer.varint(_u64_string(msg, "offset"))


def _encode_go_away(writer: BodyWriter, msg: dict) -> None:
    writer.varint(_number(msg, "code", U32.max_value))
    writer.str(_text(msg, "message"), MESSAGE_RULE)


def _encode_open(writer: BodyWriter, msg: dict) -> None:
    value = msg["kind"]
    name = value.get("kind") if isinstance(value, dict) else None
    if name == "shell":
        kind = _object(value, {"kind", "pty", "env"}, "shell kind")
        writer.varint(OPEN_SHELL)
        _encode_pty(writer, kind["pty"])
        _encode_env(writer, kind["env"])
    elif name == "exec":
        kind = _object(value, {"kind", "command", "pty", "env"}, "exec kind")
        writer.varint(OPEN_EXEC)
        writer.str(_text(kind, "command"), COMMAND_RULE)
        if kind["pty"] is None:
            writer.u8(0)
        else:
            writer.u8(1)
            _encode_pty(writer, kind["pty"])
        _encode_env(writer, kind["env"])
    elif name == "forward":
        kind = _object(value, {"kind", "host", "port"}, "forward kind")
        writer.varint(OPEN_FORWARD)
        writer.str(_text(kind, "host"), HOST_RULE)
        port = _number(kind, "port", U16.max_value)
        if port == 0:
            raise EncodeError("invalid_value", "port must be 1..=65535")
        writer.varint(port)
    elif name == "file":
        kind = _object(value, {"kind", "request"}, "file kind")
        writer.varint(OPEN_FILE)
        _encode_file_request(writer, kind["request"])
    elif name == "unknown":
        kind = _object(value, {"kind", "index", "params_hex"}, "unknown kind")
        index = _number(kind, "index", U32.max_value)
        if index in DEFINED_OPEN_KINDS:
            raise ValueError(f"unknown kind: index {index} is a defined kind (§5.5)")
        writer.varint(index)
        writer.rest(_hex(kind, "params_hex"))
    else:
        raise ValueError("kind: expected an object with kind shell, exec, forward, file or unknown")


def _encode_open_on(writer: BodyWriter, msg: dict) -> None:
    writer.str(_text(msg, "instance"), INSTANCE_RULE)
    _encode_open(writer, msg)


def _encode_empty(writer: BodyWriter, msg: dict) -> None:
    pass


def _encode_refuse(writer: BodyWriter, msg: dict) -> None:
    writer.varint(_number(msg, "reason", U32.max_value))
    writer.str(_text(msg, "message"), MESSAGE_RULE)


def _encode_reason(writer: BodyWriter, msg: dict) -> None:
    writer.varint(_number(msg, "code", U32.max_value))
    writer.str(_text(msg, "message"), MESSAGE_RULE)


def _encode_data(writer: BodyWriter, msg: dict) -> None:
    stream = msg["stream"]
    if stream not in STREAM_NAMES:
        raise ValueError(f"stream: expected one of {', '.join(STREAM_NAMES)}")
    writer.u8(STREAM_NAMES.index(stream))
    writer.rest(_hex(msg, "payload_hex"))


def _encode_credit(writer: BodyWriter, msg: dict) -> None:
    increment = _number(msg, "increment", U32.max_value)
    if increment == 0:
        raise EncodeError("invalid_value", "credit increment must not be 0")
    writer.varint(increment)


def _encode_signal_code(writer: BodyWriter, obj: dict) -> None:
    signal = _number(obj, "signal", 0xFF)
    if signal == 0:
        raise EncodeError("invalid_value", "signal must be 1..=255")
    writer.u8(signal)


def _encode_signal(writer: BodyWriter, msg: dict) -> None:
    _encode_signal_code(writer, msg)


def _encode_exit(writer: BodyWriter, msg: dict) -> None:
    status = msg["status"]
    if isinstance(status, dict) and "code" in status:
        status = _object(status, {"code"}, "status")
        writer.varint(EXIT_CODE)
        writer.varint(_number(status, "code", U32.max_value))
    else:
        status = _object(status, {"signal", "core_dumped"}, "status")
        if not isinstance(status["core_dumped"], bool):
            raise ValueError("core_dumped: expected true or false")
        writer.varint(EXIT_SIGNAL)
        _encode_signal_code(writer, status)
        writer.bool(status["core_dumped"])


# --- Message table (§5.1) ----------------------------------------------------


@dataclass(frozen=True)
class MessageType:
    """One defined type code: its name, scope, body keys and body codecs."""

    code: int
    name: str
    is_connection: bool  # connection messages use channel 0 (§4.1 step 6)
    body_keys: frozenset[str]  # JSON keys of the body fields (§10)
    decode_body: Callable[[BodyReader], dict]
    encode_body: Callable[[BodyWriter, dict], None]


def _message(code, name, is_connection, body_keys, decode_body, encode_body) -> MessageType:
    return MessageType(code, name, is_connection, frozenset(body_keys), decode_body, encode_body)


MESSAGE_TYPES = [
    _message(0x01, "Hello", True,
             {"capabilities", "max_frame", "initial_window", "keepalive_ms", "resume"},
             _decode_hello, _encode_hello),
    _message(0x02, "Ping", True, {"nonce"}, _decode_nonce, _encode_nonce),
    _message(0x03, "Pong", True, {"nonce"}, _decode_nonce, _encode_nonce),
    _message(0x04, "GoAway", True, {"code", "message"}, _decode_go_away, _encode_go_away),
    _message(0x05, "Ack", True, {"offset"}, _decode_ack, _encode_ack),
    _message(0x10, "Open", False, {"kind"}, _decode_open, _encode_open),
    _message(0x11, "Accept", False, set(), _decode_empty, _encode_empty),
    _message(0x12, "Refuse", False, {"reason", "message"}, _decode_refuse, _encode_refuse),
    _message(0x13, "Data", False, {"stream", "payload_hex"}, _decode_data, _encode_data),
    _message(0x14, "Credit", False, {"increment"}, _decode_credit, _encode_credit),
    _message(0x15, "Resize", False, {"cols", "rows", "width_px", "height_px"},
             _decode_window_size, _encode_window_size),
    _message(0x16, "Signal", False, {"signal"}, _decode_signal, _encode_signal),
    _message(0x17, "Eof", False, set(), _decode_empty, _encode_empty),
    _message(0x18, "Exit", False, {"status"}, _decode_exit, _encode_exit),
    _message(0x19, "Close", False, set(), _decode_empty, _encode_empty),
    _message(0x1B, "File", False, {"event"}, _decode_file, _encode_file),
    _message(0x1C, "OpenOn", False, {"instance", "kind"}, _decode_open_on, _encode_open_on),
    # Ignorable range, but defined: decoded as strictly as the others (§5.18, §5.20).
    _message(0x81, "Reason", False, {"code", "message"}, _decode_reason, _encode_reason),
    _message(0x83, "Session", False, {"id"}, _decode_session, _encode_session),
]

TYPES_BY_CODE = {message.code: message for message in MESSAGE_TYPES}
TYPES_BY_NAME = {message.name: message for message in MESSAGE_TYPES}


# --- Frames --------------------------------------------------------------------


def decode_frame(data: bytes, max_body: int = DEFAULT_MAX_FRAME) -> dict:
    """Decodes exactly one frame (§4.1 steps 1-8) into its §10 JSON form.

    `max_body` is the receiver maximum M. Raises DecodeError naming the
    first failing check.
    """
    _check_receiver_maximum(max_body)
    data = bytes(data)

    # Steps 1-4: header, length limit, body present, nothing after the frame.
    if len(data) < HEADER_LEN:
        raise DecodeError("truncated", f"{len(data)} bytes < {HEADER_LEN}-byte header")
    length = int.from_bytes(data[0:3], "big")
    if length > max_body:
        raise DecodeError("frame_too_large", f"length {length} > {max_body}")
    frame_end = HEADER_LEN + length
    if len(data) < frame_end:
        raise DecodeError("truncated", f"{len(data) - HEADER_LEN} of {length} body bytes")
    if len(data) > frame_end:
        raise DecodeError("trailing_bytes", f"{len(data) - frame_end} bytes after the frame")
    type_code = data[3]
    channel = int.from_bytes(data[4:6], "big")
    body = data[HEADER_LEN:frame_end]

    # Step 5: type code. A defined code (Reason and Session among them) goes on to the
    # channel and body checks; an undefined ignorable one is an Extension.
    message_type = TYPES_BY_CODE.get(type_code)
    if message_type is None:
        if type_code >= FIRST_IGNORABLE_CODE:
            return {"type": "Extension", "kind": type_code, "channel": channel, "body_hex": body.hex()}
        raise DecodeError("unknown_type", f"type {type_code:#04x}")

    # Step 6: channel rule.
    if message_type.is_connection and channel != 0:
        raise DecodeError("bad_channel", f"{message_type.name} on channel {channel}")
    if not message_type.is_connection and channel == 0:
        raise DecodeError("bad_channel", f"{message_type.name} on channel 0")

    # Steps 7-8: body fields, then nothing left over.
    reader = BodyReader(body)
    fields = message_type.decode_body(reader)
    if reader.remaining():
        raise DecodeError("trailing_bytes", f"{reader.remaining()} bytes after the last field")

    message = {"type": message_type.name}
    if not message_type.is_connection:
        message["channel"] = channel
    message.update(fields)
    return message


def encode_frame(decoded: dict, max_body: int = DEFAULT_MAX_FRAME) -> bytes:
    """Encodes a §10 JSON-form message to its canonical frame bytes.

    Raises EncodeError (a ValueError) naming the error a decoder with
    receiver maximum `max_body` would raise, and ValueError for input that
    is not in the §10 form.
    """
    _check_receiver_maximum(max_body)
    if not isinstance(decoded, dict):
        raise ValueError("message: expected a JSON object")
    name = decoded.get("type")

    if name == "Extension":
        msg = _object(decoded, {"type", "kind", "channel", "body_hex"}, "Extension")
        type_code = _number(msg, "kind", 0xFF)
        if type_code < FIRST_IGNORABLE_CODE:
            raise ValueError("Extension kind must be 0x80..=0xFF (§9.2)")
        if type_code in TYPES_BY_CODE:
            raise ValueError(f"Extension kind {type_code:#04x} is a defined message (§5.1)")
        channel = _number(msg, "channel", 0xFFFF)
        body = _hex(msg, "body_hex")
    else:
        message_type = TYPES_BY_NAME.get(name)
        if message_type is None:
            raise ValueError(f"type: unknown message name {name!r}")
        keys = {"type"} | message_type.body_keys
        if not message_type.is_connection:
            keys.add("channel")
        elif "channel" in decoded:
            raise EncodeError("bad_channel", f"{name} is a connection message: no channel")
        msg = _object(decoded, keys, name)
        channel = 0
        if not message_type.is_connection:
            channel = _number(msg, "channel", 0xFFFF)
            if channel == 0:
                raise EncodeError("bad_channel", f"{name} needs a channel in 1..=65535")
        type_code = message_type.code
        writer = BodyWriter()
        message_type.encode_body(writer, msg)
        body = bytes(writer.body)

    if len(body) > max_body:
        raise EncodeError("frame_too_large", f"body {len(body)} bytes > {max_body}")
    header = len(body).to_bytes(3, "big") + bytes([type_code]) + channel.to_bytes(2, "big")
    return header + body


# --- Entry records (§5.19) -----------------------------------------------------


def decode_entry_record(data: bytes) -> dict:
    """Decodes exactly one Entry record (u32 varint L, then an L-byte Entry).

    Checks, in order: L (bad_varint / truncated); L > MAX_ENTRY_LEN ->
    too_long; fewer than L bytes after it -> truncated; bytes after the
    record -> trailing_bytes (the input is one whole record, as a frame is
    for decode_frame); the Entry's fields in order within the L bytes (a
    struct longer than L -> truncated); bytes left in the record after the
    struct -> trailing_bytes.
    """
    reader = BodyReader(bytes(data))
    length = reader.varint(U32, "record length")
    if length > MAX_ENTRY_LEN:
        raise DecodeError("too_long", f"record length {length} > {MAX_ENTRY_LEN}")
    if reader.remaining() < length:
        raise DecodeError("truncated", f"{reader.remaining()} of {length} record bytes")
    if reader.remaining() > length:
        raise DecodeError("trailing_bytes", f"{reader.remaining() - length} bytes after the record")
    record = BodyReader(reader.take(length))
    entry = _decode_entry(record)
    if record.remaining():
        raise DecodeError("trailing_bytes", f"{record.remaining()} bytes in the record after the entry")
    return entry


def encode_entry_record(decoded: dict) -> bytes:
    """Encodes an Entry (entries.json form, §10) as one canonical record."""
    writer = BodyWriter()
    _encode_entry(writer, decoded)
    struct = bytes(writer.body)
    if len(struct) > MAX_ENTRY_LEN:  # cannot happen with valid fields (§2.2)
        raise EncodeError("too_long", f"record length {len(struct)} > {MAX_ENTRY_LEN}")
    prefix = BodyWriter()
    prefix.varint(len(struct))
    return bytes(prefix.body) + struct
