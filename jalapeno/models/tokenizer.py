"""The character vocabulary of the code-completion model: a newline and printable ASCII.

A token is one character and its id is the character's index in :data:`VOCAB`, so the
vocabulary needs no file and every accelerator table indexed by token is 96 entries long.
:func:`encode` is strict (an unknown character is an error, never silently mapped), and
:func:`normalise` is the one place that decides how source text is brought into the
vocabulary when a corpus is built.
"""

from collections.abc import Iterable

__all__ = ["VOCAB", "encode", "decode", "normalise"]

#: Every character the model knows, its index the token id: ``"\n"`` then ASCII 32 to 126.
VOCAB = "\n" + "".join(chr(code) for code in range(32, 127))

_IDS = {ch: i for i, ch in enumerate(VOCAB)}


def encode(text: str) -> list[int]:
    """Token ids of ``text``, one per character.

    Tabs are not expanded here: a tab is an error like any other character outside
    :data:`VOCAB`, so text that was not normalised is caught rather than silently changed.

    Raises
    ------
    ValueError
        If a character of ``text`` is not in :data:`VOCAB`.
    """
    ids = []
    for i, ch in enumerate(text):
        token = _IDS.get(ch)
        if token is None:
            raise ValueError(f"character {ch!r} at position {i} is not in the vocabulary")
        ids.append(token)
    return ids


def decode(ids: Iterable[int]) -> str:
    """The text of the token ids ``ids`` (integers, NumPy integers included).

    Raises
    ------
    ValueError
        If an id is not in ``0 .. len(VOCAB) - 1``.
    """
    chars = []
    for i, token in enumerate(ids):
        if not 0 <= token < len(VOCAB):
            raise ValueError(
                f"token id {token} at position {i} is not in 0..{len(VOCAB) - 1}")
        chars.append(VOCAB[token])
    return "".join(chars)


def normalise(text: str) -> str:
    """``text`` brought into the vocabulary, for building corpora.

    Line ends become ``"\\n"``, tabs become four spaces, and any line that still holds a
    character outside :data:`VOCAB` is dropped whole (a line with part of it cut out would be
    source nobody wrote).
    """
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    lines = text.split("\n")
    kept = [line for line in lines if all(ch in _IDS for ch in line)]
    return "\n".join(kept)
