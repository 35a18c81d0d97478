"""The families of issue 14 beyond BERT/GPT: XLNet (permutation LM), T5 (span corruption) and the LSTM/GRU
baseline. Each overfits one batch and resumes exactly; XLNet's orders and T5's spans are pure functions of
(seed, sample index); an XLNet target never sees itself; T5's input and target reassemble the block; bits
per character is the total NLL in bits over characters (a uniform model scores log2(V) x tokens / chars)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from domainlm.pretrain import presets
from domainlm.pretrain.objectives import (
    OBJECTIVES,
    MaskSpec,
    Setup,
    permutation_targets,
    plm_batch,
    span_batch,
    span_corrupt,
    span_noise_mask,
)
from tests.conftest import tiny_pretrain

# a few thousand parameters each; the family's code paths stay the same
TINY = {
    "xlnet-mini": {"n_layer": 1, "d_model": 32, "n_head": 2, "d_inner": 64},
    "t5-mini": {"num_layers": 1, "d_model": 32, "num_heads": 2, "d_kv": 16, "d_ff": 64},
    "lstm-mini": {"num_hidden_layers": 1, "hidden_size": 64},
    "gru-mini": {"num_hidden_layers": 1, "hidden_size": 64},
}
# the overfitting learning rate: a recurrent net this narrow needs a larger step to memorise 4 x 32 tokens
OVERFIT_LR = {"lstm-mini": 3e-2, "gru-mini": 3e-2}
SETS = [
    "speed.bf16=off",
    "speed.threads=1",
    "train.log_every=1",
    "train.eval_every=10h",
    "train.eval_batches=1",
]


def _yaml(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as the runs use (speed.threads=1): on a shared, loaded machine two threads
    of a tiny model spend their time waiting for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizers(corpus_dir, tmp_path_factory) -> dict[str, Path]:
    """style -> a byte-level BPE tokenizer trained on the test corpus (T5's carries the 100 sentinels)."""
    from domainlm.tokens.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("family-tok")
    return {
        style: train_tokenizer(corpus_dir, root / style, kind="bpe", vocab_size=400, style=style).output
        for style in ("gpt", "t5")
    }


def _tok_for(preset: str, tokenizers) -> Path:
    return tokenizers[presets.style_of(preset)]


def _setup(preset: str, tok, seq_len: int = 32):
    from domainlm.tokens.tokenizer import special_ids

    family, objective = presets.family_of(preset), presets.objectives_of(preset)[0]
    torch.manual_seed(0)
    model = presets.build(
        preset, objective, len(tok), seq_len, special_ids(tok), overrides=TINY[preset]
    ).model
    spec = MaskSpec(-1, len(tok), [tok.eos_token_id], 0.15, 0)
    return model, OBJECTIVES[objective](Setup(model, family, spec, None, True, 0, tok))


def _ids(corpus_dir, tok, n: int = 4, T: int = 32) -> torch.Tensor:
    from domainlm.corpus.documents import read_documents

    texts = [d["text"] for _, d in zip(range(n), read_documents(corpus_dir, "train"), strict=False)]
    return torch.tensor([tok(t, add_special_tokens=False)["input_ids"][:T] for t in texts])


# ----------------------------------------------------------------------------------------------------
# training: one batch overfits; a run cut in half and resumed equals the uninterrupted one


@pytest.mark.parametrize("preset", list(TINY))
def test_new_family_overfits_one_batch(preset, corpus_dir, tokenizers):
    from domainlm.pretrain.distributed import Dist
    from domainlm.pretrain.loop import REDUCTIONS
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(_tok_for(preset, tokenizers))
    model, obj = _setup(preset, tok)
    batch = obj.batch(_ids(corpus_dir, tok), range(4))  # the same orders / spans at every step
    opt = torch.optim.AdamW(model.parameters(), lr=OVERFIT_LR.get(preset, 1e-2))
    losses = []
    for _ in range(40):
        loss_sum, _ = obj.loss(obj.module, batch)
        loss = loss_sum / REDUCTIONS[obj.reduction](batch.count, Dist())
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert losses[-1] < 0.5 * losses[0], losses


def _step_losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.parametrize("preset", ["xlnet-mini", "t5-mini", "lstm-mini"])
def test_resume_continues_the_same_curve(preset, corpus_dir, tokenizers, tmp_path, monkeypatch):
    """6 steps straight == 3 steps, stopped (as by SIGINT: checkpoint, exit), resumed for 3 more."""
    from domainlm.pretrain import loop

    kw = dict(
        tokenizer=str(_tok_for(preset, tokenizers)),
        preset=preset,
        objective=presets.objectives_of(preset)[0],
        max_steps=6,
        batch_size=4,
        overrides=[f"model.overrides={_yaml(TINY[preset])}", *SETS],
    )
    ref = tiny_pretrain(corpus_dir, tmp_path / "ref", name="ref", **kw)
    real = loop.stop_reason

    def stop_at_3(run, state, *a):
        return "SIGINT" if state.step == 3 else real(run, state, *a)

    monkeypatch.setattr(loop, "stop_reason", stop_at_3)
    cut = tiny_pretrain(corpus_dir, tmp_path / "cut", name="cut", **kw)
    assert cut.stopped_by == "SIGINT" and cut.steps == 3
    monkeypatch.setattr(loop, "stop_reason", real)
    resumed = tiny_pretrain(corpus_dir, tmp_path / "cut", name="cut", **kw)
    assert resumed.steps == 6
    a, b = _step_losses(ref.run_dir), _step_losses(resumed.run_dir)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert [b[s] for s in a] == pytest.approx([a[s] for s in a], rel=1e-6, abs=1e-7)
    assert resumed.validation["loss"] == pytest.approx(ref.validation["loss"], rel=1e-6)


# ----------------------------------------------------------------------------------------------------
# XLNet: factorisation orders


def test_permutations_are_pure_functions_of_seed_and_sample():
    m1, t1 = permutation_targets(24, 4, seed=3, g=17)
    m2, t2 = permutation_targets(24, 4, seed=3, g=17)
    assert torch.equal(m1, m2) and torch.equal(t1, t2)
    assert not torch.equal(permutation_targets(24, 4, 3, 18)[0], m1)
    assert not torch.equal(permutation_targets(24, 4, 4, 17)[0], m1)
    # a sample's draws do not depend on the batch it is in (resume, DDP == one process)
    ids = torch.arange(6 * 24).reshape(6, 24)
    whole = plm_batch(ids, range(10, 16), seed=3)
    half = plm_batch(ids[2:4], range(12, 14), seed=3)
    for w, h in zip(whole, half, strict=True):
        assert torch.equal(w[2:4], h)


def test_xlnet_masks_follow_the_factorisation_order():
    T, n = 24, 4
    perm_mask, targets = permutation_targets(T, n, seed=0, g=5)
    is_target = torch.zeros(T, dtype=torch.bool)
    is_target[targets] = True
    assert len(targets) == n == len(set(targets.tolist()))
    assert all(perm_mask[t, t] == 1 for t in targets)  # the query stream never sees its own token
    assert perm_mask[:, ~is_target].sum() == 0  # context tokens are seen by everyone
    assert perm_mask[~is_target][:, is_target].all()  # context tokens see no target
    # among targets: a strict order (each sees exactly the targets before it)
    seen = (1 - perm_mask[targets][:, targets]).sum(1).sort().values
    assert seen.tolist() == list(range(n))


def test_xlnet_never_lets_a_target_see_itself(corpus_dir, tokenizers):
    """Changing a target's own token leaves its prediction unchanged; changing a context token does not."""
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizers["gpt"])
    model, obj = _setup("xlnet-mini", tok)
    model.eval()
    ids = _ids(corpus_dir, tok, n=1)
    batch = obj.batch(ids, [0])
    _, perm_mask, mapping, labels = batch.args
    targets = mapping[0].argmax(-1)
    context = int((perm_mask[0].sum(0) == 0).nonzero()[0])
    with torch.no_grad():
        base = model(input_ids=ids, perm_mask=perm_mask, target_mapping=mapping).logits[0]  # (n, V)
        for k, t in enumerate(targets.tolist()):
            changed = ids.clone()
            changed[0, t] = (changed[0, t] + 1) % len(tok)
            out = model(input_ids=changed, perm_mask=perm_mask, target_mapping=mapping).logits[0]
            assert torch.allclose(out[k], base[k], atol=1e-5), f"target {t} saw its own token"
        changed = ids.clone()
        changed[0, context] = (changed[0, context] + 1) % len(tok)
        out = model(input_ids=changed, perm_mask=perm_mask, target_mapping=mapping).logits[0]
        assert not torch.allclose(out, base, atol=1e-5)  # the test can fail: context does reach targets


# ----------------------------------------------------------------------------------------------------
# T5: span corruption


def _reassemble(inputs: list[int], targets: list[int], sentinels: list[int]) -> list[int]:
    spans, cur = {}, None
    for t in targets:
        if t in sentinels:
            cur = t
            spans[cur] = []
        else:
            spans[cur].append(t)
    return [x for t in inputs for x in (spans[t] if t in sentinels else [t])]


def test_t5_input_and_target_reassemble_the_block():
    sentinels = list(range(1000, 1100))
    T = 128
    for g in range(20):
        ids = torch.randint(0, 500, (T,), generator=torch.Generator().manual_seed(g))
        noise = span_noise_mask(T, seed=1, g=g)
        assert int(noise.sum()) == round(0.15 * T)  # 15% of tokens (Raffel et al. 2020)
        n_spans = int((noise & ~torch.cat([torch.tensor([False]), noise[:-1]])).sum())
        assert n_spans == round(round(0.15 * T) / 3)  # mean span length 3
        inputs, targets = span_corrupt(ids, noise, torch.tensor(sentinels), eos=7)
        assert inputs[-1] == targets[-1] == 7
        assert targets[-2] == sentinels[n_spans]  # the closing sentinel
        assert _reassemble(inputs[:-1].tolist(), targets[:-1].tolist(), sentinels) == ids.tolist()


def test_span_masks_are_pure_functions_of_seed_and_sample():
    sentinels = list(range(1000, 1100))
    ids = torch.randint(0, 500, (6, 64), generator=torch.Generator().manual_seed(0))
    assert torch.equal(span_noise_mask(64, 2, 9), span_noise_mask(64, 2, 9))
    assert not torch.equal(span_noise_mask(64, 2, 9), span_noise_mask(64, 2, 10))
    assert not torch.equal(span_noise_mask(64, 2, 9), span_noise_mask(64, 3, 9))
    whole = span_batch(ids, range(10, 16), 2, sentinels, 7)
    half = span_batch(ids[3:5], range(13, 15), 2, sentinels, 7)
    for w, h in zip(whole, half, strict=True):
        assert torch.equal(w[3:5], h)


def test_span_corruption_without_enough_sentinels_is_a_user_error():
    from domainlm.errors import UserError

    with pytest.raises(UserError, match="sentinel tokens.*--style t5"):
        span_batch(torch.zeros(2, 128, dtype=torch.long), range(2), 0, [5, 6], 1)


# ----------------------------------------------------------------------------------------------------
# bits per character


class Uniform(torch.nn.Module):
    """Equal logits for every token: log2(V) bits per predicted token."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab, self.config = vocab, type("C", (), {"model_type": "uniform"})()

    def forward(self, input_ids, **_):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


def test_bits_per_char_of_a_uniform_model_is_log2_v_times_tokens_over_chars(corpus_dir, tokenizers):
    from domainlm.corpus.documents import read_documents
    from domainlm.evaluate.bits import causal_bits
    from domainlm.evaluate.lm import pseudo_perplexity
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizers["gpt"])
    texts = [d["text"] for _, d in zip(range(3), read_documents(corpus_dir, "validation"), strict=False)]
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    chars = sum(len(t) for t in texts)
    V = 1000  # not the tokenizer's size: the number must come from the model's distribution
    for seq_len in (16, 64, 4096):  # windows shorter and longer than the documents
        r = causal_bits(Uniform(V), tok, texts, seq_len)
        assert r["bpc_tokens"] == tokens  # every document token scored once, the end token not
        assert r["bits_per_char"] == pytest.approx(math.log2(V) * tokens / chars, rel=1e-6)
    tok.mask_token = "<|endoftext|>"  # pseudo-perplexity masks each token in turn with some token
    p = pseudo_perplexity(Uniform(V), tok, texts, seq_len=32)
    assert p["pppl_bits_per_char"] == pytest.approx(math.log2(V) * p["pppl_tokens"] / chars, rel=1e-6)


def test_xlnet_natural_order_scoring_is_causal(corpus_dir, tokenizers):
    """bits.py scores XLNet left to right: a later token never changes an earlier log-probability."""
    from domainlm.evaluate.bits import next_token_logprobs
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizers["gpt"])
    model, _ = _setup("xlnet-mini", tok)
    model.eval()
    ids = _ids(corpus_dir, tok, n=1, T=20)[0]
    with torch.no_grad():
        base = next_token_logprobs(model, "plm", ids)  # (19,): log p(ids[t] | ids[:t])
        changed = ids.clone()
        changed[12] = (changed[12] + 1) % len(tok)
        out = next_token_logprobs(model, "plm", changed)
    assert torch.allclose(out[:11], base[:11], atol=1e-5)  # predictions of tokens 1..11
    assert not torch.allclose(out[11:], base[11:], atol=1e-5)  # token 12 itself and what follows


# ----------------------------------------------------------------------------------------------------
# run folders: evaluate measures every family; the RNN says it is no HF model; T5's encoder loads


@pytest.fixture(scope="module")
def family_runs(corpus_dir, tokenizers, tmp_path_factory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("family-runs")
    out = {}
    for preset in ("xlnet-mini", "t5-mini", "lstm-mini"):
        res = tiny_pretrain(
            corpus_dir,
            runs,
            tokenizer=str(_tok_for(preset, tokenizers)),
            preset=preset,
            objective=presets.objectives_of(preset)[0],
            name=preset,
            max_steps=4,
            batch_size=4,
            overrides=[f"model.overrides={_yaml(TINY[preset])}", *SETS],
        )
        out[preset] = res.run_dir
    return out


def test_evaluate_reports_the_comparable_number_of_each_family(family_runs):
    from domainlm.evaluate.lm import evaluate
    from domainlm.pretrain.metrics import METRICS

    res = evaluate(list(family_runs.values()), max_docs=2)
    xl, t5, rnn = (res[str(family_runs[p])] for p in ("xlnet-mini", "t5-mini", "lstm-mini"))
    for r in (xl, rnn):
        assert r["intrinsic"] == "bits_per_char" and 0 < r["bits_per_char"] < 20, r
        assert r["bpc_chars"] > r["bpc_tokens"] > 0 and r["bpc_docs"] == 2
    assert rnn["perplexity"] == pytest.approx(math.exp(rnn["loss"]))
    assert "bits_per_char" not in t5 and t5["intrinsic"].startswith("none") and t5["targets"] > 0
    assert xl["targets"] > 0
    for r in (xl, t5, rnn):
        named = {
            k
            for k in r
            if k not in ("format_version", "run", "objective", "split", "mask_seed", "bf16", "seq_len")
        }
        named -= {"words_per_token", "seconds", "perplexity_word"}
        assert named <= set(METRICS), named - set(METRICS)


@pytest.mark.slow
def test_ngram_bits_per_char_beats_a_uniform_model(family_runs, tokenizers):
    from domainlm.evaluate.lm import evaluate
    from domainlm.tokens.tokenizer import load_tokenizer

    run = family_runs["lstm-mini"]
    ng = evaluate([run], max_docs=2, baseline="ngram", ngram_tokens=200)[str(run)]["baseline"]["ngram"]
    assert ng["bpc_tokens"] == 200 and ng["bpc_docs"] <= 2
    uniform = math.log2(len(load_tokenizer(tokenizers["gpt"]))) * ng["bpc_tokens"] / ng["bpc_chars"]
    assert 0 < ng["bits_per_char"] < 0.5 * uniform  # formulaic text: the 5-gram predicts most of it


def test_rnn_folder_is_honest_about_what_it_is(family_runs):
    from domainlm.pretrain.rnn import load_rnn

    model_dir = family_runs["lstm-mini"] / "model"
    assert not (model_dir / "config.json").exists()  # no tool mistakes it for a transformers model
    card = (model_dir / "README.md").read_text()
    assert "not** a Hugging Face model" in card and "library_name: domainlm" in card
    model = load_rnn(model_dir)
    assert model.head.weight is model.embed.weight  # still tied after loading
    with pytest.raises((OSError, ValueError), match="config.json"):
        import transformers

        transformers.AutoModel.from_pretrained(str(model_dir), local_files_only=True)


def test_t5_encoder_loads_for_classification(family_runs):
    import transformers

    model_dir = family_runs["t5-mini"] / "model"
    enc = transformers.T5EncoderModel.from_pretrained(str(model_dir), local_files_only=True)
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    out = enc(**tok(["The President shall"], return_tensors="pt")).last_hidden_state
    assert out.shape[-1] == TINY["t5-mini"]["d_model"]
    card = (model_dir / "README.md").read_text()
    assert "pipeline_tag: text2text-generation" in card


@pytest.mark.slow
def test_xlnet_two_process_ddp_matches_one_process(corpus_dir, tokenizers, tmp_path):
    """The orders come from (seed, sample index): 2 processes x 4 rows == 1 process x 8 rows."""
    import os
    import subprocess
    import sys

    common = dict(
        corpus=str(corpus_dir),
        tokenizer=str(tokenizers["gpt"]),
        preset="xlnet-mini",
        objective="plm",
        budget="30m",
        max_steps=4,
        runs_dir=str(tmp_path),
        seq_len=32,
        lr=3e-3,
        overrides=[f"model.overrides={_yaml(TINY['xlnet-mini'])}", *SETS, "train.checkpoint_every=10h"],
    )
    from domainlm.pretrain.loop import pretrain

    single = pretrain(**common, name="single", batch_size=8)
    script = tmp_path / "ddp_run.py"
    script.write_text(
        "import json, sys\nfrom domainlm.pretrain.loop import pretrain\npretrain(**json.loads(sys.argv[1]))\n"
    )
    src = Path(__file__).resolve().parents[1] / "src"
    env = dict(
        os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1"
    )
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    p = subprocess.run(
        [*cmd, json.dumps({**common, "name": "ddp", "batch_size": 4})],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    a, b = _step_losses(single.run_dir), _step_losses(tmp_path / "ddp")
    assert sorted(a) == sorted(b) == list(range(1, 5))
    assert [b[s] for s in a] == pytest.approx([a[s] for s in a], rel=1e-4, abs=1e-5)
