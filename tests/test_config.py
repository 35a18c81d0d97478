"""Config: typed defaults < YAML < --set < flags; unknown keys list the valid ones; every shipped YAML loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from domainlm import config as cfgmod
from domainlm.config import PrepareConfig, RunConfig
from domainlm.errors import UserError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_folder_is_not_empty():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = cfgmod.load(RunConfig, path)
    assert cfg.name
    first = path.read_text().splitlines()[0]
    assert first.startswith("# domainlm "), "each config begins with the command that runs it"


def test_layers_override_in_order(tmp_path):
    y = tmp_path / "a.yaml"
    y.write_text("train:\n  budget: 10m\n  lr: 0.01\nmodel:\n  preset: bert-small\n")
    cfg = cfgmod.load(RunConfig, y, ["train.lr=0.002"], **{"train.budget": "1h", "model.preset": None})
    assert cfg.train.budget == "1h"  # flag beats YAML
    assert cfg.train.lr == 0.002  # --set beats YAML
    assert cfg.model.preset == "bert-small"  # YAML beats default; a None flag is "not given"
    assert cfg.train.seq_len == 128  # default


def test_unknown_key_lists_valid_keys(tmp_path):
    y = tmp_path / "typo.yaml"
    y.write_text("speed:\n  bf61: on\n")
    with pytest.raises(UserError) as e:
        cfgmod.load(RunConfig, y)
    msg = str(e.value)
    assert "speed.bf61" in msg and "typo.yaml" in msg and "sparse_prediction" in msg


def test_bad_value_names_the_field():
    with pytest.raises(UserError, match="split"):
        cfgmod.load(PrepareConfig, None, ["split=[0.5,0.5,0.5]"])
    with pytest.raises(UserError, match="duration"):
        cfgmod.load(RunConfig, None, ["train.budget=soon"])
    # a check across the config (a model validator) has no field location; its message names the field
    with pytest.raises(UserError) as e:
        cfgmod.load(RunConfig, None, name="law 50%")
    assert "for ''" not in str(e.value) and "name 'law 50%' must be letters, digits" in str(e.value)


def test_dump_is_complete_and_reloads(tmp_path):
    cfg = cfgmod.load(RunConfig, None, ["train.lr=3e-4", "name=x"])
    cfgmod.dump(cfg, tmp_path / "config.yaml")
    data = yaml.safe_load((tmp_path / "config.yaml").read_text())
    # no hidden defaults: every field of every section is written
    for section in ("train", "speed", "model", "tokenizer_train"):
        assert set(data[section]) == set(type(getattr(cfg, section)).model_fields)
    assert cfgmod.load(RunConfig, tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    "text,seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("45", 45)]
)
def test_parse_duration(text, seconds):
    assert cfgmod.parse_duration(text) == seconds
