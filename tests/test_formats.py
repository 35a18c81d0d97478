"""format_version is checked wherever domainlm reads back what it wrote: an old, future, missing or garbled
version is one UserError naming the file, both versions and the fix, never a stack trace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from domainlm import FORMAT_VERSION
from domainlm import config as cfgmod
from domainlm.errors import UserError
from domainlm.formats import check_format


def test_check_format_accepts_what_it_reads():
    assert check_format({"format_version": 2}, "f.json", (1, 2)) == 2


@pytest.mark.parametrize(
    "data,words",
    [
        ({"format_version": 99}, ["written by format 99", "reads format 1", "Upgrade domainlm"]),
        ({"format_version": 0}, ["written by format 0", "older domainlm", "domainlm pretrain"]),
        ({"step": 3}, ["no format_version", "damaged"]),
        ({"format_version": "one"}, ["format_version 'one'", "not a whole number"]),
        ({"format_version": True}, ["not a whole number"]),
        (["not", "a", "mapping"], ["no format_version"]),
    ],
)
def test_check_format_names_the_file_and_the_fix(data, words):
    with pytest.raises(UserError) as e:
        check_format(data, "runs/x", 1, "run folder", "domainlm pretrain")
    msg = str(e.value)
    assert "run folder 'runs/x'" in msg
    for w in words:
        assert w in msg, (w, msg)


def _fake_run(tmp_path: Path, version) -> Path:
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    data = cfgmod.RunConfig().model_dump(mode="json") | {"format_version": version}
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    return run


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, "garbled"])
def test_every_reader_of_a_run_folder_checks_its_config(tmp_path, version):
    from domainlm.evaluate.lm import evaluate
    from domainlm.export import resolve_source

    run = _fake_run(tmp_path, version)
    for read in (lambda: evaluate([run]), lambda: resolve_source(run), lambda: cfgmod.read_run_config(run)):
        with pytest.raises(UserError, match="format_version 'garbled'|written by format"):
            read()
    with pytest.raises(UserError, match="written by format|garbled"):  # pretrain --config runs/X/config.yaml
        cfgmod.load(cfgmod.RunConfig, run / "config.yaml")


def test_cli_says_one_line_for_a_future_run_folder(tmp_path):
    from tests.test_cli import _one_line_error, run_cli

    run = _fake_run(tmp_path, FORMAT_VERSION + 1)
    line = _one_line_error(run_cli("evaluate", str(run)))
    assert f"written by format {FORMAT_VERSION + 1}" in line and str(run) in line


def test_checkpoint_state_is_checked(tmp_path):
    from domainlm.pretrain import checkpoint

    ckpt = tmp_path / "step-000000003"
    ckpt.mkdir()
    (ckpt / "state.json").write_text(json.dumps({"format_version": checkpoint.FORMAT_VERSION + 1, "step": 3}))
    with pytest.raises(UserError, match="checkpoint .* written by format"):
        checkpoint.load(ckpt, model=None, opt=None)


def test_token_cache_metadata_is_checked(corpus_dir, bert_tokenizer, tmp_path):
    from domainlm.tokens.encode import encode_split

    corpus = tmp_path / "corpus"  # a copy: its cache is its own
    shutil.copytree(corpus_dir, corpus, ignore=shutil.ignore_patterns("cache"))
    shard = encode_split(corpus, bert_tokenizer, "train", 2)
    meta_path = shard.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": "x"}))
    with pytest.raises(UserError, match="token cache .* not a whole number"):
        encode_split(corpus, bert_tokenizer, "train", 2)


def test_export_metadata_is_checked(tmp_path):
    from domainlm.export import resolve_source

    model = tmp_path / "exported"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    (model / "tokenizer.json").write_text("{}")
    (model / "domainlm_export.json").write_text(json.dumps({"format": "onnx", "task": "fill-mask"}))
    with pytest.raises(UserError, match="export .* no format_version"):
        resolve_source(model)


def test_corpus_stats_are_checked(corpus_dir, tmp_path):
    from domainlm.recommend import recommend

    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_dir, corpus, ignore=shutil.ignore_patterns("cache"))
    stats = json.loads((corpus / "stats.json").read_text())
    (corpus / "stats.json").write_text(json.dumps({**stats, "format_version": 7}))
    with pytest.raises(UserError, match="corpus stats .* written by format 7"):
        recommend(corpus)
