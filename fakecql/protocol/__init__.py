# The sans-IO protocol core: frames, segments, messages and CQL values.
# Nothing in this package imports asyncio or socket.
from .connection import ProtocolViolation, RequestReceived, ServerConnection
from .errors import (
    ErrorCode,
    FakeCQLError,
    FrameTooLargeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    UnsupportedVersionError,
)
from .frames import MAX_FRAME_BODY, Frame, FrameFlag, FrameHeader, FrameReader, Opcode
from .messages import *  # noqa: F401,F403 - the message classes are the vocabulary
from .messages import __all__ as _message_names
from .types import Duration, parse_type
from .wire import UNSET

__all__ = [
    "ServerConnection",
    "RequestReceived",
    "ProtocolViolation",
    "ErrorCode",
    "FakeCQLError",
    "FrameTooLargeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "UnsupportedVersionError",
    "MAX_FRAME_BODY",
    "Frame",
    "FrameFlag",
    "FrameHeader",
    "FrameReader",
    "Opcode",
    "Duration",
    "parse_type",
    "UNSET",
    *_message_names,
]
