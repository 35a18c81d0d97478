"""export: turn a run (or any local HF model folder) into artefacts other tools load.

    domainlm export RUN --format hf|onnx|onnx-int8|sentence-transformers [-o DIR] [--eval-file F]

- ``hf``: ``save_pretrained`` weights (safetensors), the tokenizer and a model card with YAML metadata.
- ``onnx`` / ``onnx-int8``: ``torch.onnx.export`` (the TorchScript exporter: the dynamo exporter needs
  onnxscript, which we do not depend on) with dynamic batch and sequence axes; ``onnx-int8`` then applies
  onnxruntime's dynamic int8 quantisation (weights int8 per channel, activations quantised per batch at
  run time). The export is checked on held-out data cut into model-length windows (up to ``max_eval``,
  default 1,024): top-1 agreement with torch (with its 95% Wilson interval), the maximum logit difference
  and the task metric of both, with the 95% interval of the paired drop, and each side's latency per
  window. int8 tries a second, more accurate recipe before it refuses: embeddings and the output
  projection kept in fp32 (the layers whose rounding moves the argmax most). The export fails when the
  metric drops by more than ``tolerance`` points.
- ``sentence-transformers``: a Transformer + mean Pooling layout that ``SentenceTransformer(dir)`` loads.

The input is a run folder (``config.yaml`` + ``model/``) or a plain HF model folder. What the model does
(its *task*) comes from its config's ``architectures``: sequence classification -> ``classify``,
masked LM -> ``fill-mask``, causal LM -> ``generate``, a bare encoder -> ``embed``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainlm import FORMAT_VERSION as RUN_FORMAT
from domainlm.errors import UserError, resolve
from domainlm.formats import check_format

FORMAT_VERSION = 1

# architecture-name suffix -> task; the first that matches wins
ARCH_TASKS: dict[str, str] = {
    "ForSequenceClassification": "classify",
    "ForMaskedLM": "fill-mask",
    "LMHeadModel": "generate",
    "ForCausalLM": "generate",
}
# task -> transformers Auto class name used to load the torch model
TASK_LOADERS: dict[str, str] = {
    "classify": "AutoModelForSequenceClassification",
    "fill-mask": "AutoModelForMaskedLM",
    "generate": "AutoModelForCausalLM",
    "embed": "AutoModel",
}
# task -> ONNX output names (hidden states are exported beside logits so a served classifier or masked
# LM can also answer /embed from the same graph)
ONNX_OUTPUTS: dict[str, list[str]] = {
    "classify": ["logits", "last_hidden_state"],
    "fill-mask": ["logits", "last_hidden_state"],
    "generate": ["logits"],
    "embed": ["last_hidden_state"],
}
FORMATS: dict[str, str] = {
    "hf": "safetensors weights + tokenizer + model card",
    "onnx": "ONNX fp32 graph + tokenizer",
    "onnx-int8": "ONNX with dynamic int8 quantisation + tokenizer",
    "sentence-transformers": "Transformer + mean pooling, loads with SentenceTransformer(dir)",
}
# held-out sentences used only when neither the run's corpus nor --eval-file gives data
FALLBACK_TEXTS = [
    "The President shall be elected by the members of an electoral college.",
    "No person shall be deprived of his life or personal liberty except according to law.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software.",
    "The licensee may not distribute the work without the written consent of the licensor.",
    "Parliament may by law regulate the jurisdiction and powers of the Supreme Court.",
    "Every citizen shall have the right to freedom of speech and expression.",
    "Redistribution and use in source and binary forms, with or without modification, are permitted.",
    "This agreement shall be governed by the laws of the State in which the licensor resides.",
]


@dataclass
class Source:
    """A model to export or serve: where its weights and tokenizer are, what it does, where it came from."""

    path: Path
    model_dir: Path
    tokenizer_dir: Path
    task: str
    run_dir: Path | None = None
    config: dict = field(default_factory=dict)  # the run's config.yaml (as a dict), {} for a plain folder
    onnx_file: Path | None = None  # set when ``path`` is an ONNX export folder
    model_config: dict = field(default_factory=dict)  # config.json
    method: dict | None = None  # a classifier method saved by `domainlm finetune` (not a transformers model)

    @property
    def name(self) -> str:
        return (self.run_dir or self.path).resolve().name


def task_of(model_config: dict) -> str:
    """The task of a model from its HF ``config.json`` (architectures), ``embed`` if no head is known."""
    for arch in model_config.get("architectures") or []:
        for suffix, task in ARCH_TASKS.items():
            if arch.endswith(suffix):
                return task
    return "embed"


def resolve_source(path: str | Path) -> Source:
    """A run folder, a plain HF model folder, or an ONNX export folder -> :class:`Source`; ``general``
    (no such folder here): the installed general MiniLM, as ``finetune general`` names it."""
    import yaml

    from domainlm.tokens.tokenizer import model_folder

    p = model_folder(path)
    if not p.exists():
        raise UserError(
            f"'{p}' does not exist", "Pass a run folder (runs/NAME) or a Hugging Face model folder"
        )
    method = _method_source(p)
    if method is not None:
        return method
    run_dir, cfg = None, {}
    model_dir = p
    if (p / "model" / "config.json").is_file():
        run_dir, model_dir = p, p / "model"
        if (p / "config.yaml").is_file():
            cfg = yaml.safe_load((p / "config.yaml").read_text(encoding="utf-8")) or {}
            check_format(cfg, p, RUN_FORMAT, "run folder", "domainlm pretrain")
    if not (model_dir / "config.json").is_file():
        raise UserError(
            f"'{p}' is neither a run folder nor a Hugging Face model folder (no config.json)",
            "Pass runs/NAME made by `domainlm pretrain`/`finetune`, or a save_pretrained folder",
        )
    model_config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    tok_dir = model_dir
    if not (tok_dir / "tokenizer.json").is_file() and not (tok_dir / "vocab.txt").is_file():
        tok_dir = p / "tokenizer" if run_dir else tok_dir
    if not (tok_dir / "tokenizer.json").is_file() and not (tok_dir / "vocab.txt").is_file():
        raise UserError(f"no tokenizer beside the model in '{p}'", "Save the tokenizer into the model folder")
    meta_file = model_dir / "domainlm_export.json"
    onnx_file = None
    task = task_of(model_config)
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        check_format(meta, meta_file, FORMAT_VERSION, "export", "domainlm export")
        task = meta.get("task", task)
        if (model_dir / "model.onnx").is_file():
            onnx_file = model_dir / "model.onnx"
    return Source(p, model_dir, tok_dir, task, run_dir, cfg, onnx_file, model_config)


def _method_source(p: Path) -> Source | None:
    """A folder (or a finetune output's ``model/``) holding a classifier saved by a non-transformers
    method (TF-IDF, fastText, embeddings + LR ...): a :class:`Source` with ``method`` set, else None."""
    from domainlm.classify.methods import store

    for d, run in ((p / "model", p), (p, None)):
        if store.is_method_folder(d):
            meta = store.read_meta(d)
            id2label = {str(i): name for i, name in enumerate(meta["labels"])}
            return Source(p, d, d, "classify", run, {}, None, {"id2label": id2label}, meta)
    return None


def load_torch(src: Source, attention: str | None = None):
    """The torch model of ``src`` in eval mode, loaded offline."""
    import transformers

    if src.onnx_file is not None and not (src.model_dir / "model.safetensors").is_file():
        raise UserError(
            f"'{src.path}' is an ONNX export without torch weights",
            "Pass the run folder, or serve it with --onnx",
        )
    loader = getattr(transformers, TASK_LOADERS[src.task])
    kw: dict[str, Any] = {"local_files_only": True}
    if attention:
        kw["attn_implementation"] = attention
    model = loader.from_pretrained(str(src.model_dir), **kw)
    model.eval()
    return model


def load_tok(src: Source):
    from domainlm.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(src.tokenizer_dir)
    if tok.pad_token is None:  # GPT-style tokenizers: pad with end-of-text (masked out anyway)
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


@dataclass
class ExportResult:
    output: Path
    format: str
    task: str
    files: list[str]
    check: dict = field(default_factory=dict)


def export(
    run: str | Path,
    format: str = "hf",
    output: str | Path | None = None,
    eval_file: str | Path | None = None,
    tolerance: float = 1.0,
    max_eval: int = 1024,
    seq_len: int = 128,
) -> ExportResult:
    """Export ``run`` in ``format`` into ``output`` (default ``RUN/export/FORMAT``).

    ONNX formats are checked on held-out data (``eval_file``: JSONL/CSV with ``text`` and, for
    classifiers, ``label``; default the run's validation split). Raises UserError if the task metric
    drops by more than ``tolerance`` points.
    """
    resolve("export format", format, FORMATS)
    src = resolve_source(run)
    if src.onnx_file is not None:
        raise UserError(f"'{run}' is already an ONNX export", "Export from the run folder or HF model folder")
    from domainlm.modelcard import GENERAL_ID
    from domainlm.tokens.tokenizer import is_installed_general

    installed = is_installed_general(src.path)  # the general MiniLM's folder: inside its package
    if output is None and installed:
        raise UserError(
            f"'{run}' is the general MiniLM inside its installed package, not a place to write an export",
            f"Name an output folder: domainlm export {run} --format {format} -o general-{format}/",
        )
    out = Path(output) if output else (src.run_dir or src.path) / "export" / format
    if out.resolve() == src.model_dir.resolve():
        raise UserError(f"output '{out}' is the model folder itself", "Choose another -o folder")
    if src.method is not None:
        return _export_method(src, format, out)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        check: dict = {}
        if format == "hf":
            _export_hf(src, staging)
        elif format == "sentence-transformers":
            _export_st(src, staging)
        else:
            check = _export_onnx(
                src,
                staging,
                int8=format == "onnx-int8",
                eval_file=eval_file,
                max_eval=max_eval,
                seq_len=seq_len,
                tolerance=tolerance,
            )
            if check["metric_drop"] > tolerance:
                raise UserError(
                    f"the {format} export loses {check['metric_drop']:.2f} points of {check['metric']} "
                    f"({check['torch']:.2f} -> {check['onnx']:.2f}), more than the tolerance {tolerance}",
                    "Use --format onnx (no quantisation) or raise --tolerance",
                )
        from domainlm.modelcard import write_export_card

        write_export_card(staging, src, format, check)
        task = "embed" if format == "sentence-transformers" else src.task
        meta = {
            "format_version": FORMAT_VERSION,
            "format": format,
            "task": task,
            "source": GENERAL_ID if installed else str(Path(run).resolve()),
            "check": check,
        }
        (staging / "domainlm_export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, format, task, sorted(p.name for p in out.iterdir()), check)


# ----------------------------------------------------------------------------------------------------
# formats


def _export_method(src: Source, format: str, out: Path) -> ExportResult:
    """A classifier saved by a non-transformers method (TF-IDF, fastText, embeddings + LR): its safe
    files (skops, safetensors, fastText .bin) copied with the model card; only ``hf`` applies."""
    if format != "hf":
        raise UserError(
            f"'{src.path}' is a {src.method['kind']} classifier (not a transformers model): "
            f"--format {format} does not apply",
            "Export it with --format hf (its safe files and card), or serve it with `domainlm serve`",
        )
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src.model_dir, staging)
    meta = {"format_version": FORMAT_VERSION, "format": format, "task": "classify", "check": {}}
    (staging / "domainlm_export.json").write_text(json.dumps({**meta, "source": src.name}, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return ExportResult(out, format, "classify", sorted(p.name for p in out.iterdir()), {})


def _export_hf(src: Source, out: Path) -> None:
    model = load_torch(src)
    model.save_pretrained(str(out), safe_serialization=True)
    load_tok(src).save_pretrained(str(out))


def _export_st(src: Source, out: Path) -> None:
    """Transformer (the encoder of any head) + mean pooling, saved in sentence-transformers' layout."""
    import transformers
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    if src.task == "generate":
        raise UserError(
            "sentence-transformers export needs an encoder (BERT-like) model",
            "Export a masked-LM, classifier or encoder run",
        )
    with tempfile.TemporaryDirectory() as tmp:
        # the encoder alone, so AutoModel loads it without "unused weights" of the head
        enc = load_torch(src).base_model
        enc.save_pretrained(tmp, safe_serialization=True)
        tok = load_tok(src)
        tok.save_pretrained(tmp)
        max_len = min(int(tok.model_max_length or 512), int(enc.config.max_position_embeddings or 512))
        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # a masked LM's encoder has no pooler: unused by mean pooling
        try:
            word = Transformer(tmp, max_seq_length=max_len)
        finally:
            transformers.logging.set_verbosity(level)
        pool = Pooling(enc.config.hidden_size, pooling_mode="mean")
        SentenceTransformer(modules=[word, pool], device="cpu").save(str(out))


class _OnnxWrapper:
    """Builds a torch module whose forward(input_ids, attention_mask) returns the task's ONNX outputs."""

    @staticmethod
    def build(model, task: str):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):  # (B, T) int64 each
                if task == "embed":
                    return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                if task == "generate":
                    return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
                o = self.m(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
                return o.logits, o.hidden_states[-1]

        return Wrapper(model).eval()


def onnx_session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimisations."""
    import onnxruntime as ort

    from domainlm import machine

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or machine.cores()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def to_onnx(model, task: str, path: Path, opset: int = 17) -> None:
    """Export ``model`` (a transformers model of ``task``) to ``path`` with dynamic batch/sequence axes."""
    import warnings

    import torch

    wrapper = _OnnxWrapper.build(model, task)
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    names = ONNX_OUTPUTS[task]
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    for n in names:
        axes[n] = {0: "batch"} if task == "classify" and n == "logits" else {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python bools in transformers' masking code
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=names,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


# int8 recipes, tried in order until one keeps the metric within the tolerance
INT8_RECIPES: dict[str, str] = {
    "dynamic": "dynamic int8, per-channel weights, every MatMul and the embedding lookups",
    "dynamic-keep-ends": "dynamic int8, per-channel weights, transformer MatMuls only: embeddings and "
    "the output projection stay fp32",
}


def _output_matmuls(model_path: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes nearest each graph output (the LM head or the classifier)."""
    import onnx

    g = onnx.load(str(model_path), load_external_data=False).graph
    producer = {o: n for n in g.node for o in n.output}
    found, seen, todo = [], set(), [o.name for o in g.output]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in ("MatMul", "Gemm"):
            found.append(node.name)
        else:
            todo += list(node.input)
    return found


def quantize_int8(src_path: Path, dst_path: Path, recipe: str = "dynamic") -> None:
    """onnxruntime dynamic quantisation (``INT8_RECIPES``): weights to int8, activations at run time."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its "consider pre-processing" notice is noise here
    kw: dict = {}
    if recipe == "dynamic-keep-ends":
        kw = {"op_types_to_quantize": ["MatMul"], "nodes_to_exclude": _output_matmuls(src_path)}
    quantize_dynamic(str(src_path), str(dst_path), weight_type=QuantType.QInt8, per_channel=True, **kw)


def _export_onnx(
    src: Source, out: Path, int8: bool, eval_file, max_eval: int, seq_len: int, tolerance: float = 1.0
) -> dict:
    model = load_torch(src, attention="eager")
    if src.task == "generate":
        model.config.use_cache = False
    tok = load_tok(src)
    model.config.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        to_onnx(model, src.task, fp32)
        if not int8:
            shutil.move(str(fp32), out / "model.onnx")
            return verify(model, onnx_session(out / "model.onnx"), src, tok, eval_file, max_eval, seq_len)
        tried = []
        for recipe in INT8_RECIPES:
            quantize_int8(fp32, out / "model.onnx", recipe)
            check = verify(model, onnx_session(out / "model.onnx"), src, tok, eval_file, max_eval, seq_len)
            tried.append(
                {"recipe": recipe, "metric_drop": check["metric_drop"], "agreement": check["agreement"]}
            )
            if check["metric_drop"] <= tolerance:
                break
    return {**check, "recipe": recipe, "recipe_text": INT8_RECIPES[recipe], "recipes_tried": tried}


# ----------------------------------------------------------------------------------------------------
# verification on held-out data


def read_eval_file(path: str | Path, text_field: str = "text", label_field: str = "label") -> list[dict]:
    """Rows with ``text`` (and maybe ``label``) from a JSONL or CSV file, read from the given fields."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise UserError(f"eval file '{p}' does not exist", "Pass a JSONL or CSV file with a 'text' field")
    rows = []
    if p.suffix.lower() == ".csv":
        with p.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise UserError(f"{p}:{i + 1} is not JSON", "One JSON object per line") from None
    rows = [
        {"text": r[text_field], **({"label": r[label_field]} if label_field in r else {})}
        for r in rows
        if isinstance(r, dict) and isinstance(r.get(text_field), str) and r[text_field].strip()
    ]
    if not rows:
        raise UserError(f"eval file '{p}' has no rows with a 'text' field", 'Add rows like {"text": ...}')
    return rows


def heldout_texts(src: Source, eval_file, n: int) -> tuple[list[dict], str]:
    """Held-out rows and where they came from: --eval-file, the run's validation split, or built-ins."""
    if eval_file:
        return read_eval_file(eval_file)[:n], str(eval_file)
    report = _finetune_report(src)
    if report:
        cfg = report.get("config") or {}
        data = Path(report["data"])
        if data.suffix.lower() in (".jsonl", ".csv") and data.is_file() and not cfg.get("multi_label"):
            rows = read_eval_file(data, cfg.get("text_field", "text"), cfg.get("label_field", "label"))
            # the fine-tuning data, training documents included: the torch-vs-ONNX drop is what counts here
            return rows[:n], f"{data} (the fine-tuning data; pass --eval-file for held-out data)"
    corpus = src.config.get("corpus") if src.config else None
    if corpus and (Path(corpus) / "documents.jsonl").is_file():
        from domainlm.corpus.documents import read_documents

        rows = []
        for split in ("validation", "test", "train"):
            rows = [d for _, d in zip(range(n), read_documents(corpus, split), strict=False)]
            if rows:
                return rows, f"{corpus} ({split} split)"
    return [{"text": t} for t in FALLBACK_TEXTS][:n], "built-in sample sentences (no held-out data found)"


def _finetune_report(src: Source) -> dict:
    """``metrics.json`` of a `domainlm finetune` output folder, or {}."""
    if src.run_dir is None or not (src.run_dir / "metrics.json").is_file():
        return {}
    try:
        report = json.loads((src.run_dir / "metrics.json").read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return report if isinstance(report, dict) and "data" in report else {}


def _label_ids(rows: list[dict], label2id: dict[str, int]) -> list[int] | None:
    if not rows or any("label" not in r for r in rows):
        return None
    out = []
    for r in rows:
        lab = r["label"]
        # names as `domainlm finetune` makes them: str(value), so JSON true -> "True"; case-insensitive
        # fallback for files written by other tools ("true", "TRUE")
        folded = {k.lower(): v for k, v in label2id.items()}
        if isinstance(lab, int) and not isinstance(lab, bool) and str(lab) not in label2id:
            out.append(lab)
        elif isinstance(lab, str) and lab.isdigit() and lab not in label2id:
            out.append(int(lab))
        elif str(lab) in label2id:
            out.append(label2id[str(lab)])
        elif str(lab).lower() in folded:
            out.append(folded[str(lab).lower()])
        else:
            raise UserError(
                f"label '{lab}' is not one of the model's labels {sorted(label2id)}",
                "Use the label names of the fine-tuned model",
            )
    return out


def _run_both(model, sess, enc: dict, task: str):
    """(torch outputs, onnx outputs, torch seconds, onnx seconds) for one batch of input_ids/attention_mask."""
    import time

    import torch

    feeds = {k: enc[k].numpy() for k in ("input_ids", "attention_mask")}
    t0 = time.perf_counter()
    o = sess.run(ONNX_OUTPUTS[task], feeds)
    t1 = time.perf_counter()
    with torch.no_grad():
        t = _OnnxWrapper.build(model, task)(enc["input_ids"], enc["attention_mask"])
    t2 = time.perf_counter()
    t = [x.float().numpy() for x in (t if isinstance(t, tuple) else (t,))]
    return t, o, t2 - t1, t1 - t0


def windows(tok, texts: list[str], max_len: int, limit: int) -> tuple[list[list[int]], list[int]]:
    """Model-length windows of ``texts`` (each with the model's special tokens) and the text each came
    from, taken round-robin (every text's first window, then every second one, ...) up to ``limit``."""
    enc = tok(texts, truncation=True, max_length=max_len, return_overflowing_tokens=True)
    per_text: list[list[list[int]]] = [[] for _ in texts]
    for ids, i in zip(enc["input_ids"], enc["overflow_to_sample_mapping"], strict=True):
        per_text[i].append(list(ids))
    out, owner = [], []
    for level in range(max((len(w) for w in per_text), default=0)):
        for i, ws in enumerate(per_text):
            if level < len(ws) and len(out) < limit:
                out.append(ws[level])
                owner.append(i)
    return out, owner


def _interval(hits: list[float]) -> dict:
    """Mean (in points) of 0/1 (or -1/0/1) outcomes with a normal-approximation 95% interval."""
    import math

    n = len(hits)
    if n == 0:
        return {"mean": 0.0, "ci95": 0.0}
    mean = sum(hits) / n
    var = sum((h - mean) ** 2 for h in hits) / max(1, n - 1)
    return {"mean": 100.0 * mean, "ci95": 100.0 * 1.96 * math.sqrt(var / n)}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n, in points."""
    import math

    if n == 0:
        return 0.0, 100.0
    p = k / n
    mid, half = (p + z * z / (2 * n)), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100.0 * (mid - half) / (1 + z * z / n), 100.0 * (mid + half) / (1 + z * z / n)


def _score_batch(task: str, t_out, o_out, enc: dict, pick, target, y) -> tuple[list, list, list, float]:
    """Per-item (torch hit, onnx hit, top-1 agreement) lists and the max |logit difference| of a batch."""
    import numpy as np

    mask = enc["attention_mask"].numpy().astype(bool)
    if task == "classify":
        tp, op = t_out[0].argmax(-1), o_out[0].argmax(-1)
        diff = float(np.abs(t_out[0] - o_out[0]).max())
        t_hit = (tp == y) if y is not None else np.ones(len(tp), bool)
        o_hit = (op == y) if y is not None else (tp == op)
        return t_hit.tolist(), o_hit.tolist(), (tp == op).tolist(), diff
    if task == "fill-mask":
        sel = pick.numpy()
        if not sel.any():
            return [], [], [], 0.0
        tl, ol, tgt = t_out[0][sel], o_out[0][sel], target.numpy()
        tp, op = tl.argmax(-1), ol.argmax(-1)
        return (tp == tgt).tolist(), (op == tgt).tolist(), (tp == op).tolist(), float(np.abs(tl - ol).max())
    if task == "generate":
        valid = mask[:, 1:]
        nxt = enc["input_ids"].numpy()[:, 1:]
        tp, op = t_out[0][:, :-1].argmax(-1)[valid], o_out[0][:, :-1].argmax(-1)[valid]
        diff = float(np.abs(t_out[0][mask] - o_out[0][mask]).max())
        return (tp == nxt[valid]).tolist(), (op == nxt[valid]).tolist(), (tp == op).tolist(), diff
    te, oe = mean_pool(t_out[0], mask), mean_pool(o_out[0], mask)
    c = (te * oe).sum(-1) / (np.linalg.norm(te, axis=-1) * np.linalg.norm(oe, axis=-1) + 1e-12)
    diff = float(np.abs(t_out[0][mask] - o_out[0][mask]).max())
    return [1.0] * len(c), c.tolist(), (c >= 0.99).tolist(), diff


def verify(model, sess, src: Source, tok, eval_file, max_eval: int, seq_len: int, batch: int = 16) -> dict:
    """Compare torch and ONNX on held-out data cut into windows (up to ``max_eval``, round-robin over
    the texts): top-1 agreement, max |logit difference|, the task metric of each with the 95% interval
    of the paired drop, and each side's milliseconds per window.

    classify: window accuracy against the text's label if the data has labels, else the label agreement
    with torch (a drop of d points in agreement bounds the accuracy drop by d). fill-mask: accuracy on
    15% masked tokens (fixed seed). generate: next-token accuracy. embed: 100 x mean cosine to torch
    embeddings (agreement: windows with cosine >= 0.99).
    """
    import numpy as np
    import torch

    rows, origin = heldout_texts(src, eval_file, max_eval)
    max_len = min(seq_len, int(tok.model_max_length or seq_len))
    wins, owner = windows(tok, [r["text"] for r in rows], max_len, max_eval)
    gen = torch.Generator().manual_seed(1234)
    labels = (
        _label_ids(rows, {str(k): int(v) for k, v in (model.config.label2id or {}).items()})
        if src.task == "classify"
        else None
    )
    t_hits, o_hits, agree, max_diff, t_sec, o_sec = [], [], [], 0.0, 0.0, 0.0
    for start in range(0, len(wins), batch):
        enc = tok.pad({"input_ids": wins[start : start + batch]}, return_tensors="pt")
        enc = {k: enc[k] for k in ("input_ids", "attention_mask")}
        pick = target = None
        if src.task == "fill-mask":
            ids = enc["input_ids"].clone()
            special = torch.tensor(_special_mask(tok, ids), dtype=torch.bool)
            pick = (torch.rand(ids.shape, generator=gen) < 0.15) & ~special & enc["attention_mask"].bool()
            target = ids[pick]
            ids[pick] = tok.mask_token_id
            enc["input_ids"] = ids
        t_out, o_out, ts, os_ = _run_both(model, sess, enc, src.task)
        t_sec, o_sec = t_sec + ts, o_sec + os_
        y = np.asarray([labels[i] for i in owner[start : start + batch]]) if labels is not None else None
        th, oh, ag, diff = _score_batch(src.task, t_out, o_out, enc, pick, target, y)
        t_hits, o_hits, agree, max_diff = t_hits + th, o_hits + oh, agree + ag, max(max_diff, diff)
    metric = {
        "classify": "accuracy" if labels is not None else "agreement with torch",
        "fill-mask": "masked-token accuracy",
        "generate": "next-token accuracy",
        "embed": "100 x cosine to torch",
    }[src.task]
    t_score, o_score = _interval(t_hits)["mean"], _interval(o_hits)["mean"]
    drop = _interval([float(a) - float(b) for a, b in zip(t_hits, o_hits, strict=True)])
    low, high = wilson(int(sum(agree)), len(agree))
    return {
        "metric": metric,
        "torch": t_score,
        "onnx": o_score,
        "metric_drop": t_score - o_score,
        "metric_drop_ci95": drop["ci95"],
        "agreement": 100.0 * sum(agree) / max(1, len(agree)),
        "agreement_ci95": [round(low, 2), round(high, 2)],
        "max_abs_diff": max_diff,
        "examples": len(rows),
        "windows": len(wins),
        "counted": len(agree),
        "torch_ms_per_window": 1000.0 * t_sec / max(1, len(wins)),
        "onnx_ms_per_window": 1000.0 * o_sec / max(1, len(wins)),
        "data": origin,
    }


def _special_mask(tok, ids) -> list[list[bool]]:
    special = set(tok.all_special_ids)
    return [[int(i) in special for i in row] for row in ids.tolist()]


def mean_pool(hidden, mask):
    """(B, T, H) hidden states, (B, T) mask -> (B, H) mean over real tokens (numpy)."""
    m = mask[..., None].astype(hidden.dtype)
    return (hidden * m).sum(1) / (m.sum(1) + 1e-9)
