"""The shipped int8 code-completion model on the accelerator's semantics: its quality against
the float model, bit-identical runs on the golden backend and the reference, KV-cache decoding
equal to prefill, and batching that changes nothing but speed."""

import numpy as np
import pytest

from jalapeno.models.engine import Engine
from jalapeno.models.generate import Batcher
from jalapeno.models.quantize import DATA, FLOAT_FILE, INT8_FILE, load_quant
from jalapeno.models.tokenizer import encode
from jalapeno.models.transformer import load_model
from jalapeno.runtime import open_device
from jalapeno.runtime.session import ReferenceSession, Session
from rtl.config import preset

#: Characters of held-out text the quality test scores (non-overlapping windows of the
#: context, each run as one prefill step).
HELD_OUT = 2048


@pytest.fixture(scope="module")
def models():
    return load_quant(INT8_FILE), load_model(FLOAT_FILE)


def _log_softmax(logits):
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


@pytest.fixture(scope="module")
def held_out_scores(models):
    """Over the held-out text: the positions where the int8 and the float model's top-1
    agree, and both perplexities."""
    qm, fm = models
    ids = np.array(encode((DATA / "heldout.txt").read_text()[:HELD_OUT]))
    window = qm.config.context
    agree = total = 0
    nll_q = nll_f = 0.0
    for begin in range(0, len(ids) - 1, window):
        chunk = ids[begin:begin + window]
        engine = Engine(qm, ReferenceSession(preset("default")), slots=1)
        q = engine.step([(0, int(t), i) for i, t in enumerate(chunk)])[:-1]
        f = fm.forward(chunk).astype(np.float64)[:-1]
        nxt = chunk[1:]
        agree += int((q.argmax(axis=1) == f.argmax(axis=1)).sum())
        total += len(nxt)
        nll_q -= _log_softmax(q)[np.arange(len(nxt)), nxt].sum()
        nll_f -= _log_softmax(f)[np.arange(len(nxt)), nxt].sum()
    top1, ppl_q, ppl_f = agree / total, np.exp(nll_q / total), np.exp(nll_f / total)
    print(f"top-1 agreement {top1:.4f} over {total} positions; perplexity int8 {ppl_q:.4f}, "
          f"float {ppl_f:.4f}")
    return top1, ppl_q, ppl_f


def test_perplexity_within_5_percent_of_float(held_out_scores):
    _, ppl_q, ppl_f = held_out_scores
    assert abs(ppl_q / ppl_f - 1) <= 0.05, f"perplexity int8 {ppl_q:.4f}, float {ppl_f:.4f}"


def test_top1_agrees_with_float_on_95_percent(held_out_scores):
    top1, _, _ = held_out_scores
    assert top1 >= 0.95, f"top-1 agreement {top1:.4f}"


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_golden_backend_equals_the_reference(models, name):
    """A prefill of two prompts and three batched decode steps: the logits on the golden
    backend (compiled programs on the ISA simulator) equal the reference's bit for bit."""
    qm, _ = models
    prompts = ["def add(a, b):\n", "import os\nimport"]
    outputs = []
    with open_device("golden", preset=name) as device:
        for session in (ReferenceSession(device.config), Session(device)):
            batcher = Batcher(Engine(qm, session, slots=2), max_batch=2)
            outputs.append([c.tokens for c in batcher.run(prompts, 4)])
    assert outputs[0] == outputs[1], name


def test_kv_cache_decode_equals_prefill(models):
    """Decoding token by token from the cache gives the same logits as one prefill step of
    the whole sequence: the cache holds exactly what a prefill computes."""
    qm, _ = models
    ids = encode("for i in range(10):\n    print(i)")
    whole = Engine(qm, ReferenceSession(preset("default")), slots=1)
    expected = whole.step([(0, t, i) for i, t in enumerate(ids)])
    stepwise = Engine(qm, ReferenceSession(preset("default")), slots=1)
    rows = [stepwise.step([(0, t, i)])[0] for i, t in enumerate(ids)]
    assert np.array_equal(np.array(rows), expected)


def test_batching_changes_nothing_but_speed(models):
    """Three prompts decoded together give the tokens each gives alone; together they take
    fewer steps."""
    qm, _ = models
    prompts = ["class Stack:\n    def ", "return self.", "    for key in "]
    alone = []
    for p in prompts:
        batcher = Batcher(Engine(qm, ReferenceSession(preset("default")), slots=1))
        alone.append(batcher.run([p], 6)[0].tokens)
    together = Batcher(Engine(qm, ReferenceSession(preset("default")), slots=3), max_batch=3)
    assert [c.tokens for c in together.run(prompts, 6)] == alone
    assert len(together.steps) == 6


def test_bad_steps_and_batches(models):
    """Rows the engine cannot run are refused before any program runs, with exact messages."""
    qm, _ = models
    engine = Engine(qm, ReferenceSession(preset("default")), slots=2)
    for rows, message in (([], "a step needs at least one row"),
                          ([(2, 5, 0)], "slot 2 is not in 0..1"),
                          ([(0, 5, 128)], "position 128 is outside the context of 128"),
                          ([(0, 96, 0)], "token 96 is not in the vocabulary")):
        with pytest.raises(ValueError, match=f"^{message}$"):
            engine.step(rows)
    with pytest.raises(ValueError, match=r"^max_batch must be in 1..2, not 3$"):
        Batcher(engine, max_batch=3)
    with pytest.raises(ValueError, match=r"^slots must be in 1..16, not 17$"):
        Engine(qm, ReferenceSession(preset("default")), slots=17)
