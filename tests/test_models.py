import math
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from jalapeno.models import train
from jalapeno.models.tokenizer import VOCAB, decode, encode, normalise
from jalapeno.models.transformer import (
    RECORD_POINTS,
    FloatModel,
    KVCache,
    ModelConfig,
    load_model,
    param_shapes,
    perplexity,
    save_params,
)

DATA = Path(train.__file__).parent / "data"
WEIGHTS = DATA / "coder.npz"
# Measured on the shipped weights: perplexity 3.569 per character on the first 2000
# characters of heldout.txt, window 128 (a uniform guess is 96). The bound leaves 5% for
# rounding differences between platforms, not for worse weights.
MEASURED_PERPLEXITY = 3.569
PERPLEXITY_BOUND = MEASURED_PERPLEXITY * 1.05


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def random_model(seed, **overrides):
    """A small model with random shape and weights large enough that attention is not flat."""
    rng = np.random.default_rng(seed)
    heads = int(rng.integers(1, 4))
    shape = dict(vocab=int(rng.integers(5, 20)), layers=int(rng.integers(1, 4)),
                 d_model=heads * int(rng.integers(2, 7)), heads=heads,
                 d_ff=int(rng.integers(4, 33)), context=int(rng.integers(8, 25)))
    config = ModelConfig(**{**shape, **overrides})
    params = {name: rng.normal(0.0, 0.5, shape) for name, shape in param_shapes(config).items()}
    return FloatModel(config, params), rng


# -- tokenizer ----------------------------------------------------------------------------------

def test_vocab():
    assert len(VOCAB) == 96 and len(set(VOCAB)) == 96
    assert VOCAB[0] == "\n" and VOCAB[1] == " " and VOCAB[-1] == "~"


def test_round_trip():
    text = "def f(x):\n    return {'a': x ~ 1}  # ok\n" + VOCAB
    ids = encode(text)
    assert ids[:3] == [VOCAB.index("d"), VOCAB.index("e"), VOCAB.index("f")]
    assert decode(ids) == text
    assert decode(np.array(ids)) == text


def test_encode_rejects_tab():
    with raises_exactly(ValueError, "character '\\t' at position 2 is not in the vocabulary"):
        encode("ab\tc")


def test_encode_rejects_non_ascii():
    with raises_exactly(ValueError, "character 'é' at position 0 is not in the vocabulary"):
        encode("é")


@pytest.mark.parametrize("token", [96, -1])
def test_decode_rejects(token):
    with raises_exactly(ValueError, f"token id {token} at position 1 is not in 0..95"):
        decode([5, token])


def test_normalise():
    text = "a\tb\r\nkeep\nnaïve line\n\tx = 1\r\nbell\x07\n"
    assert normalise(text) == "a    b\nkeep\n    x = 1\n"
    encode(normalise(text))


# -- configuration and parameters ---------------------------------------------------------------

def test_config_defaults():
    config = ModelConfig()
    assert (config.vocab, config.layers, config.d_model, config.heads, config.d_ff,
            config.context, config.head_dim) == (96, 2, 64, 2, 256, 128, 32)


@pytest.mark.parametrize("kwargs, message", [
    (dict(heads=3), "d_model 64 is not divisible by heads 3"),
    (dict(layers=0), "layers must be a positive integer, not 0"),
    (dict(d_ff=2.0), "d_ff must be a positive integer, not 2.0"),
    (dict(context=True), "context must be a positive integer, not True"),
    (dict(vocab=-4), "vocab must be a positive integer, not -4"),
])
def test_config_rejects(kwargs, message):
    with raises_exactly(ValueError, message):
        ModelConfig(**kwargs)


def test_param_shapes():
    shapes = param_shapes(ModelConfig(layers=1))
    assert list(shapes)[:4] == ["tok_emb", "pos_emb", "l0.ln1_g", "l0.ln1_b"]
    assert shapes["l0.w1"] == (64, 256) and shapes["l0.w2"] == (256, 64)
    assert shapes["w_lm"] == (64, 96) and shapes["pos_emb"] == (128, 64)
    assert len(shapes) == 2 + 16 + 4


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("l0.wq"), "parameter 'l0.wq' is missing"),
    (lambda p: p.update(extra=np.zeros(3)), "unexpected parameter 'extra'"),
    (lambda p: p.update({"b_lm": np.zeros(95)}),
     "parameter 'b_lm' has shape (95,), expected (96,)"),
    (lambda p: p["lnf_g"].__setitem__(0, np.nan),
     "parameter 'lnf_g' has values that are not finite"),
])
def test_model_rejects_params(change, message):
    params = train.init_params(ModelConfig(layers=1), seed=0)
    change(params)
    with raises_exactly(ValueError, message):
        FloatModel(ModelConfig(layers=1), params)


def test_model_rejects_config():
    with raises_exactly(TypeError, "config must be a ModelConfig, not None"):
        FloatModel(None, {})


# -- inference ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_step_equals_forward(seed):
    model, rng = random_model(seed)
    config = model.config
    tokens = rng.integers(0, config.vocab, config.context)
    whole = model.forward(tokens)
    cache = KVCache.empty(config)
    for position, token in enumerate(tokens):
        logits = model.step(int(token), position, cache)
        prefix = model.forward(tokens[:position + 1])[-1]
        assert np.allclose(logits, prefix, rtol=0, atol=1e-4), (seed, position)
        assert np.allclose(logits, whole[position], rtol=0, atol=1e-4), (seed, position)
    assert cache.length == config.context


def test_step_rejects():
    model, _ = random_model(0, context=8)
    cache = KVCache.empty(model.config)
    with raises_exactly(ValueError, "position 1 does not follow the 0 tokens in the cache"):
        model.step(0, 1, cache)
    for position in range(8):
        model.step(0, position, cache)
    with raises_exactly(ValueError, "position 8 is outside the context of 8"):
        model.step(0, 8, cache)


def test_forward_rejects():
    model, _ = random_model(0, context=8, vocab=10)
    with raises_exactly(ValueError, "sequence of 9 tokens is longer than the context of 8"):
        model.forward([0] * 9)
    with raises_exactly(ValueError, "sequence is empty"):
        model.forward([])
    with raises_exactly(ValueError, "token 10 at position 2 is not in 0..9"):
        model.forward([1, 2, 10])
    with raises_exactly(ValueError, "tokens must be a 1-D sequence of integers"):
        model.forward([0.5])


def test_record():
    model, rng = random_model(3, layers=2, heads=2, d_model=6, context=16)
    config, record = model.config, {}
    first, second = rng.integers(0, config.vocab, 5), rng.integers(0, config.vocab, 7)
    logits = [model.forward(first, record=record), model.forward(second, record=record)]
    names = {"embed", "lnf", "logits"} | {f"l{layer}.{point}" for layer in range(2)
                                          for point in RECORD_POINTS}
    assert set(record) == names
    assert record["embed"].shape == (12, 6) and record["l1.ff1"].shape == (12, config.d_ff)
    assert record["l0.scores"].shape == (2 * (15 + 28),)
    assert np.array_equal(record["logits"], np.concatenate(logits))
    assert np.allclose(record["l0.resid1"], record["embed"] + record["l0.proj"], atol=1e-6)
    resid = record["l0.resid2"].astype(np.float64)
    normed = (resid - resid.mean(1, keepdims=True)) / np.sqrt(resid.var(1, keepdims=True) + 1e-5)
    ln1 = normed * model.params["l1.ln1_g"] + model.params["l1.ln1_b"]
    assert np.allclose(record["l1.ln1"], ln1, atol=1e-5)
    ff1 = record["l0.ff1"].astype(np.float64)
    gelu = 0.5 * ff1 * (1 + np.vectorize(math.erf)(ff1 / math.sqrt(2)))
    assert np.allclose(record["l0.gelu"], gelu, atol=1e-6)
    # The first call's layer-0 head-0 scores: row by row, only the causal entries.
    q, k = record["l0.q"][:5, :3], record["l0.k"][:5, :3]
    full = q @ k.T / np.sqrt(3)
    assert np.allclose(record["l0.scores"][:15], full[np.tril_indices(5)], atol=1e-5)


def test_perplexity_of_flat_model_is_vocab():
    config = ModelConfig(vocab=7, layers=1, d_model=4, heads=1, d_ff=4, context=8)
    params = {name: np.zeros(shape) for name, shape in param_shapes(config).items()}
    tokens = np.arange(20) % 7
    assert perplexity(FloatModel(config, params), tokens, window=8) == pytest.approx(7)


def test_perplexity_rejects():
    model, _ = random_model(0, context=8)
    with raises_exactly(ValueError, "window 9 is not in 2..8"):
        perplexity(model, [0, 1, 2], window=9)
    with raises_exactly(ValueError, "perplexity needs at least 2 tokens"):
        perplexity(model, [0], window=8)


# -- weight files -------------------------------------------------------------------------------

def test_shipped_model():
    assert WEIGHTS.stat().st_size < 300 * 1024
    model = load_model(WEIGHTS)
    assert model.config == ModelConfig()
    text = (DATA / "heldout.txt").read_text()[:2000]
    value = perplexity(model, encode(text), window=128)
    assert value < PERPLEXITY_BOUND, f"perplexity {value:.3f}, measured {MEASURED_PERPLEXITY}"


def test_shipped_texts_in_vocabulary():
    for name in ("heldout.txt", "calib.txt"):
        text = (DATA / name).read_text()
        assert 4000 < len(text) < 8000
        assert normalise(text) == text
        encode(text)


def test_save_load_round_trip(tmp_path):
    model, _ = random_model(1)
    save_params(tmp_path / "w.npz", model.config, model.params)
    loaded = load_model(tmp_path / "w.npz")
    assert loaded.config == model.config
    for name, array in model.params.items():
        assert np.array_equal(loaded.params[name], array.astype(np.float16).astype(np.float32))


def test_save_rejects_float16_overflow(tmp_path):
    model, _ = random_model(1)
    params = {**model.params, "b_lm": np.full(model.config.vocab, 1e6)}
    with raises_exactly(ValueError, "parameter 'b_lm' does not fit in float16"):
        save_params(tmp_path / "w.npz", model.config, params)


def test_load_missing(tmp_path):
    path = tmp_path / "none.npz"
    with raises_exactly(FileNotFoundError, f"weight file {path} does not exist"):
        load_model(path)


def test_load_truncated(tmp_path):
    path = tmp_path / "cut.npz"
    path.write_bytes(WEIGHTS.read_bytes()[:50_000])
    with raises_exactly(ValueError, f"weight file {path} is corrupt: cannot read it as an "
                                    f".npz archive (zipfile.BadZipFile)"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a weight file at all"])
def test_load_garbage(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"^weight file {re.escape(str(path))} is corrupt: "
                                         f"cannot read it as an .npz archive \\([\\w.]+\\)$"):
        load_model(path)


def test_load_damaged(tmp_path):
    path = tmp_path / "damaged.npz"
    data = bytearray(WEIGHTS.read_bytes())
    data[100_000:100_100] = bytes(100)
    path.write_bytes(data)
    with pytest.raises(ValueError, match=f"^weight file {re.escape(str(path))} is corrupt: "
                                         f"cannot read it as an .npz archive \\([\\w.]+\\)$"):
        load_model(path)


def test_load_npy(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with raises_exactly(ValueError, f"weight file {path} is corrupt: it is a single .npy "
                                    f"array, not an .npz archive"):
        load_model(path)


def arrays_of_shipped():
    with np.load(WEIGHTS) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.mark.parametrize("change, reason", [
    (lambda a: a.update({"l1.w2": np.zeros((64, 256), np.float16)}),
     "parameter 'l1.w2' has shape (64, 256), expected (256, 64)"),
    (lambda a: a.pop("lnf_b"), "parameter 'lnf_b' is missing"),
    (lambda a: a.pop("config"), "it has no 'config' array"),
    (lambda a: a.update(config=np.zeros(6)), "its 'config' array is float64[6], expected 6 "
                                             "integers"),
    (lambda a: a["config"].__setitem__(3, 3), "d_model 64 is not divisible by heads 3"),
    (lambda a: a.update({"b_lm": np.zeros(96, np.int8)}), "array 'b_lm' is int8, not floating "
                                                          "point"),
])
def test_load_bad_arrays(tmp_path, change, reason):
    arrays = arrays_of_shipped()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with raises_exactly(ValueError, f"weight file {path} is corrupt: {reason}"):
        load_model(path)


# -- training script ----------------------------------------------------------------------------

def test_train_imports_without_torch():
    code = "import sys, jalapeno.models.train; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_init_params_fit_model():
    config = ModelConfig(layers=3)
    params = train.init_params(config, seed=5)
    FloatModel(config, params)
    assert np.array_equal(params["l2.ln2_g"], np.ones(64)) and not params["l0.bq"].any()
    assert params["l1.wo"].std() < params["l1.wq"].std()


def test_corpus_files():
    files = train.corpus_files()
    assert files == sorted(files) and len(files) > 100
    root = Path(sysconfig.get_paths()["stdlib"])
    assert not any({"test", "tests", "site-packages"} & set(path.relative_to(root).parts)
                   for path in files)
    trained, held = train.split_files(files, seed=0)
    assert not set(trained) & set(held) and len(trained) + len(held) == len(files)
    assert train.split_files(files, seed=0) == (trained, held)
