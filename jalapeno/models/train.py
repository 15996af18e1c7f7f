"""Train the code-completion model on the Python standard library, and write what ships.

Run as ``python -m jalapeno.models.train [--steps N] [--out DIR] [--seed S]``, or with
``--qat [--init FILE]`` to fine-tune trained weights for the int8 model. It needs PyTorch
(the ``train`` extra); importing this module does not.

The corpus is the ``.py`` files of the running interpreter's standard library (not
``site-packages``, not test directories), sorted by path and brought into the vocabulary by
:func:`~jalapeno.models.tokenizer.normalise`. A seeded shuffle of the files holds
:data:`HELDOUT_FRACTION` of them out: they are never trained on, and the held-out loss and
``heldout.txt`` come from them. So the figures depend on the Python version whose library
was read (the shipped weights: CPython 3.11).

The torch model is :func:`_logits`, the architecture of :class:`FloatModel` written again
with the same parameter names and layouts, so its weights load into
:class:`~jalapeno.models.transformer.FloatModel` unchanged. Training is AdamW with linear
warmup then cosine decay, on batches of random windows of ``context + 1`` tokens, on one
thread (the machine is shared). It writes to ``--out``:

``coder.npz``
    The weights, float16 (:func:`~jalapeno.models.transformer.save_params`).
``heldout.txt``
    About :data:`EXCERPT_CHARS` characters of held-out source, for tests.
``calib.txt``
    About as much training-set source, for int8 calibration.

Quantization-aware fine-tuning (``--qat``) starts from the weights in ``--init`` (the
shipped ``coder.npz`` by default) and writes only ``coder.npz``; the int8 model is then made
from it by ``python -m jalapeno.models.quantize``. Each step runs the batch twice:

* the float model, its weight matrices and embedding tables rounded to int8 as
  :mod:`~jalapeno.models.quantize` rounds them (:class:`_QuantWeights`);
* the int8 model (:class:`_FakeQuant`): the same, and every activation rounded where the
  int8 model quantizes it, with the scale and zero point that
  :func:`~jalapeno.models.quantize.calibrate` would give it now. The ranges are measured
  again every :data:`_RECALIBRATE_EVERY` steps, over the ``calib.txt`` beside ``--init``
  (what ``quantize`` calibrates on), by its rule: from the ``100 - CLIP`` to the ``CLIP``
  (99.99th) percentile, no moving average.

The loss is the float model's cross-entropy, plus :data:`_AGREEMENT_WEIGHT` times the KL
divergence of the int8 model's next-token distribution from the float model's, plus
:data:`_OUTLIER_WEIGHT` times the mean square by which the residual stream's values (the
``ff2``, ``resid1`` and ``resid2`` points) exceed :data:`_OUTLIER_LIMIT` in magnitude, which
keeps its int8 steps fine. Gradients pass the roundings straight through (and stop where a
value is clipped). The weights written are the rounded ones, so the float model computes
with exactly the weights the int8 model has.
"""

import argparse
import math
import sysconfig
import time
from pathlib import Path

import numpy as np

from jalapeno.compiler.graph import SCALE_GROUP
from jalapeno.models import tokenizer
from jalapeno.models.quantize import CLIP, SYMMETRIC
from jalapeno.models.transformer import (
    ModelConfig,
    load_model,
    param_shapes,
    perplexity,
    save_params,
)

__all__ = ["DEFAULT_OUT", "HELDOUT_FRACTION", "EXCERPT_CHARS", "corpus_files", "split_files",
           "read_corpus", "excerpt", "init_params", "main"]

#: Where the shipped outputs live.
DEFAULT_OUT = Path(__file__).parent / "data"
#: Share of the corpus files held out from training.
HELDOUT_FRACTION = 0.05
#: Rough size of ``heldout.txt`` and ``calib.txt``.
EXCERPT_CHARS = 6000

_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test"}
# From 2000-step trials on one core: peak rates 3e-3, 6e-3, 1e-2 and 2e-2 at batch 32 gave
# held-out losses 1.49, 1.44, 1.40 and 1.42; batch 16 and 64 did no better per second.
_BATCH = 32
_PEAK_LR = 1e-2
_FINAL_LR = 1e-4
_WARMUP = 200
_WEIGHT_DECAY = 0.05
_EVAL_EVERY = 250
_EVAL_WINDOWS = 64
_FINAL_EVAL_WINDOWS = 1024
# Quantization-aware fine-tuning. Trials of 1500 to 2500 steps from the shipped weights, the
# ranges then over the calibration text's extremes (fake-quantized top-1 agreement with the
# float model / float held-out loss, 1024 windows; the shipped weights 0.934 / 1.233): the
# int8 model's cross-entropy alone 0.935 / 1.233; with the float model's and the agreement
# term at weight 10 and the outlier term 0.957 / 1.243; the float model's alone with them
# 0.962 / 1.249 (the setting here; with the 99.99th-percentile ranges 0.966 / 1.247);
# agreement weight 20 without the outlier term 0.960 / 1.259. Distilling from the initial
# weights in place of the cross-entropy did no better.
_QAT_STEPS = 2500
_QAT_PEAK_LR = 1e-3
_QAT_FINAL_LR = 1e-4
_QAT_WARMUP = 100
#: Steps between measurements of the activation ranges during ``--qat``.
_RECALIBRATE_EVERY = 100
#: Weight of the KL divergence of the int8 model from the float model in the ``--qat`` loss.
_AGREEMENT_WEIGHT = 10.0
#: Weight of the residual stream's squared excess over :data:`_OUTLIER_LIMIT` (``--qat``).
_OUTLIER_WEIGHT = 0.3
_OUTLIER_LIMIT = 5.0
_OUTLIER_POINTS = ("ff2", "resid1", "resid2")


def corpus_files() -> list[Path]:
    """The standard library's ``.py`` files outside test directories and ``site-packages``,
    sorted by path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(path for path in root.rglob("*.py")
                  if not _SKIP_DIRS & set(path.relative_to(root).parts[:-1]))


def split_files(paths: list[Path], seed: int) -> tuple[list[Path], list[Path]]:
    """``(train, heldout)``: a seeded shuffle of ``paths`` cut at :data:`HELDOUT_FRACTION`,
    each part back in path order."""
    order = np.random.default_rng(seed).permutation(len(paths))
    held = max(1, round(HELDOUT_FRACTION * len(paths)))
    return (sorted(paths[i] for i in order[held:]), sorted(paths[i] for i in order[:held]))


def read_corpus(paths: list[Path]) -> str:
    """The files' normalised text, one after another, each ending in a newline.

    A file that is not UTF-8 loses the lines that do not decode, as :func:`normalise` drops
    the replacement characters.
    """
    texts = []
    for path in paths:
        text = tokenizer.normalise(path.read_bytes().decode("utf-8", errors="replace"))
        if text.strip():
            texts.append(text if text.endswith("\n") else text + "\n")
    return "".join(texts)


def excerpt(text: str, chars: int, pieces: int, rng: np.random.Generator) -> str:
    """About ``chars`` characters of ``text``: ``pieces`` runs of whole lines, one from a
    random place in each ``1 / pieces`` of the text, so that the sample is not one file's
    style."""
    size, part = chars // pieces, len(text) // pieces
    runs = []
    for piece in range(pieces):
        start = piece * part + int(rng.integers(0, part - 2 * size))
        begin = text.rfind("\n", 0, start) + 1
        end = text.find("\n", begin + size) + 1 or len(text)
        runs.append(text[begin:end])
    return "".join(runs)


def init_params(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """GPT-2 initial parameters: weights normal with deviation 0.02 (the output projections
    of each residual branch, ``wo`` and ``w2``, scaled down by ``sqrt(2 * layers)``), biases
    zero, LayerNorm gains one."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(config).items():
        base = name.split(".")[-1]
        if base.endswith("_g"):
            params[name] = np.ones(shape, np.float32)
        elif len(shape) == 1:
            params[name] = np.zeros(shape, np.float32)
        else:
            std = 0.02 / math.sqrt(2 * config.layers) if base in ("wo", "w2") else 0.02
            params[name] = rng.normal(0.0, std, shape).astype(np.float32)
    return params


class _Points:
    """What :func:`_logits` does at the points where the int8 model quantizes: nothing (the
    float model). Subclasses observe or fake-quantize there."""

    def act(self, name, values, where=None):
        """The activation ``values`` at the point ``name`` (``embed``, ``l{i}.<point>`` of
        :data:`~jalapeno.models.transformer.RECORD_POINTS`, ``lnf``); ``where``, if given,
        is true at the entries that are the model's (the causal scores), broadcast."""
        return values

    def weight(self, w):
        """The weight matrix ``w`` ``[in, out]`` of a linear layer."""
        return w

    def table(self, table):
        """The embedding table ``table``."""
        return table

    def probabilities(self, probs):
        """The attention probabilities ``probs`` that multiply ``v``."""
        return probs


#: The float model: :func:`_logits` with nothing done at the quantization points.
_FLOAT = _Points()


class _QuantWeights(_Points):
    """Rounds weight matrices and embedding tables as
    :func:`~jalapeno.models.quantize.calibrate` does, the gradients passing straight through.

    Parameters
    ----------
    torch : module
    """

    def __init__(self, torch):
        self.torch = torch

    def weight(self, w):
        """Symmetric int8 per group of :data:`~jalapeno.compiler.graph.SCALE_GROUP` output
        columns, the scale of each group its greatest magnitude over 127."""
        n = w.shape[1]
        groups = -(-n // SCALE_GROUP)
        peaks = self.torch.nn.functional.pad(w.detach().abs().amax(0),
                                             (0, groups * SCALE_GROUP - n))
        scale = peaks.view(groups, SCALE_GROUP).amax(1).clamp_min(1e-8) / 127
        return self._rounded(w, scale.repeat_interleave(SCALE_GROUP)[:n])

    def table(self, table):
        """Symmetric int8 with one scale, the table's greatest magnitude over 127."""
        return self._rounded(table, table.detach().abs().max().clamp_min(1e-6) / 127)

    def _rounded(self, w, scale):
        return w + (self.torch.round(w / scale).clamp(-127, 127) * scale - w).detach()


class _RangeObserver(_QuantWeights):
    """Records each activation point's range in the model with int8 weights, to quantize it
    as :func:`~jalapeno.models.quantize.calibrate` does.

    Parameters
    ----------
    torch : module

    Attributes
    ----------
    values : dict of str to list of ndarray
        The values seen at each point.
    """

    def __init__(self, torch):
        super().__init__(torch)
        self.values = {}

    def act(self, name, values, where=None):
        seen = values if where is None else values[where.expand_as(values)]
        self.values.setdefault(name, []).append(seen.detach().reshape(-1).numpy())
        return values

    def quants(self):
        """``(scale, zero_point)`` of each point by the rule of
        :func:`~jalapeno.models.quantize.calibrate`: at the points of
        :data:`~jalapeno.models.quantize.SYMMETRIC`, the :data:`~.quantize.CLIP` percentile
        of the magnitudes over 127; elsewhere the whole int8 range from the ``100 - CLIP``
        to the ``CLIP`` percentile, 0 included."""
        quants = {}
        for name, parts in self.values.items():
            values = np.concatenate(parts)
            if name.rpartition(".")[2] in SYMMETRIC:
                quants[name] = (max(float(np.percentile(np.abs(values), CLIP)), 1e-6) / 127, 0)
            else:
                lo = min(float(np.percentile(values, 100 - CLIP)), 0.0)
                hi = max(float(np.percentile(values, CLIP)), 0.0)
                scale = max(hi - lo, 1e-6) / 255
                quants[name] = (scale, int(np.clip(round(-128 - lo / scale), -128, 127)))
        return quants


class _FakeQuant(_QuantWeights):
    """Rounds weights, tables and activations as the int8 model does, with straight-through
    gradients (for an activation, those of the identity within its int8 range, zero where it
    clips); and adds up the residual stream's excess over :data:`_OUTLIER_LIMIT`.

    Parameters
    ----------
    torch : module
    quants : dict of str to (float, int)
        ``(scale, zero_point)`` of each activation point, as :meth:`_RangeObserver.quants`.

    Attributes
    ----------
    excess : torch.Tensor or float
        Over the forward passes since it was last set to 0, the sum of the mean squared
        excess of each ``ff2``, ``resid1`` and ``resid2`` point's values over
        :data:`_OUTLIER_LIMIT` in magnitude.
    """

    def __init__(self, torch, quants):
        super().__init__(torch)
        self.quants, self.excess = quants, 0.0

    def act(self, name, values, where=None):
        if name.rpartition(".")[2] in _OUTLIER_POINTS:
            self.excess = self.excess + (values.abs() - _OUTLIER_LIMIT).relu().square().mean()
        scale, zero = self.quants[name]
        clipped = values.clamp((-128 - zero) * scale, (127 - zero) * scale)
        return clipped + (self.torch.round(clipped / scale) * scale - clipped).detach()

    def probabilities(self, probs):
        """The int8 SOFTMAX's ``1/256`` steps moved to ``1/128`` steps, as
        :func:`~jalapeno.models.engine.probability_table` does: ``floor((n + 1) / 2)``
        capped at 127."""
        steps = self.torch.round(probs * 256).clamp(0, 255)
        rounded = self.torch.floor((steps + 1) / 2).clamp(max=127) / 128
        return probs + (rounded - probs).detach()


def _logits(torch, config, p, idx, points=_FLOAT):
    """The logits ``[B, T, vocab]`` of the token batch ``idx`` ``[B, T]``: the computation of
    :class:`~jalapeno.models.transformer.FloatModel`, in torch, with ``points`` (a
    :class:`_Points`) applied where the int8 model quantizes.

    The scores at masked positions are minus infinity after ``points.act`` has seen them.
    """
    functional = torch.nn.functional
    batch, length = idx.shape
    d, heads = config.d_model, config.heads
    masked = ~torch.ones(length, length, dtype=torch.bool).tril()

    def norm(x, prefix):
        return functional.layer_norm(x, (d,), p[f"{prefix}_g"], p[f"{prefix}_b"], eps=1e-5)

    def split(a):  # [B, T, D] -> [B, heads, T, head_dim]: head h is columns h*hd:(h+1)*hd
        return a.view(batch, length, heads, config.head_dim).transpose(1, 2)

    tables = points.table(p["tok_emb"])[idx] + points.table(p["pos_emb"])[:length]
    x = points.act("embed", tables)
    for layer in range(config.layers):
        w = {name: p[f"l{layer}.{name}"] for name in
             ("wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo", "w1", "b1", "w2", "b2")}

        def act(point, values, where=None, layer=layer):
            return points.act(f"l{layer}.{point}", values, where)

        def linear(h, name, w=w):
            return h @ points.weight(w[f"w{name}"]) + w[f"b{name}"]

        h = act("ln1", norm(x, f"l{layer}.ln1"))
        q, k, v = (split(act(c, linear(h, c))) for c in "qkv")
        scores = act("scores", q @ k.transpose(2, 3) / math.sqrt(config.head_dim), ~masked)
        scores = scores.masked_fill(masked, -math.inf)
        probs = points.probabilities(torch.softmax(scores, dim=-1))
        attn = act("attn", (probs @ v).transpose(1, 2).reshape(batch, length, d))
        x = act("resid1", x + act("proj", linear(attn, "o")))
        h = act("ln2", norm(x, f"l{layer}.ln2"))
        gelu = act("gelu", functional.gelu(act("ff1", linear(h, "1")), approximate="none"))
        x = act("resid2", x + act("ff2", linear(gelu, "2")))
    return points.act("lnf", norm(x, "lnf")) @ points.weight(p["w_lm"]) + p["b_lm"]


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m jalapeno.models.train",
                                     description="Train the code-completion model.")
    parser.add_argument("--steps", type=int,
                        help=f"optimiser steps (default 9000, with --qat {_QAT_STEPS})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, init, batches")
    parser.add_argument("--qat", action="store_true",
                        help="fine-tune --init for the int8 model; write only coder.npz")
    parser.add_argument("--init", type=Path, default=DEFAULT_OUT / "coder.npz",
                        help="with --qat, the weights to start from (calib.txt beside them)")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = _QAT_STEPS if args.qat else 9000
    if args.steps < 1:
        parser.error(f"--steps must be positive, not {args.steps}")
    return args


def _rate(step, steps, peak, final, warmup):
    """The learning rate of ``step``: linear warmup to ``peak``, then cosine to ``final``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    done = (step - warmup) / max(1, steps - warmup)
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * done))


def _calibrate(torch, config, params, ids):
    """``(scale, zero_point)`` of each activation point over the token ids ``ids``, in
    windows of the context as :func:`~jalapeno.models.quantize.calibrate` runs them."""
    observer, window = _RangeObserver(torch), config.context
    whole = len(ids) // window * window
    with torch.no_grad():
        for batch in (ids[:whole].view(-1, window), ids[whole:][None]):
            if batch.numel():
                _logits(torch, config, params, batch, observer)
    return observer.quants()


def main(argv=None) -> None:
    """Train, print progress, and write ``coder.npz``, ``heldout.txt`` and ``calib.txt``; or
    with ``--qat``, fine-tune for the int8 model and write ``coder.npz``."""
    import torch

    args = _parse(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    started = time.monotonic()
    if args.qat:
        initial = load_model(args.init)
        config, start = initial.config, initial.params
        calib_ids = torch.tensor(tokenizer.encode((args.init.parent / "calib.txt").read_text()))
        peak, final_lr, warmup = _QAT_PEAK_LR, _QAT_FINAL_LR, _QAT_WARMUP
    else:
        config = ModelConfig()
        start = init_params(config, args.seed)
        peak, final_lr, warmup = _PEAK_LR, _FINAL_LR, _WARMUP
    window = config.context + 1

    train_paths, held_paths = split_files(corpus_files(), args.seed)
    train_text, held_text = read_corpus(train_paths), read_corpus(held_paths)
    print(f"corpus: {len(train_paths)} training files ({len(train_text)} chars), "
          f"{len(held_paths)} held out ({len(held_text)} chars)", flush=True)
    train_ids = torch.tensor(tokenizer.encode(train_text), dtype=torch.uint8)
    held_ids = torch.tensor(tokenizer.encode(held_text), dtype=torch.uint8)
    offsets = torch.arange(window)

    def windows(ids, count, generator=None):
        starts = torch.randint(0, len(ids) - window + 1, (count,), generator=generator)
        return ids[starts[:, None] + offsets].long()

    weights = _QuantWeights(torch) if args.qat else _FLOAT

    def losses(p, batch, fake=None):
        """The float model's cross-entropy on ``batch``; with the :class:`_FakeQuant`
        ``fake``, also the int8 model's, the KL divergence of its predictions from the
        float model's, and the share of them that agree."""
        targets = batch[:, 1:].reshape(-1)
        log_float = torch.log_softmax(
            _logits(torch, config, p, batch[:, :-1], weights).reshape(-1, config.vocab), -1)
        loss = torch.nn.functional.nll_loss(log_float, targets)
        if fake is None:
            return loss
        log_int8 = torch.log_softmax(
            _logits(torch, config, p, batch[:, :-1], fake).reshape(-1, config.vocab), -1)
        divergence = (log_float.exp() * (log_float - log_int8)).sum(-1).mean()
        agreement = (log_float.argmax(-1) == log_int8.argmax(-1)).float().mean()
        return loss, torch.nn.functional.nll_loss(log_int8, targets), divergence, agreement

    fixed = torch.Generator().manual_seed(args.seed)
    held_eval = windows(held_ids, _EVAL_WINDOWS, fixed)

    @torch.no_grad()
    def evaluate(p, batches, fake=None):
        """The mean of :func:`losses` over ``batches`` of 64 windows: a float, or with
        ``fake`` a list ``[float loss, int8 loss, divergence, agreement]``."""
        parts = [losses(p, batch, fake) for batch in batches.split(64)]
        if fake is None:
            return sum(part.item() for part in parts) / len(parts)
        return [sum(part[i].item() for part in parts) / len(parts) for i in range(4)]

    params = {name: torch.tensor(array, requires_grad=True) for name, array in start.items()}
    decayed = [t for t in params.values() if t.dim() == 2]
    others = [t for t in params.values() if t.dim() != 2]
    optimiser = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": _WEIGHT_DECAY},
         {"params": others, "weight_decay": 0.0}], lr=peak, betas=(0.9, 0.98))

    fake = None
    running = None
    for step in range(args.steps):
        rate = _rate(step, args.steps, peak, final_lr, warmup)
        for group in optimiser.param_groups:
            group["lr"] = rate
        batch = windows(train_ids, _BATCH)
        if args.qat:
            if step % _RECALIBRATE_EVERY == 0:
                fake = _FakeQuant(torch, _calibrate(torch, config, params, calib_ids))
            fake.excess = 0.0
            float_loss, _, divergence, _ = losses(params, batch, fake)
            loss = float_loss + _AGREEMENT_WEIGHT * divergence + _OUTLIER_WEIGHT * fake.excess
        else:
            loss = losses(params, batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        optimiser.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % _EVAL_EVERY == 0 or step + 1 == args.steps:
            if args.qat:
                held, held_int8, _, agreement = evaluate(params, held_eval, fake)
                scores = (f"held-out {held:.3f}, int8 {held_int8:.3f}, top-1 agreement "
                          f"{agreement:.3f}")
            else:
                scores = f"held-out {evaluate(params, held_eval):.3f}"
            print(f"step {step + 1:5d}  train {running:.3f}  {scores}  lr {rate:.2e}  "
                  f"{time.monotonic() - started:.0f} s", flush=True)

    with torch.no_grad():
        final = {name: (weights.table(t) if name.endswith("_emb") else
                        weights.weight(t) if t.dim() == 2 else t).detach().numpy()
                 for name, t in params.items()}
    train_loss = evaluate(params, windows(train_ids, _FINAL_EVAL_WINDOWS, fixed))
    held_final = windows(held_ids, _FINAL_EVAL_WINDOWS, fixed)
    if args.qat:
        fake = _FakeQuant(torch, _calibrate(torch, config, params, calib_ids))
        held_loss, held_int8, _, agreement = evaluate(params, held_final, fake)
    else:
        held_loss = evaluate(params, held_final)

    args.out.mkdir(parents=True, exist_ok=True)
    save_params(args.out / "coder.npz", config, final)
    if args.qat:
        held_sample = (args.init.parent / "heldout.txt").read_text()
    else:
        rng = np.random.default_rng(args.seed)
        held_sample = excerpt(held_text, EXCERPT_CHARS, 4, rng)
        (args.out / "heldout.txt").write_text(held_sample)
        (args.out / "calib.txt").write_text(excerpt(train_text, EXCERPT_CHARS, 4, rng))
    shipped = load_model(args.out / "coder.npz")
    shipped_ppl = perplexity(shipped, tokenizer.encode(held_sample), window=config.context)
    print(f"final ({_FINAL_EVAL_WINDOWS} windows of {window}): train loss {train_loss:.4f}, "
          f"held-out loss {held_loss:.4f} nats, held-out perplexity {math.exp(held_loss):.3f}",
          flush=True)
    if args.qat:
        print(f"int8 (fake-quantized): held-out loss {held_int8:.4f} nats, top-1 agreement "
              f"with the float model {agreement:.4f}", flush=True)
    print(f"shipped float16 weights in NumPy: heldout.txt perplexity {shipped_ppl:.3f} "
          f"(window {config.context}); {(args.out / 'coder.npz').stat().st_size} bytes; "
          f"{time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
