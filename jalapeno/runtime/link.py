"""The host link's framing: the one definition of the frames the board's UART bridge
(:class:`fpga.bridge.HostBridge`) and the host (the ``fpga`` backend, and the board
simulation) exchange.

A request is ``SYNC``, the command, a tag, the address (4 bytes, little-endian), the byte
count less one (2 bytes, little-endian), the payload of a write, and the CRC of everything
after ``SYNC`` (2 bytes, little-endian). A response is ``SYNC``, the status, the request's
tag, the payload of a successful read, and the CRC of everything after ``SYNC``.

=============  =====================  ==================  ==============================
command        address                count               payload (request / response)
=============  =====================  ==================  ==============================
``CSR_READ``   CSR byte address       4                   none / the register, 4 bytes
``CSR_WRITE``  CSR byte address       4                   the register, 4 bytes / none
``MEM_READ``   memory byte address    1 to MAX_BURST      none / the bytes
``MEM_WRITE``  memory byte address    1 to MAX_BURST      the bytes / none
=============  =====================  ==================  ==============================

How the bridge keeps memory whole and finds the next frame:

* It hunts for ``SYNC``; bytes before one are dropped.
* A write's payload is buffered and reaches memory or the CSR only once the CRC checks, so a
  corrupt frame changes nothing. A frame whose CRC fails is answered ``BAD_CRC``.
* A header the bridge cannot act on (an unknown command, a count out of range) is dropped
  with the rest of its frame, unanswered, and so is a frame the line goes quiet in the middle
  of (a truncated frame): after :data:`IDLE_BYTES` byte times without a byte, the bridge
  hunts for ``SYNC`` again.
* A write with the tag of the request executed just before it, itself a write answered
  ``OK``, is a retry whose response was lost: it is answered ``OK`` and not executed again
  (a second write to ``CONTROL`` would start a second run). A host opening the link reads
  first (the ``fpga`` backend reads ``ID``), so a write of a previous session cannot be
  taken for a retry.

The host gives each transaction a new tag and resends the same frame, same tag, when the
answer is ``BAD_CRC``, corrupt, of another tag, or missing (:func:`transact`).
"""

import enum
from collections.abc import Callable
from typing import Protocol

__all__ = ["BAUD", "SYNC", "MAX_BURST", "IDLE_BYTES", "HEADER_BYTES", "RESPONSE_HEADER_BYTES",
           "CRC_BYTES", "CSR_BYTES", "Command",
           "Status", "LinkError", "crc16", "request", "response", "response_bytes",
           "parse_response", "Port", "transact"]

#: The UART rate of every board and of the host's end (the FTDI parts of both boards take
#: 1 Mbaud).
BAUD = 1_000_000
#: The first byte of every frame.
SYNC = 0x5A
#: Most bytes one memory request moves (the bridge's write buffer).
MAX_BURST = 256
#: Byte times of silence after which the bridge drops a partial frame.
IDLE_BYTES = 16
#: Bytes of a request before its payload: sync, command, tag, address, count.
HEADER_BYTES = 9
#: Bytes of a response before its payload: sync, status, tag.
RESPONSE_HEADER_BYTES = 3
#: Bytes of the CRC at the end of every frame.
CRC_BYTES = 2
#: Bytes of a CSR request's count.
CSR_BYTES = 4


class Command(enum.IntEnum):
    CSR_READ = 1
    CSR_WRITE = 2
    MEM_READ = 3
    MEM_WRITE = 4

    @property
    def writes(self):
        """Whether the request carries a payload."""
        return self in (Command.CSR_WRITE, Command.MEM_WRITE)


class Status(enum.IntEnum):
    #: Done (a read's response carries the data).
    OK = 0
    #: The request's CRC did not check; nothing was done.
    BAD_CRC = 1
    #: The CSR slave answered SLVERR or DECERR, or the memory range is outside the memory.
    BUS_ERROR = 2


class LinkError(RuntimeError):
    """The board did not answer a request properly within the retries, or answered
    ``BUS_ERROR``."""


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (polynomial ``0x1021``, initial value ``0xFFFF``, no reflection, no
    final XOR) of ``data``, continuing from ``crc``."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _with_crc(body: bytes) -> bytes:
    return bytes([SYNC]) + body + crc16(body).to_bytes(CRC_BYTES, "little")


def _check_request(command, tag, addr, count, data):
    if not isinstance(command, Command):
        raise TypeError(f"command must be a Command, not {command!r}")
    if not 0 <= tag <= 0xFF:
        raise ValueError(f"tag must be 0 to 255, not {tag}")
    if not 0 <= addr < 1 << 32:
        raise ValueError(f"address must be 0 to 2**32 - 1, not {addr:#x}")
    if command in (Command.CSR_READ, Command.CSR_WRITE):
        if count != CSR_BYTES or addr % CSR_BYTES:
            raise ValueError(f"a CSR access moves 4 bytes at a multiple of 4, not {count} at "
                             f"{addr:#x}")
    elif not 1 <= count <= MAX_BURST:
        raise ValueError(f"a memory access moves 1 to {MAX_BURST} bytes, not {count}")
    if command.writes and len(data) != count:
        raise ValueError(f"{command.name} needs {count} payload bytes, not {len(data)}")
    if not command.writes and data:
        raise ValueError(f"{command.name} takes no payload")


def request(command: Command, tag: int, addr: int, count: int, data: bytes = b"") -> bytes:
    """The frame of one request.

    Raises
    ------
    TypeError, ValueError
        If a field is out of range, or the payload does not fit the command.
    """
    _check_request(command, tag, addr, count, data)
    return _with_crc(bytes([command, tag]) + addr.to_bytes(4, "little")
                     + (count - 1).to_bytes(2, "little") + bytes(data))


def response(status: Status, tag: int, payload: bytes = b"") -> bytes:
    """The frame of one response (what the bridge sends; for models and tests)."""
    return _with_crc(bytes([status, tag]) + bytes(payload))


def response_bytes(command: Command, count: int, status: Status = Status.OK) -> int:
    """Length of the response to a request, by its status (only a successful read carries
    data)."""
    data = count if status == Status.OK and not command.writes else 0
    return RESPONSE_HEADER_BYTES + data + CRC_BYTES


def parse_response(frame: bytes, command: Command, tag: int, count: int) -> tuple[Status,
                                                                                  bytes]:
    """``(status, payload)`` of the response ``frame`` to a request.

    Raises
    ------
    LinkError
        If ``frame`` is not a whole, intact response to that request: wrong sync, length,
        CRC or tag.
    """
    if len(frame) < RESPONSE_HEADER_BYTES + CRC_BYTES or frame[0] != SYNC:
        raise LinkError(f"response {frame[:8].hex()}: no frame")
    try:
        status = Status(frame[1])
    except ValueError:
        raise LinkError(f"response status {frame[1]} is not a status") from None
    if len(frame) != response_bytes(command, count, status):
        raise LinkError(f"response of {len(frame)} bytes to {command.name} of {count}")
    if crc16(frame[1:-CRC_BYTES]) != int.from_bytes(frame[-CRC_BYTES:], "little"):
        raise LinkError("response CRC does not check")
    if frame[2] != tag:
        raise LinkError(f"response tag {frame[2]} to request tag {tag}")
    return status, bytes(frame[RESPONSE_HEADER_BYTES:-CRC_BYTES])


class Port(Protocol):
    """What :func:`transact` needs of a line: pyserial's ``Serial`` has it.

    ``read(n)`` returns the next ``n`` bytes, or fewer if ``timeout`` passes first.
    """

    timeout: float

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int) -> bytes: ...


def transact(port: Port, command: Command, tag: int, addr: int, count: int,
             data: bytes = b"", *, retries: int = 4,
             log: Callable[[str], None] | None = None) -> bytes:
    """Send one request on ``port`` and return the payload of its response, resending it on
    ``BAD_CRC``, a broken response or silence (the port's ``timeout``), up to ``retries``
    times. After a broken response the host reads until the line is quiet, so that the
    rest of it is not taken for the next response.

    Raises
    ------
    LinkError
        On ``BUS_ERROR``, or when every try failed.
    """
    frame = request(command, tag, addr, count, data)
    failures = []
    for _ in range(retries + 1):
        port.write(frame)
        problem = _answer(port, command, tag, count)
        if isinstance(problem, bytes):
            return problem
        if problem is Status.BUS_ERROR:
            raise LinkError(f"{command.name} at {addr:#x}: bus error")
        failures.append(problem)
        if log:
            log(f"link: {command.name} at {addr:#x}: {problem}; resending")
    raise LinkError(f"{command.name} at {addr:#x} failed {retries + 1} times: "
                    f"{'; '.join(failures)}")


def _answer(port, command, tag, count):
    """The payload of the response to the request just sent, ``Status.BUS_ERROR``, or what
    went wrong (a string)."""
    head = b""
    for _ in range(MAX_BURST + RESPONSE_HEADER_BYTES + CRC_BYTES):
        byte = port.read(1)
        if not byte:
            return "no response"
        if byte[0] == SYNC:
            head = byte + port.read(RESPONSE_HEADER_BYTES - 1)
            break
    if len(head) < RESPONSE_HEADER_BYTES:
        return "no response"
    try:
        status = Status(head[1])
    except ValueError:
        status = Status.OK  # a broken response; the checks below say how
    whole = head + port.read(response_bytes(command, count, status) - len(head))
    try:
        status, payload = parse_response(whole, command, tag, count)
    except LinkError as error:
        while port.read(1):
            pass
        return str(error)
    if status == Status.OK:
        return payload
    return status if status == Status.BUS_ERROR else "the board saw a bad CRC"
