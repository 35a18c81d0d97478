"""Objectives: whole-word masking for WordPiece/BPE/Unigram (and in the masks the loop trains on), BERT
masking, causal masking of GPT-2 and Llama, ELECTRA trained end to end into HF discriminator and
generator folders (its metrics the same in training and `evaluate`), and a new objective registered
without touching the loop."""

from __future__ import annotations

import pytest
import torch

from domainlm.pretrain.objectives import IGNORE, MaskSpec, mask_tokens, word_start_table, word_starts
from tests.conftest import CaptureReporter, metric_rows, tiny_pretrain

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


ELECTRA_RUN = dict(
    preset="electra-small",
    objective="electra",
    budget="10m",
    max_steps=150,
    lr=5e-4,  # ELECTRA-Small's rate (Clark et al. 2020, table 7); at 3e-3 the discriminator stays "all original"
    name="electra",
    overrides=[*TINY_ELECTRA, "speed.threads=1", "train.log_every=5", "train.eval_every=10h"],
)


def test_electra_trains_and_saves_discriminator_and_generator(corpus_dir, bert_tokenizer, tmp_path):
    import transformers

    from domainlm.evaluate.lm import evaluate
    from domainlm.pretrain.metrics import METRICS

    res = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, **ELECTRA_RUN)
    rows = metric_rows(res.run_dir)
    vals = [r for r in rows if "val_loss" in r]
    assert vals[-1]["val_loss"] < vals[0]["val_loss"] - 0.5  # the generator learns
    # the discriminator learns more than "always original", which scores 1 - replaced fraction on the
    # same tokens (~0.85), and finds replaced tokens (F1 of "replaced" well above 0)
    final = vals[-1]
    assert final["val_disc_accuracy"] > 1 - final["val_disc_replaced_fraction"], final
    assert final["val_disc_replaced_f1"] > 0.1, final
    assert all("gen_loss" in r and "disc_loss" in r for r in rows if "loss" in r)
    # one definition per metric name: evaluate's eval.json gives the same numbers on the same blocks
    ev = evaluate([res.run_dir], max_docs=0)[str(res.run_dir)]
    for name in ("disc_accuracy", "disc_replaced_f1", "disc_replaced_fraction", "disc_tokens"):
        assert ev[name] == pytest.approx(final[f"val_{name}"], abs=1e-6), name
    assert ev["generator_accuracy"] == pytest.approx(final["val_accuracy"], abs=1e-6)
    assert {k.removeprefix("val_") for r in vals for k in r if k.startswith("val_")} <= set(METRICS)

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

    # the pair's checkpoint (shared, aliased tensors) restores: two more steps resume from the last step
    rep = CaptureReporter()
    messages = rep.messages
    last = ELECTRA_RUN["max_steps"]
    more = tiny_pretrain(
        corpus_dir,
        tmp_path,
        tokenizer=bert_tokenizer,
        **(ELECTRA_RUN | {"max_steps": last + 2}),
        reporter=rep,
    )
    assert any(f"resumed from step-{last:09d}" in m for m in messages), messages
    assert more.steps == last + 2 and more.validation["loss"] < vals[0]["val_loss"] - 0.5


def test_electra_preset_shapes_follow_the_paper():
    from domainlm.pretrain import presets

    n = presets.count_parameters("electra-small", vocab_size=30522)
    assert 13e6 < n < 15e6  # ELECTRA-Small: 14M (Clark et al. 2020, table 1)
    cfg = presets.make_config("electra-small", 30522, 512, {"pad": 0})
    gen = presets.generator_config("electra-small", cfg)
    assert gen.hidden_size * 4 == cfg.hidden_size and gen.embedding_size == cfg.embedding_size


def _split_words(seen, tok) -> tuple[int, int]:
    """(masked words of several pieces, words masked only in part) in the (ids, labels) the loop used.
    A WordPiece continuation (``##``) belongs to the word of the piece before it."""
    pieces = tok.convert_ids_to_tokens(list(range(len(tok))))
    specials = set(tok.all_special_ids)
    whole = partial = 0
    for ids, labels in seen:
        masked = labels != IGNORE
        for row, m in zip(ids.tolist(), masked.tolist(), strict=True):
            for i in range(1, len(row)):
                if pieces[row[i]].startswith("##") and row[i - 1] not in specials:
                    whole += m[i] and m[i - 1]
                    partial += m[i] != m[i - 1]
    return whole, partial


def test_whole_word_masking_setting_trains(corpus_dir, bert_tokenizer, tmp_path, monkeypatch):
    """The masks the loop trains on keep every word whole with the setting, and split words without it."""
    from domainlm.pretrain import objectives
    from domainlm.tokens.tokenizer import load_tokenizer

    real, seen = objectives.MLM.batch, []

    def recording(self, ids, indices):
        batch = real(self, ids, indices)
        seen.append((ids.clone(), batch.args[1].clone()))  # the ids and the labels of this micro-batch
        return batch

    monkeypatch.setattr(objectives.MLM, "batch", recording)
    tok = load_tokenizer(bert_tokenizer)
    kw = dict(tokenizer=bert_tokenizer, max_steps=5, name="wwm", batch_size=4, lr=1e-3)
    res = tiny_pretrain(
        corpus_dir, tmp_path, **kw, overrides=["train.whole_word_mask=true", "speed.threads=1"]
    )
    assert res.steps == 5 and res.validation["loss"] > 0
    assert len(seen) == 5
    whole, partial = _split_words(seen, tok)
    assert whole > 0 and partial == 0, (whole, partial)
    seen.clear()
    tiny_pretrain(corpus_dir, tmp_path, **(kw | {"name": "pieces"}), overrides=["speed.threads=1"])
    assert _split_words(seen, tok)[1] > 0  # per-piece masking does split words: the check can fail


class Echo:
    """A toy objective: predict every input token at its own position (no masks). It exists only to
    show that a new objective is one class in the registry."""

    needs_mask_token, block_layout, tokenizer_style, auto_model = False, "mlm", None, None
    reduction, stats = "sum", ("hits",)

    class Module(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids):
            logits = self.model(input_ids=ids).logits.float()  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="sum")
            return loss, (logits.argmax(-1) == ids).float().mean()

    def __init__(self, setup):
        self.setup, self.module = setup, Echo.Module(setup.model)

    def batch(self, ids, indices):
        from domainlm.pretrain.objectives import Batch

        return Batch((ids,), ids.numel())

    def loss(self, module, batch):
        loss, hits = module(*batch.args)
        return loss, {"hits": hits}

    def metrics(self, blocks, batch_size, n_batches, seed):
        ids = blocks.batch(range(min(blocks.n_blocks, batch_size)))
        loss, hits = self.module(ids)
        return {"loss": loss.item() / ids.numel(), "accuracy": hits.item()}


def test_a_registered_objective_trains_without_touching_the_loop(
    corpus_dir, bert_tokenizer, tmp_path, monkeypatch
):
    from domainlm.pretrain import objectives, presets

    # a new family = one preset entry (+ its family's classes); a new objective = one class
    monkeypatch.setitem(presets.FAMILIES, "toy", ("BertConfig", {"echo": "BertForMaskedLM"}, "bert"))
    tiny = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    monkeypatch.setitem(presets.PRESETS, "toy-tiny", {"family": "toy", **tiny})
    monkeypatch.setitem(objectives.OBJECTIVES, "echo", Echo)
    res = tiny_pretrain(
        corpus_dir,
        tmp_path,
        tokenizer=bert_tokenizer,
        preset="toy-tiny",
        objective="echo",
        max_steps=30,
        overrides=["speed.threads=1", "train.log_every=1", "train.eval_every=10h"],
    )
    rows = metric_rows(res.run_dir)
    train = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "val_loss" in r]
    assert res.steps == 30 and [r["step"] for r in train] == list(range(1, 31))
    assert all(0 <= r["hits"] <= 1 for r in train)
    assert vals[-1]["val_loss"] < vals[0]["val_loss"] - 1.0 and vals[-1]["val_accuracy"] > 0.5, vals
    assert (res.model_dir / "model.safetensors").is_file()


def test_an_unknown_objective_lists_the_registered_ones(corpus_dir, tmp_path):
    from domainlm.errors import UserError

    with pytest.raises(UserError, match="unknown objective 'mln'.*clm, electra, mlm"):
        tiny_pretrain(corpus_dir, tmp_path, objective="mln")


def test_mask_rate_falls_linearly_with_the_budget_only_when_asked():
    from domainlm.pretrain.loop import mask_rate_at

    assert [mask_rate_at(p, 0.4, 0.15) for p in (0.0, 0.5, 1.0, 1.5)] == pytest.approx(
        [0.4, 0.275, 0.15, 0.15]
    )
    assert mask_rate_at(0.7, 0.4, None) == 0.4


def test_a_masking_rate_schedule_reaches_the_masks_the_loop_trains_on(
    corpus_dir, bert_tokenizer, tmp_path, monkeypatch
):
    """train.mlm_probability_end: the share of masked tokens falls step by step from the start rate to the
    end rate (the schedule follows max_steps, as the learning rate does); without it the rate stays put."""
    from domainlm.pretrain import objectives

    real, shares = objectives.MLM.batch, []

    def recording(self, ids, indices):
        batch = real(self, ids, indices)
        shares.append(batch.count / ids.numel())
        return batch

    monkeypatch.setattr(objectives.MLM, "batch", recording)
    kw = dict(tokenizer=bert_tokenizer, max_steps=10, batch_size=8, lr=1e-3)
    sets = ["speed.threads=1", "train.mlm_probability=0.6"]
    tiny_pretrain(
        corpus_dir, tmp_path, **kw, name="falls", overrides=[*sets, "train.mlm_probability_end=0.05"]
    )
    falling, shares[:] = shares[:], []
    tiny_pretrain(corpus_dir, tmp_path, **kw, name="fixed", overrides=sets)
    assert len(falling) == len(shares) == 10
    # rate 0.6 at step 1, 0.105 at step 10 (progress 0.9); the share is a little lower ([CLS] and [SEP]
    # are never masked) and noisy (256 tokens a step)
    assert falling[0] > 0.4 and falling[-1] < 0.2
    assert falling[0] > falling[4] > falling[-1]
    assert min(shares) > 0.4  # the constant rate
