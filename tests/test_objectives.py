"""Objectives: whole-word masking for WordPiece/BPE/Unigram, BERT masking, causal masking of GPT-2 and
Llama, and ELECTRA trained end to end into HF discriminator and generator folders."""

from __future__ import annotations

import json

import pytest
import torch

from domainlm.pretrain.loop import pretrain
from domainlm.pretrain.objectives import IGNORE, MaskSpec, mask_tokens, word_start_table, word_starts
from tests.conftest import CaptureReporter

# space-separated words only, several rare enough to be split into pieces by a 300-token vocabulary
TEXT = (
    "the governorships of constitutionalised legislatures shall reconstitute tribunals "
    "notwithstanding parliamentary commissioners electorally disallowed"
)


@pytest.fixture(
    scope="module",
    params=[("wordpiece", "bert"), ("bpe", "roberta"), ("unigram", "bert")],
    ids=["wordpiece", "bpe", "unigram"],
)
def tokenizer_kind(request, corpus_dir, tmp_path_factory):
    from domainlm.tokens.tokenizer import load_tokenizer, train_tokenizer

    kind, style = request.param
    out = tmp_path_factory.mktemp(f"tok-{kind}")
    train_tokenizer(corpus_dir, out, kind=kind, vocab_size=300, style=style)
    return kind, load_tokenizer(out)


def _truth(tok, text: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """ids (1, T), true word starts (1, T) from character offsets (the space-separated word a piece's
    first non-space character belongs to; a bare space piece belongs to the next word), and the word
    index per position (-1 for special tokens)."""
    enc = tok(text, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]])
    word_of_char = [text[:i].count(" ") for i in range(len(text) + 1)]
    starts, word = [], []
    specials = set(tok.all_special_ids)
    for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        if i in specials:
            starts.append(True)
            word.append(-1)
            continue
        chars = [c for c in range(a, b) if text[c] != " "]
        w = word_of_char[chars[0]] if chars else word_of_char[b]
        starts.append(not word or word[-1] != w)
        word.append(w)
    return ids, torch.tensor([starts]), word


def test_word_starts_follow_each_tokenizer_convention(tokenizer_kind):
    kind, tok = tokenizer_kind
    ids, truth, word = _truth(tok, TEXT)
    got = word_starts(ids, word_start_table(tok), tok.all_special_ids)
    real = [i for i, w in enumerate(word) if w >= 0]
    assert got[0, real].tolist() == truth[0, real].tolist(), tok.convert_ids_to_tokens(ids[0])
    assert len(real) > len(set(word) - {-1}), (
        f"{kind}: no word was split into pieces; the test proves nothing"
    )


def test_whole_word_masking_masks_all_pieces_of_a_word_or_none(tokenizer_kind):
    kind, tok = tokenizer_kind
    ids, _, word = _truth(tok, TEXT)
    ids = ids.repeat(64, 1)  # 64 rows, each its own random stream
    spec = MaskSpec(tok.mask_token_id, len(tok), tok.all_special_ids, probability=0.3, seed=1)
    _, labels = mask_tokens(
        ids, range(64), spec, word_starts(ids, word_start_table(tok), tok.all_special_ids)
    )
    masked = labels != IGNORE
    multi_piece_masked = 0
    for row in masked:
        for w in set(word) - {-1}:
            pos = [i for i, x in enumerate(word) if x == w]
            assert len({bool(row[i]) for i in pos}) == 1, f"{kind}: word {w} partly masked"
            multi_piece_masked += len(pos) > 1 and bool(row[pos[0]])
    assert multi_piece_masked > 0
    assert not masked[:, 0].any() and not masked[:, -1].any()  # [CLS]/<s> and [SEP]/</s> never masked
    assert 0.15 < masked.float().mean() < 0.45


def test_bert_masking_is_deterministic_per_sample_and_80_10_10():
    spec = MaskSpec(mask_id=3, vocab_size=1000, special_ids=[0, 1], probability=0.15, seed=7)
    ids = torch.randint(5, 1000, (64, 128))
    inputs, labels = mask_tokens(ids, range(100, 164), spec)
    # row i depends only on (seed, its index): the same sample alone gives the same mask
    inputs_1, labels_1 = mask_tokens(ids[10:11], [110], spec)
    assert torch.equal(labels[10:11], labels_1) and torch.equal(inputs[10:11], inputs_1)
    masked = labels != IGNORE
    assert 0.12 < masked.float().mean() < 0.18
    frac_mask = (inputs[masked] == 3).float().mean()
    frac_same = (inputs[masked] == ids[masked]).float().mean()
    assert 0.75 < frac_mask < 0.85 and 0.05 < frac_same < 0.16
    assert torch.equal(inputs[~masked], ids[~masked])


@pytest.mark.parametrize("preset", ["gpt-mini", "llama-mini"])
def test_future_tokens_do_not_change_causal_outputs(preset):
    from domainlm.pretrain import presets

    built = presets.build(
        preset,
        "clm",
        100,
        64,
        {"pad": 0, "bos": 1, "eos": 1},
        overrides={"n_layer" if preset.startswith("gpt") else "num_hidden_layers": 2},
    )
    model = built.model.eval()
    ids = torch.randint(2, 100, (2, 24))
    changed = ids.clone()
    changed[:, 12:] = torch.randint(2, 100, (2, 12))
    with torch.no_grad():
        a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-5)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-3)


TINY_ELECTRA = [
    "model.overrides={num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 2, "
    "intermediate_size: 128, embedding_size: 32}"
]


def test_electra_trains_and_saves_discriminator_and_generator(corpus_dir, bert_tokenizer, tmp_path):
    import transformers

    res = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="electra-small",
        objective="electra",
        budget="10m",
        max_steps=40,
        name="electra",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=8,
        lr=3e-3,
        overrides=[*TINY_ELECTRA, "speed.threads=1", "train.log_every=5", "train.eval_every=10h"],
    )
    rows = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in rows if "val_loss" in r]
    assert vals[-1]["val_loss"] < vals[0]["val_loss"] - 0.5  # the generator learns
    assert vals[-1]["val_disc_accuracy"] > 0.8  # most tokens are original; the discriminator learns that
    assert all("gen_loss" in r and "disc_loss" in r for r in rows if "loss" in r)

    disc = transformers.AutoModelForPreTraining.from_pretrained(res.model_dir)
    gen = transformers.AutoModelForMaskedLM.from_pretrained(res.run_dir / "generator")
    assert isinstance(disc, transformers.ElectraForPreTraining)
    assert isinstance(gen, transformers.ElectraForMaskedLM)
    # the embeddings were shared during training: both folders hold the same values
    assert torch.equal(
        disc.electra.embeddings.word_embeddings.weight, gen.electra.embeddings.word_embeddings.weight
    )
    assert torch.equal(gen.generator_lm_head.weight, gen.electra.embeddings.word_embeddings.weight)
    assert gen.config.hidden_size <= disc.config.hidden_size
    tok = transformers.AutoTokenizer.from_pretrained(res.model_dir)
    fill = transformers.pipeline("fill-mask", model=str(res.run_dir / "generator"), tokenizer=tok)
    assert len(fill(f"The {tok.mask_token} shall be elected.")) == 5

    # the pair's checkpoint (shared, aliased tensors) restores: two more steps resume from step 40
    rep = CaptureReporter()
    messages = rep.messages

    more = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="electra-small",
        objective="electra",
        budget="10m",
        max_steps=42,
        name="electra",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=8,
        lr=3e-3,
        reporter=rep,
        overrides=[*TINY_ELECTRA, "speed.threads=1", "train.log_every=5", "train.eval_every=10h"],
    )
    assert any("resumed from step-000000040" in m for m in messages), messages
    assert more.steps == 42 and more.validation["loss"] < vals[0]["val_loss"] - 0.5


def test_electra_preset_shapes_follow_the_paper():
    from domainlm.pretrain import presets

    n = presets.count_parameters("electra-small", vocab_size=30522)
    assert 13e6 < n < 15e6  # ELECTRA-Small: 14M (Clark et al. 2020, table 1)
    cfg = presets.make_config("electra-small", 30522, 512, {"pad": 0})
    gen = presets.generator_config("electra-small", cfg)
    assert gen.hidden_size * 4 == cfg.hidden_size and gen.embedding_size == cfg.embedding_size


def test_whole_word_masking_setting_trains(corpus_dir, bert_tokenizer, tmp_path):
    res = pretrain(
        corpus_dir,
        tokenizer=bert_tokenizer,
        preset="bert-tiny",
        objective="mlm",
        budget="5m",
        max_steps=5,
        name="wwm",
        runs_dir=tmp_path,
        seq_len=32,
        batch_size=4,
        overrides=["train.whole_word_mask=true", "speed.threads=1"],
    )
    assert res.steps == 5 and res.validation["loss"] > 0
