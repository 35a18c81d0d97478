"""The model card (README.md with YAML metadata) written beside every saved model."""

from __future__ import annotations

from pathlib import Path

import yaml

from . import machine


def write_model_card(model_dir: Path, cfg, summary: dict) -> None:
    objective = cfg.model.objective
    pipeline_tag = "text-generation" if objective == "clm" else "fill-mask"
    meta = {"library_name": "transformers", "pipeline_tag": pipeline_tag, "tags": ["domainlm", objective]}
    if cfg.model.init_from:
        meta["base_model"] = str(cfg.model.init_from)
    val = summary.get("validation", {})
    m = machine.describe()
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {cfg.name}",
        "",
        f"A {objective.upper()} model trained with [domainlm](https://pypi.org/project/domainlm/) "
        f"({'continued from ' + str(cfg.model.init_from) if cfg.model.init_from else 'preset ' + cfg.model.preset}).",
        "",
        "## Training",
        f"- corpus: `{cfg.corpus}`",
        f"- budget: {cfg.train.budget}; trained {summary.get('steps', 0)} steps, {summary.get('tokens', 0):,} tokens "
        f"in {summary.get('seconds', 0):.0f} s (stopped by {summary.get('stopped_by', '?')})",
        f"- sequence length {cfg.train.seq_len}, batch {cfg.train.batch_size} x {cfg.train.grad_accum}, peak lr {cfg.train.lr}",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}",
        "",
        "## Validation",
    ]
    lines += [f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in val.items()]
    lines += ["", "The full resolved configuration is `config.yaml` in the run folder."]
    (model_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
