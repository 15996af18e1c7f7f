"""Code completion: prompts in, greedy continuations out, with continuous batching.

:class:`Batcher` is the serving side. Every step it gives the engine one row for each active
sequence's last token, plus all the prompt positions of sequences admitted this step (their
prefill), so decoding ``B`` sequences together turns the weight GEMVs into ``B``-row GEMMs
that use ``B`` times more of the array for the same weight traffic. A sequence that has its
tokens leaves, and its cache slot takes the next waiting prompt. Sampling is greedy (the
argmax of the logits), so a completion is a function of the prompt alone: the same on every
backend and in every batch.
"""

from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .tokenizer import decode, encode

__all__ = ["Completion", "Batcher", "check_prompt"]


@dataclass
class Completion:
    """One prompt's continuation."""

    prompt: str
    tokens: list = field(default_factory=list)

    @property
    def text(self):
        return decode(self.tokens)


def check_prompt(prompt, new_tokens, context):
    """The token ids of ``prompt``, after checking that it and ``new_tokens`` more fit.

    Raises
    ------
    ValueError
        One line: a character outside the vocabulary, an empty prompt, or a prompt (with its
        new tokens) longer than the context.
    """
    ids = encode(prompt)
    if not ids:
        raise ValueError("the prompt is empty")
    if len(ids) > context:
        raise ValueError(f"the prompt is {len(ids)} characters, longer than the context of "
                         f"{context}")
    if new_tokens < 1 or len(ids) + new_tokens > context:
        raise ValueError(f"{new_tokens} new tokens after a prompt of {len(ids)} do not fit "
                         f"the context of {context}")
    return ids


@dataclass
class _Sequence:
    index: int
    ids: list
    want: int
    slot: int = -1
    done: int = 0


class Batcher:
    """Continuous batching of completions on ``engine``, at most ``max_batch`` at once.

    Attributes
    ----------
    steps : list of dict
        Per step: ``rows``, ``decode_rows``, ``prefill_rows`` and the session counters it
        added (``stats``, a :class:`~jalapeno.runtime.session.Stats`).
    """

    def __init__(self, engine: Engine, *, max_batch=1):
        if not 1 <= max_batch <= engine.slots:
            raise ValueError(f"max_batch must be in 1..{engine.slots}, not {max_batch}")
        self.engine, self.max_batch = engine, max_batch
        self.steps = []

    def run(self, prompts, new_tokens, *, progress=None):
        """Complete each of ``prompts`` with ``new_tokens`` tokens.

        ``progress(done, total)`` is called after every step.

        Returns
        -------
        list of Completion
        """
        context = self.engine.cfg.context
        waiting = [_Sequence(i, check_prompt(p, new_tokens, context), new_tokens)
                   for i, p in enumerate(prompts)]
        results = [Completion(p) for p in prompts]
        free = list(range(self.max_batch))
        active, total = [], len(prompts) * new_tokens
        produced = 0
        while waiting or active:
            admitted = []
            while waiting and free:
                seq = waiting.pop(0)
                seq.slot = free.pop(0)
                admitted.append(seq)
            rows, last = [], {}
            for seq in active:
                rows.append((seq.slot, seq.ids[-1], len(seq.ids) - 1))
                last[seq.index] = len(rows) - 1
            for seq in admitted:
                rows += [(seq.slot, t, i) for i, t in enumerate(seq.ids)]
                last[seq.index] = len(rows) - 1
            before = self.engine.session.stats.copy()
            logits = self.engine.step(rows)
            self.steps.append({"rows": len(rows), "decode_rows": len(active),
                               "prefill_rows": len(rows) - len(active),
                               "stats": self.engine.session.stats.since(before)})
            active += admitted
            for seq in list(active):
                token = int(np.argmax(logits[last[seq.index]]))
                seq.ids.append(token)
                results[seq.index].tokens.append(token)
                seq.done += 1
                produced += 1
                if seq.done == seq.want:
                    active.remove(seq)
                    free.append(seq.slot)
            if progress:
                progress(produced, total)
        return results
