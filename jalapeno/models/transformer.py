"""The float reference of the code-completion model: a GPT-2 style decoder in NumPy float32.

This is the model the int8 accelerator is measured against. The weights come from
:mod:`jalapeno.models.train` (PyTorch, the same architecture and parameter layout) and are
shipped as float16 in an ``.npz`` (:func:`save_params`, :func:`load_model`); here they are
computed in float32.

Architecture, block by block (pre-LayerNorm, ``x @ W`` convention, ``D = d_model``)::

    x = tok_emb[tokens] + pos_emb[positions]                              # "embed"
    per layer l:
        x = x + (attn(LN1(x)) @ wo + bo)       # causal, heads concatenated in order
        x = x + (gelu(LN2(x) @ w1 + b1) @ w2 + b2)
    logits = LNf(x) @ w_lm + b_lm

LayerNorm has epsilon 1e-5; GELU is the exact ``0.5 x (1 + erf(x / sqrt 2))``; head ``h``
uses columns ``h * head_dim`` to ``(h + 1) * head_dim`` of q, k and v, and its scores are
``q k^T / sqrt(head_dim)``. :meth:`FloatModel.forward` can record the float activations at
every named point (:data:`RECORD_POINTS`) so that int8 scales can be calibrated from them.
"""

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

__all__ = [
    "ModelConfig", "param_shapes", "RECORD_POINTS", "KVCache", "FloatModel", "save_params",
    "read_weights", "load_model", "perplexity",
]

_LN_EPS = 1e-5
_ERF = np.vectorize(math.erf, otypes=[np.float64])

#: The activations :meth:`FloatModel.forward` records, per layer ``l`` as ``l{l}.<point>``.
RECORD_POINTS = ("ln1", "q", "k", "v", "scores", "attn", "proj", "resid1", "ln2", "ff1",
                 "gelu", "ff2", "resid2")


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the model; the defaults are the shipped model's.

    Attributes
    ----------
    vocab : int
        Tokens in the vocabulary.
    layers : int
        Transformer blocks.
    d_model : int
        Width of the residual stream.
    heads : int
        Attention heads; must divide ``d_model``.
    d_ff : int
        Hidden width of the feed-forward block.
    context : int
        Longest sequence, and so the rows of ``pos_emb`` and of a :class:`KVCache`.

    Raises
    ------
    ValueError
        If a field is not a positive integer, or ``heads`` does not divide ``d_model``.
    """

    vocab: int = 96
    layers: int = 2
    d_model: int = 64
    heads: int = 2
    d_ff: int = 256
    context: int = 128

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field.name} must be a positive integer, not {value!r}")
        if self.d_model % self.heads:
            raise ValueError(
                f"d_model {self.d_model} is not divisible by heads {self.heads}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.heads


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every parameter, in a fixed order (the ``.npz`` and torch order)."""
    d, f, v = config.d_model, config.d_ff, config.vocab
    shapes = {"tok_emb": (v, d), "pos_emb": (config.context, d)}
    for layer in range(config.layers):
        for name, shape in [
            ("ln1_g", (d,)), ("ln1_b", (d,)),
            ("wq", (d, d)), ("wk", (d, d)), ("wv", (d, d)), ("wo", (d, d)),
            ("bq", (d,)), ("bk", (d,)), ("bv", (d,)), ("bo", (d,)),
            ("ln2_g", (d,)), ("ln2_b", (d,)),
            ("w1", (d, f)), ("b1", (f,)), ("w2", (f, d)), ("b2", (d,)),
        ]:
            shapes[f"l{layer}.{name}"] = shape
    shapes.update({"lnf_g": (d,), "lnf_b": (d,), "w_lm": (d, v), "b_lm": (v,)})
    return shapes


@dataclass
class KVCache:
    """The keys and values of the tokens decoded so far, for :meth:`FloatModel.step`.

    Attributes
    ----------
    keys, values : list of numpy.ndarray
        Per layer, a float32 ``[context, d_model]`` array whose first ``length`` rows are
        the keys (values) of positions ``0 .. length - 1``, heads concatenated.
    length : int
        Tokens in the cache, which is the position of the next one.
    """

    keys: list[np.ndarray]
    values: list[np.ndarray]
    length: int = 0

    @classmethod
    def empty(cls, config: ModelConfig) -> "KVCache":
        """A cache with room for ``config.context`` tokens and none in it."""
        shape = (config.context, config.d_model)
        return cls(keys=[np.zeros(shape, np.float32) for _ in range(config.layers)],
                   values=[np.zeros(shape, np.float32) for _ in range(config.layers)])


def _record(record, name, array):
    """Append a copy of ``array`` to ``record[name]`` (along axis 0), if recording."""
    if record is None:
        return
    array = np.array(array, dtype=np.float32)
    record[name] = np.concatenate([record[name], array]) if name in record else array


def _layer_norm(x, gain, bias):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(_LN_EPS)) * gain + bias


def _gelu(x):
    return (0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)))).astype(np.float32)


class FloatModel:
    """The model in float32, with whole-sequence and one-token-at-a-time inference.

    Parameters
    ----------
    config : ModelConfig
    params : dict of str to array_like
        Every parameter of :func:`param_shapes`, and nothing else; copied as float32.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`ModelConfig`.
    ValueError
        If a parameter is missing, unexpected, misshaped or not finite.
    """

    def __init__(self, config: ModelConfig, params: dict):
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, not {config!r}")
        shapes = param_shapes(config)
        for name in params:
            if name not in shapes:
                raise ValueError(f"unexpected parameter {name!r}")
        self.config = config
        self.params = {}
        for name, shape in shapes.items():
            if name not in params:
                raise ValueError(f"parameter {name!r} is missing")
            array = np.array(params[name], dtype=np.float32)
            if array.shape != shape:
                raise ValueError(
                    f"parameter {name!r} has shape {array.shape}, expected {shape}")
            if not np.isfinite(array).all():
                raise ValueError(f"parameter {name!r} has values that are not finite")
            self.params[name] = array

    def forward(self, tokens, *, record: dict | None = None) -> np.ndarray:
        """The float32 logits ``[T, vocab]`` after each of the ``T`` tokens at positions
        ``0 .. T - 1``.

        If ``record`` is a dict, the activations named ``embed``, ``l{l}.<point>`` for each
        layer and point of :data:`RECORD_POINTS`, ``lnf`` and ``logits`` are appended to it
        (rows along axis 0, so calls accumulate). ``l{l}.scores`` holds only the causal
        entries, flattened head by head, each head row by row.

        Raises
        ------
        ValueError
            If ``tokens`` is empty, longer than the context or holds an id outside the
            vocabulary.
        """
        ids = self._check_tokens(tokens)
        if len(ids) > self.config.context:
            raise ValueError(f"sequence of {len(ids)} tokens is longer than the context "
                             f"of {self.config.context}")
        return self._run(ids, KVCache.empty(self.config), record)

    def step(self, token: int, position: int, cache: KVCache) -> np.ndarray:
        """The float32 logits ``[vocab]`` after ``token`` at ``position``, given the earlier
        tokens' keys and values in ``cache``, which gains this token's.

        Equal to the last row of :meth:`forward` over the whole prefix, at O(context) cost.

        Raises
        ------
        ValueError
            If ``position`` is not ``cache.length`` or is outside the context, or ``token``
            is outside the vocabulary.
        """
        if position != cache.length:
            raise ValueError(f"position {position} does not follow the {cache.length} "
                             f"tokens in the cache")
        if position >= self.config.context:
            raise ValueError(f"position {position} is outside the context of "
                             f"{self.config.context}")
        return self._run(self._check_tokens([token]), cache, None)[0]

    def _check_tokens(self, tokens):
        ids = np.asarray(tokens)
        if ids.shape == (0,):
            raise ValueError("sequence is empty")
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError("tokens must be a 1-D sequence of integers")
        bad = np.flatnonzero((ids < 0) | (ids >= self.config.vocab))
        if len(bad):
            raise ValueError(f"token {ids[bad[0]]} at position {bad[0]} is not in "
                             f"0..{self.config.vocab - 1}")
        return ids

    def _run(self, ids, cache, record):
        """Logits of ``ids`` at positions from ``cache.length`` on; fills the cache."""
        p, start, count = self.params, cache.length, len(ids)
        x = p["tok_emb"][ids] + p["pos_emb"][start:start + count]
        _record(record, "embed", x)
        # Query i (position start + i) sees the keys of positions 0 .. start + i.
        visible = np.arange(start + count)[None, :] <= np.arange(start, start + count)[:, None]
        for layer in range(self.config.layers):
            x = self._block(layer, x, cache, visible, record)
        cache.length = start + count
        x = _layer_norm(x, p["lnf_g"], p["lnf_b"])
        _record(record, "lnf", x)
        logits = x @ p["w_lm"] + p["b_lm"]
        _record(record, "logits", logits)
        return logits

    def _block(self, layer, x, cache, visible, record):
        cfg, start, count = self.config, cache.length, len(x)
        prefix = f"l{layer}."
        p = {key[len(prefix):]: value for key, value in self.params.items()
             if key.startswith(prefix)}

        def rec(name, array):
            _record(record, f"l{layer}.{name}", array)

        h = _layer_norm(x, p["ln1_g"], p["ln1_b"])
        rec("ln1", h)
        q, k, v = (h @ p["wq"] + p["bq"], h @ p["wk"] + p["bk"], h @ p["wv"] + p["bv"])
        rec("q", q)
        rec("k", k)
        rec("v", v)
        cache.keys[layer][start:start + count] = k
        cache.values[layer][start:start + count] = v
        end = start + count

        def split(a):  # [n, D] -> [heads, n, head_dim]
            return a.reshape(len(a), cfg.heads, cfg.head_dim).transpose(1, 0, 2)

        scores = split(q) @ split(cache.keys[layer][:end]).transpose(0, 2, 1)
        scores = scores / np.sqrt(np.float32(cfg.head_dim))
        rec("scores", scores[:, visible].reshape(-1))
        scores = np.where(visible, scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        attn = (weights @ split(cache.values[layer][:end])).transpose(1, 0, 2)
        attn = attn.reshape(count, cfg.d_model)
        rec("attn", attn)
        proj = attn @ p["wo"] + p["bo"]
        rec("proj", proj)
        x = x + proj
        rec("resid1", x)
        h = _layer_norm(x, p["ln2_g"], p["ln2_b"])
        rec("ln2", h)
        ff1 = h @ p["w1"] + p["b1"]
        rec("ff1", ff1)
        gelu = _gelu(ff1)
        rec("gelu", gelu)
        ff2 = gelu @ p["w2"] + p["b2"]
        rec("ff2", ff2)
        x = x + ff2
        rec("resid2", x)
        return x


_CONFIG_FIELDS = tuple(field.name for field in fields(ModelConfig))


def save_params(path, config: ModelConfig, params: dict) -> None:
    """Write ``params`` to the ``.npz`` file ``path`` (exactly that name), as float16, with
    ``config`` as the int array ``config`` (fields in declaration order).

    Raises
    ------
    ValueError
        If the parameters do not fit ``config`` (as :class:`FloatModel`) or a value is too
        large for float16.
    """
    model = FloatModel(config, params)
    arrays = {"config": np.array([getattr(config, name) for name in _CONFIG_FIELDS], np.int64)}
    for name, array in model.params.items():
        if np.abs(array).max(initial=0) > np.finfo(np.float16).max:
            raise ValueError(f"parameter {name!r} does not fit in float16")
        arrays[name] = array.astype(np.float16)
    with open(path, "wb") as file:
        np.savez_compressed(file, **arrays)


def read_weights(path):
    """The arrays of the ``.npz`` weight file ``path``, and a function making the error for a
    reason it is corrupt: the one reader of every weight file (float and int8).

    Raises
    ------
    FileNotFoundError
        ``"weight file <path> does not exist"``.
    ValueError
        ``"weight file <path> is corrupt: <reason>"`` if it is not a readable ``.npz``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")

    def corrupt(reason):
        return ValueError(f"weight file {path} is corrupt: {reason}")

    try:
        # Opened here, not by np.load, which leaks its handle when the archive is truncated.
        with open(path, "rb") as file:
            archive = np.load(file, allow_pickle=False)
            if isinstance(archive, np.lib.npyio.NpzFile):
                arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # np.load raises what its parsers do: BadZipFile, TokenError...
        kind = type(exc).__qualname__
        if type(exc).__module__ != "builtins":
            kind = f"{type(exc).__module__}.{kind}"
        raise corrupt(f"cannot read it as an .npz archive ({kind})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise corrupt("it is a single .npy array, not an .npz archive")
    return arrays, corrupt


def load_model(path) -> FloatModel:
    """The :class:`FloatModel` of the weight file ``path`` written by :func:`save_params`.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        ``"weight file <path> is corrupt: <reason>"`` if the file is not a readable ``.npz``
        or its arrays do not make a valid model.
    """
    arrays, corrupt = read_weights(path)
    if "config" not in arrays:
        raise corrupt("it has no 'config' array")
    values = arrays.pop("config")
    if values.shape != (len(_CONFIG_FIELDS),) or values.dtype.kind not in "iu":
        raise corrupt(f"its 'config' array is {values.dtype}{list(values.shape)}, expected "
                      f"{len(_CONFIG_FIELDS)} integers")
    for name, array in arrays.items():
        if array.dtype.kind != "f":
            raise corrupt(f"array {name!r} is {array.dtype}, not floating point")
    try:
        config = ModelConfig(*(int(value) for value in values))
        return FloatModel(config, arrays)
    except ValueError as exc:
        raise corrupt(exc) from exc


def perplexity(model: FloatModel, tokens, *, window: int) -> float:
    """``exp`` of the mean negative log likelihood of each next token.

    ``tokens`` is cut into non-overlapping windows of ``window`` tokens, each run from
    position 0 on its own, and every token but a window's first is predicted from those
    before it in its window (a last window of one token predicts nothing).

    Raises
    ------
    ValueError
        If ``window`` is not in ``2 .. context`` or there are fewer than 2 tokens.
    """
    if not isinstance(window, int) or not 2 <= window <= model.config.context:
        raise ValueError(f"window {window!r} is not in 2..{model.config.context}")
    ids = np.asarray(tokens)
    if len(ids) < 2:
        raise ValueError("perplexity needs at least 2 tokens")
    total, count = 0.0, 0
    for begin in range(0, len(ids) - 1, window):
        chunk = ids[begin:begin + window]
        logits = model.forward(chunk).astype(np.float64)[:-1]
        top = logits.max(axis=-1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
        total += float((log_norm - logits[np.arange(len(chunk) - 1), chunk[1:]]).sum())
        count += len(chunk) - 1
    return math.exp(total / count)
