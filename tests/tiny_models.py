"""Tiny HF model folders for the export and serve tests, built from configs with a tokenizer trained here.

Each ``make_*`` writes a save_pretrained folder (weights + tokenizer) and returns its path. Models are
2 layers x 32 hidden so a test exports/serves one in about a second on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

LABELS = {0: "other", 1: "parliament"}


def _bert_config(tok, **kw):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **kw,
    )


def labelled_rows(docs: list[str]) -> list[dict]:
    """Sentences labelled by whether they mention Parliament: a task a tiny model learns in seconds."""
    rows = []
    for d in docs:
        for s in d.split(". "):
            if len(s) > 20:
                rows.append({"text": s, "label": LABELS[int("Parliament" in s)]})
    return rows


def make_classifier(tokenizer_dir: Path, out: Path, rows: list[dict], steps: int = 40) -> Path:
    """A BertForSequenceClassification with id2label, trained briefly on ``rows``."""
    import torch
    from transformers import BertForSequenceClassification

    from domainlm.tokens.tokenizer import load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer(tokenizer_dir)
    cfg = _bert_config(tok, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    model = BertForSequenceClassification(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    y_all = torch.tensor([cfg.label2id[r["label"]] for r in rows])
    for step in range(steps):
        idx = torch.randint(0, len(rows), (16,), generator=torch.Generator().manual_seed(step))
        enc = tok(
            [rows[i]["text"] for i in idx], padding=True, truncation=True, max_length=32, return_tensors="pt"
        )
        loss = model(**enc, labels=y_all[idx]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def make_mlm(tokenizer_dir: Path, out: Path) -> Path:
    import torch
    from transformers import BertForMaskedLM

    from domainlm.tokens.tokenizer import load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer(tokenizer_dir)
    BertForMaskedLM(_bert_config(tok)).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def make_gpt(corpus_dir: Path, out: Path) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from domainlm.tokens.tokenizer import load_tokenizer, train_tokenizer

    torch.manual_seed(0)
    train_tokenizer(corpus_dir, out / "tok", kind="bpe", vocab_size=300, style="gpt")
    tok = load_tokenizer(out / "tok")
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model_dir = out / "model"
    GPT2LMHeadModel(cfg).save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    return model_dir


# ----------------------------------------------------------------------------------------------------
# fixtures (import them into a test module to use them)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def labelled(tmp_path_factory):
    """(train rows, path of a held-out labelled JSONL) from synthetic documents."""
    import json

    from tests.conftest import make_docs

    rows = labelled_rows(make_docs(80, seed=1))
    path = tmp_path_factory.mktemp("labelled") / "heldout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:64]))
    return rows[64:], path


@pytest.fixture(scope="session")
def clf_dir(bert_tokenizer, labelled, tmp_path_factory) -> Path:
    return make_classifier(bert_tokenizer, tmp_path_factory.mktemp("clf") / "model", labelled[0])


@pytest.fixture(scope="session")
def mlm_dir(bert_tokenizer, tmp_path_factory) -> Path:
    return make_mlm(bert_tokenizer, tmp_path_factory.mktemp("mlm") / "model")


@pytest.fixture(scope="session")
def gpt_dir(corpus_dir, tmp_path_factory) -> Path:
    return make_gpt(corpus_dir, tmp_path_factory.mktemp("gpt"))
