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

Messages use the JSON form of the test vectors (§10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = [
    "DecodeError",
    "EncodeError",
    "decode_frame",
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

FIRST_IGNORABLE_CODE = 0x80  # 0x80..=0xFF are ignorable (§9.2): Reason, or an Extension

STREAM_NAMES = ("stdin", "stdout", "stderr")  # Data `stream` values 0, 1, 2 (§6.1)

# Open kind indexes (§5.5) and ExitStatus variant indexes (§5.13).
OPEN_SHELL, OPEN_EXEC, OPEN_FORWARD = 0, 1, 2
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
        if isinstance(value, str):
            for char in self.forbidden:
                if char in value:
                    raise fail("invalid_value", f"{self.field} must not contain {char!r}")


MESSAGE_RULE = LengthRule("message", MAX_MESSAGE_LEN)
TOKEN_RULE = LengthRule("resume token", MAX_TOKEN_LEN, non_empty=True)
TERM_RULE = LengthRule("term", MAX_TERM_LEN, forbidden="\0")
COMMAND_RULE = LengthRule("command", MAX_COMMAND_LEN, non_empty=True, forbidden="\0")
HOST_RULE = LengthRule("host", MAX_HOST_LEN, non_empty=True, forbidden="\0")
ENV_NAME_RULE = LengthRule("env name", MAX_ENV_NAME_LEN, non_empty=True, forbidden="\0=")
ENV_VALUE_RULE = LengthRule("env value", MAX_ENV_VALUE_LEN, forbidden="\0")


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
        raw = self._body[self._pos : self._pos + length]
        self._pos += length
        return raw


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
    else:  # unknown kinds are valid; the receiver refuses them (§5.5)
        kind = {"kind": "unknown", "index": index, "params_hex": reader.rest().hex()}
    return {"kind": kind}


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
    elif name == "unknown":
        kind = _object(value, {"kind", "index", "params_hex"}, "unknown kind")
        index = _number(kind, "index", U32.max_value)
        if index in (OPEN_SHELL, OPEN_EXEC, OPEN_FORWARD):
            raise ValueError(f"unknown kind: index {index} is a defined kind (§5.5)")
        writer.varint(index)
        writer.rest(_hex(kind, "params_hex"))
    else:
        raise ValueError("kind: expected an object with kind shell, exec, forward or unknown")


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
    # Ignorable range, but defined: decoded as strictly as the others (§5.18).
    _message(0x81, "Reason", False, {"code", "message"}, _decode_reason, _encode_reason),
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

    # Step 5: type code. A defined code (Reason among them) goes on to the
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
