"""The host link's framing (jalapeno.runtime.link): frames, CRC, response checks, and the
host's retries against scripted lines. The bridge's side is tests/test_bridge.py (Amaranth
simulator) and the board simulation (verification/tb/test_board.py)."""

import pytest

from jalapeno.runtime.link import (
    CRC_BYTES,
    MAX_BURST,
    SYNC,
    Command,
    LinkError,
    Status,
    crc16,
    parse_response,
    request,
    response,
    transact,
)


def test_crc_is_ccitt_false():
    # The catalogue check value of CRC-16/CCITT-FALSE.
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"6789", crc16(b"12345")) == 0x29B1


def test_request_layout():
    frame = request(Command.MEM_WRITE, 7, 0x12345678, 3, b"abc")
    assert frame[:9] == bytes([SYNC, 4, 7, 0x78, 0x56, 0x34, 0x12, 2, 0])
    assert frame[9:12] == b"abc"
    assert int.from_bytes(frame[-CRC_BYTES:], "little") == crc16(frame[1:-CRC_BYTES])


@pytest.mark.parametrize(("args", "message"), [
    ((Command.CSR_READ, 0, 0x10, 8),
     "a CSR access moves 4 bytes at a multiple of 4, not 8 at 0x10"),
    ((Command.CSR_READ, 0, 0x11, 4),
     "a CSR access moves 4 bytes at a multiple of 4, not 4 at 0x11"),
    ((Command.MEM_READ, 0, 0, 0), f"a memory access moves 1 to {MAX_BURST} bytes, not 0"),
    ((Command.MEM_READ, 0, 0, MAX_BURST + 1),
     f"a memory access moves 1 to {MAX_BURST} bytes, not {MAX_BURST + 1}"),
    ((Command.MEM_WRITE, 0, 0, 4, b"abc"), "MEM_WRITE needs 4 payload bytes, not 3"),
    ((Command.MEM_READ, 0, 0, 4, b"abcd"), "MEM_READ takes no payload"),
    ((Command.MEM_READ, 256, 0, 4), "tag must be 0 to 255, not 256"),
    ((Command.MEM_READ, 0, 1 << 32, 4), "address must be 0 to 2**32 - 1, not 0x100000000"),
])
def test_bad_requests(args, message):
    with pytest.raises(ValueError) as info:
        request(*args)
    assert str(info.value) == message


def test_request_needs_a_command():
    with pytest.raises(TypeError, match="command must be a Command, not 3"):
        request(3, 0, 0, 4)


def test_parse_response_checks_everything():
    good = response(Status.OK, 9, b"\x01\x02\x03\x04")
    assert parse_response(good, Command.CSR_READ, 9, 4) == (Status.OK, b"\x01\x02\x03\x04")
    with pytest.raises(LinkError, match="tag 9 to request tag 8"):
        parse_response(good, Command.CSR_READ, 8, 4)
    with pytest.raises(LinkError, match="CRC"):
        parse_response(good[:-1] + bytes([good[-1] ^ 1]), Command.CSR_READ, 9, 4)
    with pytest.raises(LinkError, match="of 9 bytes to CSR_WRITE of 4"):
        parse_response(good, Command.CSR_WRITE, 9, 4)
    with pytest.raises(LinkError, match="no frame"):
        parse_response(b"\x00" + good[1:], Command.CSR_READ, 9, 4)
    assert parse_response(response(Status.BUS_ERROR, 9), Command.MEM_READ, 9, 100) == \
        (Status.BUS_ERROR, b"")


class ScriptedLine:
    """A line whose answers to successive requests are given: each a response frame, or
    ``None`` for silence."""

    timeout = 0.0

    def __init__(self, answers):
        self.answers = list(answers)
        self.frames = []
        self.pending = b""

    def write(self, data):
        self.frames.append(bytes(data))
        answer = self.answers.pop(0)
        self.pending += answer or b""

    def read(self, size):
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


def test_transact_resends_until_answered():
    ok = response(Status.OK, 5, b"\xAA\xBB\xCC\xDD")
    broken = ok[:4] + bytes([ok[4] ^ 0x40]) + ok[5:]
    line = ScriptedLine([response(Status.BAD_CRC, 5), None, broken,
                         b"\x00\x13" + response(Status.OK, 4, b"abcd"), ok])
    log = []
    assert transact(line, Command.CSR_READ, 5, 0x40, 4, log=log.append) == b"\xAA\xBB\xCC\xDD"
    # Every try sent the same frame; each failure was logged.
    assert len(set(line.frames)) == 1 and len(line.frames) == 5
    assert [entry.split(": ", 2)[2] for entry in log] == [
        "the board saw a bad CRC; resending", "no response; resending",
        "response CRC does not check; resending",
        "response tag 4 to request tag 5; resending"]


def test_transact_gives_up():
    line = ScriptedLine([None] * 3)
    with pytest.raises(LinkError, match=r"MEM_READ at 0x100 failed 3 times: no response; "
                                        r"no response; no response"):
        transact(line, Command.MEM_READ, 1, 0x100, 16, retries=2)


def test_bus_error_is_not_retried():
    line = ScriptedLine([response(Status.BUS_ERROR, 2)])
    with pytest.raises(LinkError, match="MEM_WRITE at 0x20000: bus error"):
        transact(line, Command.MEM_WRITE, 2, 0x20000, 2, b"xy")
    assert len(line.frames) == 1
