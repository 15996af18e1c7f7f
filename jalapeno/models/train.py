"""Train the code-completion model on the Python standard library, and write what ships.

Run as ``python -m jalapeno.models.train [--steps N] [--out DIR] [--seed S]``. It needs
PyTorch (the ``train`` extra); importing this module does not.

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
"""

import argparse
import math
import sysconfig
import time
from pathlib import Path

import numpy as np

from jalapeno.models import tokenizer
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


def _logits(torch, config, p, idx):
    """The logits ``[B, T, vocab]`` of the token batch ``idx`` ``[B, T]``: the computation of
    :class:`~jalapeno.models.transformer.FloatModel`, in torch."""
    functional = torch.nn.functional
    batch, length = idx.shape
    d, heads = config.d_model, config.heads
    masked = ~torch.ones(length, length, dtype=torch.bool).tril()

    def norm(x, prefix):
        return functional.layer_norm(x, (d,), p[f"{prefix}_g"], p[f"{prefix}_b"], eps=1e-5)

    def split(a):  # [B, T, D] -> [B, heads, T, head_dim]: head h is columns h*hd:(h+1)*hd
        return a.view(batch, length, heads, config.head_dim).transpose(1, 2)

    x = p["tok_emb"][idx] + p["pos_emb"][:length]
    for layer in range(config.layers):
        w = {name: p[f"l{layer}.{name}"] for name in
             ("wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo", "w1", "b1", "w2", "b2")}

        def linear(h, name, w=w):
            return h @ w[f"w{name}"] + w[f"b{name}"]

        h = norm(x, f"l{layer}.ln1")
        q, k, v = (split(linear(h, c)) for c in "qkv")
        scores = (q @ k.transpose(2, 3) / math.sqrt(config.head_dim)).masked_fill(masked, -math.inf)
        attn = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, length, d)
        x = x + linear(attn, "o")
        h = norm(x, f"l{layer}.ln2")
        x = x + linear(functional.gelu(linear(h, "1"), approximate="none"), "2")
    return norm(x, "lnf") @ p["w_lm"] + p["b_lm"]


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m jalapeno.models.train",
                                     description="Train the code-completion model.")
    parser.add_argument("--steps", type=int, default=9000, help="optimiser steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, init, batches")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be positive, not {args.steps}")
    return args


def main(argv=None) -> None:
    """Train, print progress, and write ``coder.npz``, ``heldout.txt`` and ``calib.txt``."""
    import torch

    args = _parse(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    started = time.monotonic()
    config = ModelConfig()
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

    def loss_of(p, batch):
        logits = _logits(torch, config, p, batch[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, config.vocab),
                                                 batch[:, 1:].reshape(-1))

    fixed = torch.Generator().manual_seed(args.seed)
    held_eval = windows(held_ids, _EVAL_WINDOWS, fixed)

    @torch.no_grad()
    def evaluate(p, batches):
        losses = [loss_of(p, batch).item() for batch in batches.split(64)]
        return sum(losses) / len(losses)

    params = {name: torch.tensor(array, requires_grad=True)
              for name, array in init_params(config, args.seed).items()}
    decayed = [t for t in params.values() if t.dim() == 2]
    others = [t for t in params.values() if t.dim() != 2]
    optimiser = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": _WEIGHT_DECAY},
         {"params": others, "weight_decay": 0.0}], lr=_PEAK_LR, betas=(0.9, 0.98))

    def rate(step):
        if step < _WARMUP:
            return _PEAK_LR * (step + 1) / _WARMUP
        done = (step - _WARMUP) / max(1, args.steps - _WARMUP)
        return _FINAL_LR + 0.5 * (_PEAK_LR - _FINAL_LR) * (1 + math.cos(math.pi * done))

    running = None
    for step in range(args.steps):
        for group in optimiser.param_groups:
            group["lr"] = rate(step)
        loss = loss_of(params, windows(train_ids, _BATCH))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        optimiser.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % _EVAL_EVERY == 0 or step + 1 == args.steps:
            print(f"step {step + 1:5d}  train {running:.3f}  held-out "
                  f"{evaluate(params, held_eval):.3f}  lr {rate(step):.2e}  "
                  f"{time.monotonic() - started:.0f} s", flush=True)

    final = {name: t.detach().numpy() for name, t in params.items()}
    train_loss = evaluate(params, windows(train_ids, _FINAL_EVAL_WINDOWS, fixed))
    held_loss = evaluate(params, windows(held_ids, _FINAL_EVAL_WINDOWS, fixed))

    args.out.mkdir(parents=True, exist_ok=True)
    save_params(args.out / "coder.npz", config, final)
    rng = np.random.default_rng(args.seed)
    held_sample = excerpt(held_text, EXCERPT_CHARS, 4, rng)
    (args.out / "heldout.txt").write_text(held_sample)
    (args.out / "calib.txt").write_text(excerpt(train_text, EXCERPT_CHARS, 4, rng))
    shipped = load_model(args.out / "coder.npz")
    shipped_ppl = perplexity(shipped, tokenizer.encode(held_sample), window=config.context)
    print(f"final ({_FINAL_EVAL_WINDOWS} windows of {window}): train loss {train_loss:.4f}, "
          f"held-out loss {held_loss:.4f} nats, held-out perplexity {math.exp(held_loss):.3f}",
          flush=True)
    print(f"shipped float16 weights in NumPy: heldout.txt perplexity {shipped_ppl:.3f} "
          f"(window {config.context}); {(args.out / 'coder.npz').stat().st_size} bytes; "
          f"{time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
