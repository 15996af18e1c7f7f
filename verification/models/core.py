"""Golden functional model of the accelerator core: runs a program from a NumPy memory image
with the results and error codes the RTL must give, and counts what it did.

The ISA is :mod:`jalapeno.isa`; this model is its executable meaning. It runs instructions
one at a time in program order. The core runs its three queues concurrently, but a program
whose tokens order every dependency (see the ISA) computes the same bytes either way, and
errors are defined on program order: the code and address are those of the earliest failing
instruction, and every earlier instruction has completed. Each unit's arithmetic is its own
golden model (:mod:`verification.models.matrix_unit`, ``quant``, ``lut``, ``softmax``,
``layernorm``, ``dma``), so the core adds no arithmetic of its own.

Checks of one instruction, in order: the opcode (``ILLEGAL_OPCODE``, and on a core without a
vector unit ``NO_VECTOR_UNIT`` for a VECTOR); reserved bits, token
flags the queue does not have, and fields out of range (``BAD_FIELD``); operands outside
their memory (``LOCAL_RANGE``, ``ACC_RANGE``); the tokens (``TOKEN_UNDERFLOW``,
``TOKEN_OVERFLOW``); then, while it runs, the DMA's codes and bad VECTOR parameter records
(``VECTOR_PARAM``).
"""

from dataclasses import dataclass, field

import numpy as np

from jalapeno.isa import (
    DMA_ERRORS,
    INSTRUCTION_BYTES,
    MAX_TOKENS,
    QUEUE_OF,
    RECORDS,
    TOKEN_FLAGS,
    CoreError,
    Opcode,
    Queue,
    VectorOp,
    decode,
    record_layout,
)
from rtl.bus.axi import Burst, Resp
from rtl.config import JalapenoConfig
from rtl.dma.descriptor import DmaError
from verification.models.dma import (
    Desc,
    acc_image,
    acc_range,
    bus_outcome,
    copy_bursts,
    expected_code,
    reference_bursts,
)
from verification.models.layernorm import LayerNormParams, layernorm, norm_frac_bits
from verification.models.lut import apply_lut
from verification.models.quant import AddParams, add, requantize
from verification.models.softmax import softmax_from_table

__all__ = ["CoreModel", "CoreResult", "COUNTERS", "vector_pitch"]

#: The counters the model keeps, named as the performance-counter CSRs that hold them.
COUNTERS = ("MACS", "DMA_READ_BYTES", "DMA_WRITE_BYTES", "INSTRUCTIONS")

#: Token directions: (from queue, to queue).
_CHANNELS = [(a, b) for a, b in ((Queue.LOAD, Queue.COMPUTE), (Queue.COMPUTE, Queue.STORE))
             for a, b in ((a, b), (b, a))]


def vector_pitch(config: JalapenoConfig):
    """Bytes from one scratchpad vector to the next: ``max(rows, cols)`` rounded up to a power
    of two (``Scratchpad.vector_pitch``)."""
    return 1 << (max(config.rows, config.cols) - 1).bit_length()


class _Fault(Exception):
    """An instruction failed with ``code``."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


@dataclass
class CoreResult:
    """The outcome of a run.

    Attributes
    ----------
    code : CoreError
        ``NONE`` if the program reached END.
    error_addr : int
        Byte address of the failing instruction (0 when ``code`` is ``NONE``).
    counters : dict
        Each of :data:`COUNTERS`: multiply-accumulates of the GEMMs (``m * k * n``), bytes the
        DMA moved in and out (the strobed bytes of every beat), instructions completed.
    """

    code: CoreError
    error_addr: int
    counters: dict = field(default_factory=dict)


class CoreModel:
    """The state of one core and its external memory.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
    memory : ndarray of uint8
        External memory from address 0; updated in place by STOREs.
    window : (int, int)
        The memory window ``[base, limit)`` (CSRs ``WINDOW_BASE``/``WINDOW_LIMIT``); all of
        memory by default. Instructions are fetched and data moved only inside it.
    slverr, decerr : sequence of (int, int)
        Byte ranges where the memory answers ``SLVERR`` or ``DECERR``, as the AXI RAM models'.

    Attributes
    ----------
    spad : ndarray of uint8
        The scratchpad.
    acc : ndarray of int32, shape (acc_depth, cols)
        The accumulator memory.
    """

    def __init__(self, config: JalapenoConfig, memory, *, window=None, slverr=(), decerr=()):
        if not isinstance(config, JalapenoConfig):
            raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
        memory = np.asarray(memory)
        if memory.dtype != np.uint8 or memory.ndim != 1:
            raise ValueError(f"memory must be a 1-D uint8 array, not {memory.dtype} with shape "
                             f"{memory.shape}")
        window = (0, len(memory)) if window is None else tuple(window)
        if not 0 <= window[0] <= window[1] <= len(memory):
            raise ValueError(f"window must lie within the {len(memory)} bytes of memory, "
                             f"not {window}")
        self.config = config
        self.memory = memory
        self.window = window
        self.slverr, self.decerr = list(slverr), list(decerr)
        self.spad = np.zeros(config.spad_bytes, np.uint8)
        self.acc = np.zeros((config.acc_depth, config.cols), np.int32)
        self.pitch = vector_pitch(config)

    # -- the memory's answers ---------------------------------------------------------------

    def response(self, addr, length, size, burst=Burst.INCR):
        """The memory's response to a burst (``AxLEN`` ``length``, ``AxSIZE`` ``size``): the
        same rule as the AXI RAM models."""
        lo, hi = addr, addr + ((length + 1) << size)
        for ranges, resp in ((self.decerr, Resp.DECERR), (self.slverr, Resp.SLVERR)):
            if any(a < hi and lo < b for a, b in ranges):
                return resp
        return Resp.OKAY

    def _fetch(self, addr):
        base, limit = self.window
        if not base <= addr <= limit - INSTRUCTION_BYTES or \
                self.response(addr, 0, INSTRUCTION_BYTES.bit_length() - 1) != Resp.OKAY:
            raise _Fault(CoreError.FETCH)
        return int.from_bytes(self.memory[addr:addr + INSTRUCTION_BYTES].tobytes(), "little")

    # -- running ------------------------------------------------------------------------------

    def run(self, base, length):
        """Run the program of ``length`` instructions at byte address ``base``.

        Returns
        -------
        CoreResult

        Raises
        ------
        ValueError
            If ``base`` is not a multiple of ``INSTRUCTION_BYTES``: the ``PROGRAM_BASE`` CSR
            cannot hold it.
        """
        if base % INSTRUCTION_BYTES:
            raise ValueError(f"program base must be a multiple of {INSTRUCTION_BYTES}, "
                             f"not {base:#x}")
        counters = dict.fromkeys(COUNTERS, 0)
        tokens = dict.fromkeys(_CHANNELS, 0)
        for index in range(length):
            addr = base + index * INSTRUCTION_BYTES
            try:
                opcode, f = self._check(self._fetch(addr), tokens)
                if opcode == Opcode.END:
                    counters["INSTRUCTIONS"] += 1
                    return CoreResult(CoreError.NONE, 0, counters)
                self._execute(opcode, f, counters)
            except _Fault as fault:
                return CoreResult(fault.code, addr, counters)
            counters["INSTRUCTIONS"] += 1
        return CoreResult(CoreError.PROGRAM_OVERRUN, base + length * INSTRUCTION_BYTES, counters)

    def _check(self, word, tokens):
        """Decode ``word`` and make every check that needs no data; take its tokens."""
        opcode, f, reserved = decode(word)
        if not isinstance(opcode, Opcode):
            raise _Fault(CoreError.ILLEGAL_OPCODE)
        if opcode == Opcode.VECTOR and not self.config.vector_unit:
            raise _Fault(CoreError.NO_VECTOR_UNIT)
        flags = {name: f[name] for name in TOKEN_FLAGS}
        if reserved or (opcode == Opcode.SYNC and f["queue"] > max(Queue)):
            raise _Fault(CoreError.BAD_FIELD)
        if opcode == Opcode.END:
            if any(flags.values()):
                raise _Fault(CoreError.BAD_FIELD)
            return opcode, f
        queue = Queue(f["queue"]) if opcode == Opcode.SYNC else QUEUE_OF[opcode]
        neighbours = {"prev": Queue(queue - 1) if queue > Queue.LOAD else None,
                      "next": Queue(queue + 1) if queue < Queue.STORE else None}
        if any(flags[f"{kind}_{side}"] and neighbours[side] is None
               for kind in ("pop", "push") for side in ("prev", "next")):
            raise _Fault(CoreError.BAD_FIELD)
        if opcode == Opcode.GEMM:
            self._check_gemm(f)
        elif opcode == Opcode.VECTOR:
            self._check_vector(f)
        # Pops first, then pushes, each in the order prev, next.
        for side in ("prev", "next"):
            if flags[f"pop_{side}"]:
                channel = (neighbours[side], queue)
                if tokens[channel] == 0:
                    raise _Fault(CoreError.TOKEN_UNDERFLOW)
                tokens[channel] -= 1
        for side in ("prev", "next"):
            if flags[f"push_{side}"]:
                channel = (queue, neighbours[side])
                if tokens[channel] == MAX_TOKENS:
                    raise _Fault(CoreError.TOKEN_OVERFLOW)
                tokens[channel] += 1
        return opcode, f

    def _check_gemm(self, f):
        cfg = self.config
        if f["k"] > cfg.rows or f["n"] > cfg.cols:
            raise _Fault(CoreError.BAD_FIELD)
        self._operand(f["act_addr"], 0, f["m"] and 1, f["m"])
        self._operand(f["w_addr"], 0, f["k"] and 1, f["k"])
        if f["acc_addr"] + f["m"] > cfg.acc_depth:
            raise _Fault(CoreError.ACC_RANGE)

    def _check_vector(self, f):
        cfg = self.config
        if f["op"] > max(VectorOp) or not 1 <= f["length"] <= cfg.max_row:
            raise _Fault(CoreError.BAD_FIELD)
        if f["rows"] == 0:
            return
        op, beats = VectorOp(f["op"]), -(-f["length"] // cfg.cols)
        if op == VectorOp.REQUANTIZE:
            acc_lo, acc_hi = acc_range(cfg)
            self._operand(f["src"], f["src_stride"], f["rows"], beats, step=cfg.acc_row_bytes,
                          lo=acc_lo, hi=acc_hi)
        else:
            self._operand(f["src"], f["src_stride"], f["rows"], beats)
        if op == VectorOp.ADD:
            self._operand(f["src2"], f["src2_stride"], f["rows"], beats)
        self._operand(f["dst"], f["dst_stride"], f["rows"], beats)
        size = record_layout(op, f["length"])[1]
        self._operand(f["params"], 0, 1, -(-size // self.pitch))

    def _operand(self, addr, stride, rows, beats, *, step=None, lo=0, hi=None):
        """``LOCAL_RANGE`` unless ``rows`` rows of ``beats`` beats of ``step`` bytes (a
        vector), row ``r`` at ``addr + r * stride``, are aligned and inside ``[lo, hi)`` (the
        scratchpad)."""
        step = self.pitch if step is None else step
        hi = self.config.spad_bytes if hi is None else hi
        if rows == 0 or beats == 0:
            return
        if (addr - lo) % step or stride % step or addr < lo or \
                addr + (rows - 1) * stride + beats * step > hi:
            raise _Fault(CoreError.LOCAL_RANGE)

    def _execute(self, opcode, f, counters):
        if opcode in (Opcode.LOAD, Opcode.STORE):
            self._dma(opcode == Opcode.LOAD, f, counters)
        elif opcode == Opcode.GEMM:
            self._gemm(f)
            counters["MACS"] += f["m"] * f["k"] * f["n"]
        elif opcode == Opcode.VECTOR:
            self._vector(f)

    # -- units --------------------------------------------------------------------------------

    def _dma(self, load, f, counters):
        cfg, nb = self.config, self.config.bus_bytes
        desc = Desc(f["ext_addr"], f["local_addr"], f["rows"], f["row_bytes"], f["ext_stride"],
                    f["local_stride"])
        window = (self.window[0], min(self.window[1], 1 << cfg.addr_width))
        code = expected_code(desc, nb, window, cfg.spad_bytes,
                             acc=None if load else acc_range(cfg))
        if code != DmaError.NONE:
            raise _Fault(DMA_ERRORS[code])
        bursts = reference_bursts(desc, nb)
        failed, code = bus_outcome(self.response, bursts, nb)
        done = bursts[:failed]
        if load:
            copy_bursts(done, load=True, memory=self.memory, spad=self.spad)
        else:
            local = np.concatenate([self.spad, np.zeros(cfg.acc_base - cfg.spad_bytes, np.uint8),
                                    acc_image(self.acc)])
            copy_bursts(done, load=False, memory=self.memory, spad=local)
        counters["DMA_READ_BYTES" if load else "DMA_WRITE_BYTES"] += sum(b.nbytes for b in done)
        if code != DmaError.NONE:
            raise _Fault(DMA_ERRORS[code])

    def _vectors(self, addr, count, lanes):
        """``count`` scratchpad vectors from ``addr``, their first ``lanes`` bytes, as int8."""
        rows = [self.spad[addr + i * self.pitch:][:lanes] for i in range(count)]
        return np.array(rows, np.uint8).reshape(count, lanes).view(np.int8)

    def _gemm(self, f):
        m, k, n = f["m"], f["k"], f["n"]
        a = self._vectors(f["act_addr"], m, k).astype(np.int64)
        w = self._vectors(f["w_addr"], k, n).astype(np.int64)
        rows = slice(f["acc_addr"], f["acc_addr"] + m)
        old = self.acc[rows, :n].astype(np.int64) if f["accumulate"] else 0
        self.acc[rows, :n] = ((old + a @ w + 2**31) % 2**32 - 2**31).astype(np.int32)

    def _record(self, op, f):
        """The parameter record of ``op`` as ``{name: value or array}`` (an array for every
        field of more than one value, or of one per row element even if ``length`` is 1)."""
        layout, _ = record_layout(op, f["length"])
        arrays = {field.name for field in RECORDS[op] if field.count != 1}
        out = {}
        for name, (offset, dtype, count) in layout.items():
            start = f["params"] + offset
            values = self.spad[start:start + np.dtype(dtype).itemsize * count].view(dtype)
            out[name] = values.astype(np.int64) if name in arrays else int(values[0])
        return out

    def _rows(self, addr, stride, rows, length):
        """``rows`` int8 rows of ``length`` elements from the scratchpad."""
        cols, beats = self.config.cols, -(-length // self.config.cols)
        return np.stack([self._vectors(addr + r * stride, beats, cols).reshape(-1)[:length]
                         for r in range(rows)])

    def _vector(self, f):
        cfg = self.config
        op, rows, length = VectorOp(f["op"]), f["rows"], f["length"]
        if rows == 0:
            return
        p = self._record(op, f)
        bad = _RecordCheck(p)
        if op == VectorOp.REQUANTIZE:
            beats = -(-length // cfg.cols)
            first = (f["src"] - cfg.acc_base) // cfg.acc_row_bytes
            step = f["src_stride"] // cfg.acc_row_bytes
            acc = np.stack([self.acc[first + r * step:][:beats].reshape(-1)[:length]
                            for r in range(rows)])
            bad.multiplier("multiplier", "shift")
            bad.clamp()
            out = requantize(acc, p["multiplier"], p["shift"], p["zero_point"], p["act_min"],
                             p["act_max"])
        else:
            x = self._rows(f["src"], f["src_stride"], rows, length)
            if op == VectorOp.LUT:
                out = apply_lut(x, p["table"].astype(np.int8))
            elif op == VectorOp.CLAMP:
                bad.clamp()
                out = np.clip(x, p["act_min"], p["act_max"]).astype(np.int8)
            elif op == VectorOp.ADD:
                for name in ("input1", "input2", "output"):
                    bad.multiplier(f"{name}_multiplier", f"{name}_shift")
                bad.clamp()
                params = AddParams(1.0, p["input1_zero_point"], 1.0, p["input2_zero_point"], 1.0,
                                   p["output_zero_point"], p["input1_multiplier"],
                                   p["input1_shift"], p["input2_multiplier"], p["input2_shift"],
                                   p["output_multiplier"], p["output_shift"])
                y = self._rows(f["src2"], f["src2_stride"], rows, length)
                out = add(x, y, params, p["act_min"], p["act_max"])
            elif op == VectorOp.SOFTMAX:
                bad.require(bool((p["exp_table"] < 2**31).all()))
                out = softmax_from_table(x, p["exp_table"])
            else:
                bad.require(p["gamma_shift"] <= 23 and 0 < p["epsilon"] < 2**60 and
                            bool(((p["beta"] >= -2**23) & (p["beta"] < 2**23)).all()))
                params = LayerNormParams(length, p["epsilon"], p["gamma"], p["gamma_shift"],
                                         p["beta"], norm_frac_bits(length),
                                         p["output_zero_point"])
                out = layernorm(x, params)
        self._write_rows(f["dst"], f["dst_stride"], out)

    def _write_rows(self, addr, stride, out):
        """Write int8 rows to the scratchpad, ``cols`` lanes a beat, zeros past a row's end."""
        cols = self.config.cols
        rows, length = out.shape
        beats = -(-length // cols)
        padded = np.zeros((rows, beats * cols), np.int8)
        padded[:, :length] = out
        for r in range(rows):
            for b in range(beats):
                at = addr + r * stride + b * self.pitch
                self.spad[at:at + cols] = padded[r, b * cols:(b + 1) * cols].view(np.uint8)


class _RecordCheck:
    """Checks of a VECTOR parameter record: each raises ``VECTOR_PARAM`` on a value the
    vector unit flags as an error."""

    def __init__(self, record):
        self._record = record

    @staticmethod
    def require(ok):
        if not ok:
            raise _Fault(CoreError.VECTOR_PARAM)

    def multiplier(self, multiplier, shift):
        """A Q0.31 multiplier is 0 or in ``[2**30, 2**31)`` and its shift in ``[-31, 30]``."""
        m, s = self._record[multiplier], self._record[shift]
        self.require((m == 0 or 2**30 <= m < 2**31) and -31 <= s <= 30)

    def clamp(self):
        self.require(self._record["act_min"] <= self._record["act_max"])
