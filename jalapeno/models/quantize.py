"""Post-training int8 quantization of the code-completion model, and its weight file.

:func:`calibrate` runs the float model (:mod:`jalapeno.models.transformer`) over calibration
text and picks each activation's quantization from the range it saw there:

* symmetric (zero point 0) where an int8 x int8 product needs it: the attention's ``q``,
  ``k``, ``v`` and scores (the array multiplies raw values, and a zero point on both sides of
  a product of two activations would need a data-dependent correction);
* asymmetric (the whole int8 range over ``[min, max]``, 0 included) everywhere else: the
  layernorm and GELU outputs, the residual stream, the projections.

Ranges end at the :data:`CLIP` percentile of what calibration saw, not at the extremes.

Weights are symmetric int8 with one scale per group of
:data:`~jalapeno.compiler.graph.SCALE_GROUP` output columns (the hardware requantizes a tile
of columns with one multiplier); biases stay float and the compiler quantizes them with the
input's scale. Embeddings are int8 tables with one scale each; the host adds the token and
position rows and quantizes the sum.

The result, a :class:`QuantModel`, is written to and read from one ``.npz`` file:
``python -m jalapeno.models.quantize`` makes ``jalapeno/models/data/coder.int8.npz`` from the
float weights and ``calib.txt``.
"""

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jalapeno.compiler.graph import SCALE_GROUP, LinearWeights, Quant

from .tokenizer import encode
from .transformer import FloatModel, ModelConfig, load_model, read_weights

__all__ = ["QuantModel", "calibrate", "save_quant", "load_quant", "DATA", "INT8_FILE",
           "FLOAT_FILE", "LINEARS", "NORMS", "SYMMETRIC", "LAYERNORM_EPSILON"]

#: The shipped files.
DATA = Path(__file__).parent / "data"
FLOAT_FILE = DATA / "coder.npz"
INT8_FILE = DATA / "coder.int8.npz"

#: Each layer's linear layers: name, weight, bias, and the activation point of the input.
LINEARS = (("q", "wq", "bq", "ln1"), ("k", "wk", "bk", "ln1"), ("v", "wv", "bv", "ln1"),
           ("o", "wo", "bo", "attn"), ("ff1", "w1", "b1", "ln2"), ("ff2", "w2", "b2", "gelu"))
#: Each layer's layernorms: name, gain, bias.
NORMS = (("ln1", "ln1_g", "ln1_b"), ("ln2", "ln2_g", "ln2_b"))
#: Activation points quantized with a zero point of 0.
SYMMETRIC = ("q", "k", "v", "scores")
LAYERNORM_EPSILON = 1e-5
#: Percentile of the calibration values an activation's range ends at: the rare outliers past
#: it saturate, and every other value gets finer steps (measured on the held-out text: top-1
#: agreement with the float model 0.943 at 99.99, 0.923 with the whole range).
CLIP = 99.99
_CONFIG_FIELDS = ("vocab", "layers", "d_model", "heads", "d_ff", "context")


@dataclass
class QuantModel:
    """The int8 model.

    Attributes
    ----------
    config : ModelConfig
    linears : dict of str to LinearWeights
        ``l{i}.q``, ``l{i}.k``, ``l{i}.v``, ``l{i}.o``, ``l{i}.ff1``, ``l{i}.ff2`` and ``lm``.
    norms : dict of str to (gamma, beta)
        ``l{i}.ln1``, ``l{i}.ln2`` and ``lnf``, float.
    quants : dict of str to Quant
        Every activation point of :meth:`FloatModel.forward`'s record but the logits.
    tok_emb, pos_emb : ndarray of int8
    tok_scale, pos_scale : float
    """

    config: ModelConfig
    linears: dict
    norms: dict
    quants: dict
    tok_emb: np.ndarray
    tok_scale: float
    pos_emb: np.ndarray
    pos_scale: float

    def embed(self, tokens, positions):
        """The int8 input rows of ``tokens`` at ``positions``, quantized as ``embed``."""
        real = self.tok_emb[tokens].astype(np.float64) * self.tok_scale + \
            self.pos_emb[positions].astype(np.float64) * self.pos_scale
        q = self.quants["embed"]
        return np.clip(np.rint(real / q.scale) + q.zero_point, -128, 127).astype(np.int8)


def _symmetric(values):
    return Quant(max(float(np.percentile(np.abs(values), CLIP)), 1e-6) / 127, 0)


def _asymmetric(values):
    lo = min(float(np.percentile(values, 100 - CLIP)), 0.0)
    hi = max(float(np.percentile(values, CLIP)), 0.0)
    scale = max(hi - lo, 1e-6) / 255
    return Quant(scale, int(np.clip(round(-128 - lo / scale), -128, 127)))


def _weights(name, w, bias):
    """Symmetric int8 weights, one scale per group of output columns."""
    k, n = w.shape
    groups = -(-n // SCALE_GROUP)
    padded = np.zeros((k, groups * SCALE_GROUP))
    padded[:, :n] = np.abs(w)
    scale = np.maximum(padded.reshape(k, groups, SCALE_GROUP).max(axis=(0, 2)), 1e-8) / 127
    scale = np.repeat(scale, SCALE_GROUP)[:n]
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return LinearWeights(name, q, scale, np.asarray(bias, np.float64))


def _table(table):
    scale = max(float(np.abs(table).max()), 1e-6) / 127
    return np.clip(np.rint(table / scale), -127, 127).astype(np.int8), scale


def calibrate(model: FloatModel, text: str, *, window=None):
    """Quantize ``model`` with the activation ranges it shows on ``text`` (windows of
    ``window`` tokens, the context by default).

    Returns
    -------
    QuantModel
    """
    cfg, p = model.config, model.params
    window = window or cfg.context
    ids = np.asarray(encode(text))
    record = {}
    for begin in range(0, len(ids), window):
        model.forward(ids[begin:begin + window], record=record)
    quants = {}
    for name, values in record.items():
        if name == "logits":
            continue
        point = name.rpartition(".")[2]
        quants[name] = (_symmetric if point in SYMMETRIC else _asymmetric)(np.asarray(values))
    linears, norms = {}, {}
    for layer in range(cfg.layers):
        for name, w, b, _ in LINEARS:
            linears[f"l{layer}.{name}"] = _weights(f"l{layer}.{name}", p[f"l{layer}.{w}"],
                                                  p[f"l{layer}.{b}"])
        for name, g, b in NORMS:
            norms[f"l{layer}.{name}"] = (p[f"l{layer}.{g}"], p[f"l{layer}.{b}"])
    linears["lm"] = _weights("lm", p["w_lm"], p["b_lm"])
    norms["lnf"] = (p["lnf_g"], p["lnf_b"])
    tok, tok_scale = _table(p["tok_emb"])
    pos, pos_scale = _table(p["pos_emb"])
    return QuantModel(cfg, linears, norms, quants, tok, tok_scale, pos, pos_scale)


def save_quant(path, qm: QuantModel):
    """Write ``qm`` to the ``.npz`` file ``path``."""
    arrays = {"config": np.array([getattr(qm.config, f) for f in _CONFIG_FIELDS], np.int64),
              "tok_emb": qm.tok_emb, "pos_emb": qm.pos_emb,
              "emb_scales": np.array([qm.tok_scale, qm.pos_scale])}
    for name, lw in qm.linears.items():
        arrays[f"w:{name}"] = lw.w
        arrays[f"s:{name}"] = lw.scale.astype(np.float32)
        arrays[f"b:{name}"] = lw.bias.astype(np.float32)
    for name, (gamma, beta) in qm.norms.items():
        arrays[f"n:{name}"] = np.stack([gamma, beta]).astype(np.float32)
    for name, q in qm.quants.items():
        arrays[f"q:{name}"] = np.array([q.scale, q.zero_point], np.float64)
    with open(path, "wb") as file:
        np.savez_compressed(file, **arrays)


def load_quant(path):
    """The :class:`QuantModel` in the file ``path`` that :func:`save_quant` wrote.

    Raises
    ------
    FileNotFoundError
        ``"weight file <path> does not exist"``.
    ValueError
        ``"weight file <path> is corrupt: <reason>"`` for anything unreadable or inconsistent.
    """
    arrays, corrupt = read_weights(path)
    try:
        cfg = ModelConfig(*(int(v) for v in arrays["config"]))
        linears = {key[2:]: LinearWeights(key[2:], arrays[key], arrays[f"s:{key[2:]}"]
                                          .astype(np.float64), arrays[f"b:{key[2:]}"]
                                          .astype(np.float64))
                   for key in arrays if key.startswith("w:")}
        norms = {key[2:]: (value[0].astype(np.float64), value[1].astype(np.float64))
                 for key, value in arrays.items() if key.startswith("n:")}
        quants = {key[2:]: Quant(float(value[0]), int(value[1]))
                  for key, value in arrays.items() if key.startswith("q:")}
        tok_scale, pos_scale = (float(s) for s in arrays["emb_scales"])
        qm = QuantModel(cfg, linears, norms, quants, arrays["tok_emb"], tok_scale,
                        arrays["pos_emb"], pos_scale)
        _check(qm)
    except KeyError as exc:
        raise corrupt(f"it has no array {exc}") from None
    except (ValueError, TypeError) as exc:
        raise corrupt(exc) from None
    return qm


def _check(qm: QuantModel):
    """Raise ValueError unless every array ``qm`` needs is there with its shape."""
    cfg = qm.config
    d, f, v = cfg.d_model, cfg.d_ff, cfg.vocab
    shapes = {"lm": (d, v)}
    for layer in range(cfg.layers):
        for name, k, n in (("q", d, d), ("k", d, d), ("v", d, d), ("o", d, d), ("ff1", d, f),
                           ("ff2", f, d)):
            shapes[f"l{layer}.{name}"] = (k, n)
    for name, shape in shapes.items():
        if name not in qm.linears or qm.linears[name].w.shape != shape:
            raise ValueError(f"linear {name} is not {shape[0]} x {shape[1]} int8")
    if qm.tok_emb.shape != (v, d) or qm.pos_emb.shape != (cfg.context, d) or \
            qm.tok_emb.dtype != np.int8 or qm.pos_emb.dtype != np.int8:
        raise ValueError("the embedding tables are not int8 of the model's shape")
    needed = ["embed", "lnf"] + [f"l{i}.{p}" for i in range(cfg.layers) for p in (
        "ln1", "q", "k", "v", "scores", "attn", "proj", "resid1", "ln2", "ff1", "gelu", "ff2",
        "resid2")]
    missing = [name for name in needed if name not in qm.quants]
    if missing:
        raise ValueError(f"no quantization for {missing[0]}")
    for name in ["lnf"] + [f"l{i}.{n}" for i in range(cfg.layers) for n in ("ln1", "ln2")]:
        if name not in qm.norms or qm.norms[name][0].shape != (d,):
            raise ValueError(f"layernorm {name} is missing or not of length {d}")
    if not all(math.isfinite(s) and s > 0 for s in (qm.tok_scale, qm.pos_scale)):
        raise ValueError("embedding scales must be positive")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Quantize the float model to int8.")
    parser.add_argument("--float", dest="source", default=str(FLOAT_FILE))
    parser.add_argument("--calib", default=str(DATA / "calib.txt"))
    parser.add_argument("--out", default=str(INT8_FILE))
    args = parser.parse_args(argv)
    model = load_model(args.source)
    qm = calibrate(model, Path(args.calib).read_text())
    save_quant(args.out, qm)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
