"""benchmarks/time_to_quality.py: token budgets (the same tokens for every setting, whatever the speed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import time_to_quality as ttq  # noqa: E402


def test_token_budgets_parse_and_durations_are_not_tokens():
    assert ttq.budget_tokens("1.4Mtok") == 1_400_000
    assert ttq.budget_tokens("700ktok") == 700_000
    assert ttq.budget_tokens("50000tok") == 50_000
    assert ttq.budget_tokens("3m") is None and ttq.budget_tokens("1.4M") is None
    assert sorted(["1.4Mtok", "10m", "700ktok", "1m"], key=ttq.budget_order) == [
        "1m",
        "10m",
        "700ktok",
        "1.4Mtok",
    ]


def test_a_budget_that_is_neither_names_the_flag():
    with pytest.raises(SystemExit, match="--budgets: '3 min' is neither"):
        ttq.check_budget("3 min")
    assert ttq.check_budget("90s") == "90s" and ttq.check_budget("1.4Mtok") == "1.4Mtok"


def _train_cmds(monkeypatch, budget: str, setting: dict, runs: Path) -> list[tuple]:
    seen = []
    monkeypatch.setattr(ttq, "_run", lambda cmd, env=None: seen.append((cmd, env)) or "")
    data = {"corpus": Path("c"), "tokenizer": Path("t"), "probes": Path("p")}
    ttq.train_cell(data, setting, budget, runs / "x")
    return seen


def _train_cmd(monkeypatch, budget: str, setting: dict, runs: Path) -> list[str]:
    return _train_cmds(monkeypatch, budget, setting, runs)[-1][0]  # the cell's cache lies beside runs


def test_every_cell_compiles_into_its_own_cache_cold_unless_warmed_by_an_untimed_run(monkeypatch, tmp_path):
    stale = tmp_path / "compile-cache" / "x" / "inductor" / "old-kernel"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier cell")
    (cold,) = _train_cmds(monkeypatch, "2m", ttq.SETTINGS["modernbert-mini"], tmp_path / "runs")
    assert cold[1]["TORCHINDUCTOR_CACHE_DIR"] == str(stale.parent)
    assert not stale.exists()  # emptied: the default's compile (auto, 3 minutes or more) is a first run's

    warmup, timed = _train_cmds(monkeypatch, "2m", ttq.SETTINGS["modernbert-mini compile"], tmp_path / "runs")
    assert warmup[1] == timed[1] == cold[1]  # the same cache: the timed run reads what the warm-up wrote
    assert warmup[0][warmup[0].index("--max-steps") + 1] == "3" and "--max-steps" not in timed[0]
    assert (
        warmup[0][warmup[0].index("--name") + 1] == "x-warmup"
        and timed[0][timed[0].index("--name") + 1] == "x"
    )
    assert "speed.compile=true" in warmup[0] and "speed.compile=true" in timed[0]

    # the default warmed: its warm-up compiles (auto would not, with a step count); the timed run is auto
    warmup, timed = _train_cmds(monkeypatch, "2m", ttq.SETTINGS["modernbert-mini warm"], tmp_path / "runs")
    assert warmup[0][-2:] == ["--set", "speed.compile=on"] and "speed.compile=on" not in timed[0]


def test_a_token_budget_trains_exactly_those_tokens_with_the_clock_only_as_a_cap(monkeypatch, tmp_path):
    cmd = _train_cmd(monkeypatch, "1.4Mtok", ttq.SETTINGS["modernbert-mini"], tmp_path)
    assert cmd[cmd.index("--max-tokens") + 1] == "1400000"
    assert cmd[cmd.index("--budget") + 1] == ttq._cells.TOKEN_CAP
    cmd = _train_cmd(monkeypatch, "3m", ttq.SETTINGS["modernbert-mini"], tmp_path)
    assert "--max-tokens" not in cmd and cmd[cmd.index("--budget") + 1] == "3m"
    with pytest.raises(SystemExit, match="Trainer"):
        _train_cmd(monkeypatch, "1.4Mtok", ttq.SETTINGS["trainer modernbert-mini"], tmp_path)


def _cell(setting: str, budget: str, acc: float, minutes: float) -> dict:
    return {"corpus": "demo", "setting": setting, "budget": budget, "minutes": minutes, "accuracy": acc,
            "max_tokens": ttq.budget_tokens(budget), "probe_top5": 0.5, "probe_top1": 0.4, "objective": "mlm",
            "perplexity": None, "ngram_perplexity": None, "tokens": 1000, "tokens_per_s": 10.0}  # fmt: skip


def test_token_cells_stay_out_of_the_wall_clock_targets_and_are_drawn_as_bars(tmp_path):
    cells = [
        _cell("modernbert-mini", "3m", 0.46, 3.0),
        _cell("modernbert-mini", "1.4Mtok", 0.56, 5.5),  # more minutes than the 3m cell: not the target
        _cell("modernbert-mini wwm", "1.4Mtok", 0.52, 5.6),
    ]
    res = ttq.summary(cells)
    assert res["demo_acc_3m"] == 0.46 and res["demo_probe_top5_3m"] == 0.5
    assert (
        res["demo_modernbert-mini_acc_1.4Mtok"] == 0.56
        and res["demo_modernbert-mini_wwm_acc_1.4Mtok"] == 0.52
    )
    only_tokens = ttq.summary(cells[1:])
    assert not any(k.startswith("demo_acc_") for k in only_tokens)  # no wall-clock target from token cells
    ttq.plot(cells, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    assert "| 1.4Mtok |" in ttq.table(cells)
    json.dumps(res)


def test_the_trainer_target_is_the_best_trainer_cell_on_the_default_model():
    cells = [
        _cell("modernbert-mini", "2m", 0.56, 2.0),
        _cell("modernbert-mini", "3m", 0.59, 3.0),
        _cell("trainer modernbert-mini", "10m", 0.49, 10.0),  # the default's recipe
        _cell("trainer modernbert-mini lr1e-3", "10m", 0.555, 10.0),  # an earlier recipe: stronger
        _cell("trainer modernbert-mini batch4", "10m", 0.51, 10.0),
    ]
    res = ttq.summary(cells)
    assert (
        res["demo_trainer_acc_10m"] == 0.555
        and res["demo_trainer_setting"] == "trainer_modernbert-mini_lr1e-3"
    )
    assert res["demo_minutes_to_trainer_10m"] == 2.0
    res = ttq.summary([c for c in cells if c["minutes"] != 2.0])
    assert res["demo_minutes_to_trainer_10m"] == 3.0


def test_the_warm_default_is_judged_on_its_mean_over_seeds():
    cells = [
        _cell("modernbert-mini", "2m", 0.54, 2.0),  # a machine's first 2-minute run (eager)
        _cell("modernbert-mini", "3m", 0.59, 3.0),
        _cell("modernbert-mini warm", "2m", 0.58, 2.0),
        _cell("modernbert-mini warm seed1", "2m", 0.54, 2.0),
        _cell("trainer modernbert-mini", "10m", 0.555, 10.0),
    ]
    res = ttq.summary(cells)
    assert res["demo_minutes_to_trainer_10m"] == 3.0
    assert res["demo_warm_acc_2m"] == 0.56 and res["demo_warm_seeds_2m"] == 2
    assert res["demo_minutes_to_trainer_10m_warm"] == 2.0
    cells[3]["accuracy"] = 0.52  # the mean falls under the Trainer's 55.5%
    assert ttq.summary(cells)["demo_minutes_to_trainer_10m_warm"] == "none"


def test_a_cell_records_the_recipe_it_trained_at_and_the_table_shows_its_lr(tmp_path):
    from domainlm.config import RunConfig, dump
    from domainlm.pretrain.presets import recipe_of, with_recipe

    # the run's config.yaml as `domainlm pretrain` writes it: the preset's recipe under the setting's --set
    cfg = RunConfig.model_validate({"model": {"preset": "modernbert-mini"}, "train": {"batch_size": 4}})
    dump(with_recipe(cfg), tmp_path / "config.yaml")
    recipe = ttq.cell_recipe(tmp_path, ttq.SETTINGS["modernbert-mini"])
    assert recipe["lr"] == recipe_of("modernbert-mini")["lr"] and recipe["batch_size"] == 4
    assert recipe["mlm_probability"] == recipe_of("modernbert-mini")["mlm_probability"]
    # the Trainer's masks are its collator's, whatever the config says
    trainer = ttq.cell_recipe(tmp_path, ttq.SETTINGS["trainer modernbert-mini"])
    assert trainer["mlm_probability"] == ttq.TRAINER_MLM_PROBABILITY != recipe["mlm_probability"]
    text = ttq.table([_cell("modernbert-mini", "2m", 0.5, 2.0) | {"recipe": {"lr": 1e-3}},
                      _cell("modernbert-mini", "3m", 0.5, 3.0)])  # fmt: skip
    assert "| modernbert-mini | 0.001 | 2m |" in text and "| modernbert-mini | - | 3m |" in text


def test_the_defaults_cells_of_an_earlier_recipe_are_history_not_the_default():
    from domainlm.pretrain.presets import recipe_of

    now = recipe_of("modernbert-mini")
    before = now | {"lr": now["lr"] / 2}

    def cell(setting, budget, acc, minutes, recipe):
        return _cell(setting, budget, acc, minutes) | {"preset": "modernbert-mini", "recipe": recipe}

    cells = [
        cell("modernbert-mini", "3m", 0.55, 3.0, now),
        cell("modernbert-mini", "2m", 0.60, 2.0, before),  # a better number, at the old recipe
        cell("modernbert-mini warm", "3m", 0.58, 3.0, before),
        cell("modernbert-mini warm seed1", "3m", 0.56, 3.0, now),
        _cell("modernbert-mini warm seed2", "3m", 0.54, 3.0) | {"preset": "modernbert-mini"},  # unrecorded
        _cell("trainer modernbert-mini lr1e-3", "10m", 0.57, 10.0) | {"preset": "modernbert-mini"},
    ]
    res = ttq.summary(cells)
    assert res["demo_acc_3m"] == 0.55 and res["demo_minutes_to_trainer_10m"] == "none"
    assert res["demo_warm_seeds_3m"] == 2 and res["demo_warm_acc_3m"] == 0.55
    assert ttq.on_recipe(cells[0]) and not ttq.on_recipe(cells[1]) and ttq.on_recipe(cells[4])


@pytest.mark.parametrize(("batch", "batches"), [(8, "16"), (16, "8"), (4, "32")])
def test_every_masked_cell_is_scored_on_the_same_blocks_whatever_it_trained_at(
    monkeypatch, tmp_path, batch, batches
):
    from domainlm.config import RunConfig, dump

    def config(**train):  # the run's config.yaml as `domainlm pretrain` writes it
        dump(
            RunConfig.model_validate({"model": {"preset": "modernbert-mini"}, "train": train}),
            run / "config.yaml",
        )

    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    config(seq_len=64, batch_size=batch)
    (run / "eval.json").write_text(json.dumps({"accuracy": 0.5}))
    cmds = []
    monkeypatch.setattr(ttq, "_run", lambda cmd, env=None: cmds.append(cmd) or "")
    data = {"probes": tmp_path / "probes.jsonl"}
    ttq.evaluate_cell(data, ttq.SETTINGS["modernbert-mini seq64"], run, tmp_path / "ngram.json", 100)
    (cmd,) = cmds
    assert cmd[cmd.index("--seq-len") + 1] == str(ttq.EVAL_SEQ_LEN) == "128"
    assert cmd[cmd.index("--eval-batches") + 1] == batches  # 128 blocks in every cell
    config(batch_size=5)
    with pytest.raises(SystemExit, match="batch 5 does not divide"):
        ttq.evaluate_cell(data, ttq.SETTINGS["modernbert-mini"], run, tmp_path / "ngram.json", 100)


def test_a_cell_of_an_earlier_lr_is_labelled_with_it_and_never_shares_a_line_with_the_recipe():
    from domainlm.pretrain.presets import recipe_of

    now = recipe_of("modernbert-mini")["lr"]
    base = {"setting": "modernbert-mini", "preset": "modernbert-mini", "sets": []}
    assert ttq.shown_name(base | {"recipe": {"lr": now}}) == "modernbert-mini"
    assert ttq.shown_name(base) == "modernbert-mini"  # stored without its recipe: as it was
    assert ttq.shown_name(base | {"recipe": {"lr": 1e-3}}) == "modernbert-mini (lr 0.001)"
    # a setting that sets its own lr is named by it already
    named = {"setting": "modernbert-mini lr2e-3", "preset": "modernbert-mini", "sets": ["train.lr=2e-3"]}
    assert ttq.shown_name(named | {"recipe": {"lr": 2e-3}}) == "modernbert-mini lr2e-3"
