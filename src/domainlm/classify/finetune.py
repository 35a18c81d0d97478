"""finetune: turn a pretrained model into a text classifier, with classical baselines in the same table.

    domainlm finetune RUN_OR_MODEL DATA --text-field text --label-field label [--multi-label]
                      --mode head|full --folds 5 --search 20 --budget 10m -o OUT

DATA is CSV, JSONL or Parquet. RUN_OR_MODEL is a run folder (its ``model/`` is used) or any local
Hugging Face model folder. Documents longer than one window are cut into overlapping windows of
``max_length`` tokens; every window is a training example with its document's label, and a document's
prediction is the mean of its windows' logits. Splits are by document (exact duplicate texts stay in
one fold), stratified, fixed by the seed. Early stopping keeps the epoch with the best validation
macro-F1. ``--mode head`` freezes the body: the body's [CLS] states are computed once and only the head
(BERT: pooler + classifier) is trained on them, which is exact and much cheaper.

OUT gets ``model/`` (HF folder with id2label/label2id, loads in ``pipeline("text-classification")``),
``metrics.json`` (per fold, mean and std; TF-IDF + LR and TF-IDF + linear SVM on the same splits),
``confusion.png`` and ``errors.jsonl`` (out-of-fold predictions: every document is predicted by a model
that did not train on it) and, with ``--search``, ``best_config.json``. With ``--folds K`` the saved
model is fold 1's.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainlm import config as cfgmod
from domainlm.config import FinetuneConfig, parse_duration
from domainlm.errors import UserError

READERS = ("csv", "jsonl", "parquet")
# families whose head reads the [CLS] state only: head-only training runs on cached [CLS] states
CLS_HEADS = {"bert", "roberta", "xlm-roberta", "electra", "camembert"}
DEFAULT_LR = {"full": 5e-5, "head": 2e-3}
METRIC_KEYS = ("accuracy", "macro_f1", "micro_f1")


@dataclass
class Dataset:
    texts: list[str]
    labels: list[list[str]]  # one label per document unless multi-label
    label_names: list[str]
    path: Path
    multi: bool = False

    def targets(self):
        """(N,) class indices, or (N, C) 0/1 matrix for multi-label."""
        import numpy as np

        index = {n: i for i, n in enumerate(self.label_names)}
        if self.multi:
            y = np.zeros((len(self.labels), len(self.label_names)), dtype=np.float32)
            for r, labs in enumerate(self.labels):
                for lab in labs:
                    y[r, index[lab]] = 1
            return y
        return np.array([index[lab[0]] for lab in self.labels], dtype=np.int64)


@dataclass
class FinetuneResult:
    output: Path
    model_dir: Path
    table: list[dict]  # one row per method: name, metric means/stds, seconds
    folds: int
    config: dict
    best_config: dict | None = None
    per_fold: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# data


def _rows(path: Path):
    """(row number, dict or None if malformed) for each data row; row numbers as a user counts them."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                yield i, row if isinstance(row, dict) else None
    elif suffix in ("csv", "tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == "tsv" else ",")
            for i, row in enumerate(reader, 2):  # line 1 is the header
                yield i, None if None in row or None in row.values() else row
    elif suffix == "parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist(), 1):
            yield i, row
    else:
        raise UserError(f"'{path}' has an unsupported extension", f"Use one of: {', '.join(READERS)}")


def load_dataset(path: str | Path, cfg: FinetuneConfig) -> Dataset:
    """Read texts and labels; any bad row is a UserError naming the file, the row and the fix."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data file '{p}' does not exist", "Pass a CSV, JSONL or Parquet file")
    texts, labels = [], []
    allowed = set(cfg.labels) if cfg.labels else None
    for i, row in _rows(p):
        if row is None:
            raise UserError(
                f"{p}, row {i}: malformed row (not a JSON object / wrong number of columns)",
                "Fix or remove that row",
            )
        text = row.get(cfg.text_field)
        if not isinstance(text, str) or not text.strip():
            fields = ", ".join(map(str, row))
            raise UserError(
                f"{p}, row {i}: no text in field '{cfg.text_field}'",
                f"Fill it or remove the row; or name the text field with --text-field (this row has: {fields})",
            )
        raw = row.get(cfg.label_field)
        if raw is None or raw == "" or raw == []:
            raise UserError(
                f"{p}, row {i}: no label in field '{cfg.label_field}'",
                "Give every row a label, or name the label field with --label-field",
            )
        if cfg.multi_label:
            labs = (
                [str(x).strip() for x in raw]
                if isinstance(raw, list)
                else [s.strip() for s in str(raw).split(cfg.label_sep)]
            )
            labs = sorted({x for x in labs if x})
        else:
            if isinstance(raw, list):
                raise UserError(
                    f"{p}, row {i}: the label is a list", "Pass --multi-label for several labels per row"
                )
            labs = [str(raw).strip()]
        if allowed is not None:
            unknown = [x for x in labs if x not in allowed]
            if unknown:
                raise UserError(
                    f"{p}, row {i}: unknown label '{unknown[0]}'",
                    f"Use one of: {', '.join(sorted(allowed))}, or add it to --labels",
                )
        texts.append(text)
        labels.append(labs)
    if not texts:
        raise UserError(f"data file '{p}' has no rows", "Add rows with a text and a label")
    names = list(cfg.labels) if cfg.labels else sorted({x for labs in labels for x in labs})
    if len(names) < 2:
        raise UserError(
            f"{p}: only one label ('{names[0]}') in the data", "A classifier needs at least two labels"
        )
    return Dataset(texts, labels, names, p, cfg.multi_label)


def document_groups(texts: list[str]) -> list[str]:
    """Identical texts (after collapsing whitespace and case) share a group, so they share a fold."""
    return [hashlib.sha1(" ".join(t.lower().split()).encode()).hexdigest() for t in texts]


def make_splits(ds: Dataset, cfg: FinetuneConfig) -> list[tuple[list[int], list[int], list[int]]]:
    """(train, validation, test) document indices per fold: stratified, grouped, seeded."""
    import numpy as np
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    y = ds.targets()
    groups = np.array(document_groups(ds.texts))
    strat = y if y.ndim == 1 else y.argmax(1)  # multi-label: stratify on the first label (approximate)
    counts = np.bincount(strat, minlength=len(ds.label_names))
    k = cfg.folds if cfg.folds > 1 else max(2, round(1 / cfg.test_fraction))
    rare = [ds.label_names[c] for c in range(len(counts)) if 0 < counts[c] < k]
    if rare and y.ndim == 1:
        raise UserError(
            f"{ds.path}: label '{rare[0]}' has {counts[ds.label_names.index(rare[0])]} documents, "
            f"fewer than the {k} splits",
            "Merge rare labels, add documents or lower --folds",
        )

    def splitter(n):
        if y.ndim == 1:
            return StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=cfg.seed)
        return GroupKFold(n_splits=n)

    idx = np.arange(len(ds.texts))
    folds = []
    outer = list(splitter(k).split(idx, strat, groups))
    for train_val, test in outer[: cfg.folds if cfg.folds > 1 else 1]:
        n_inner = max(2, round(1 / cfg.val_fraction))
        try:
            inner_tr, inner_va = next(splitter(n_inner).split(train_val, strat[train_val], groups[train_val]))
        except ValueError:  # too few groups for the inner split: fall back to a plain grouped split
            inner_tr, inner_va = next(GroupKFold(n_splits=2).split(train_val, groups=groups[train_val]))
        folds.append((train_val[inner_tr].tolist(), train_val[inner_va].tolist(), test.tolist()))
    return folds


# ----------------------------------------------------------------------------------------------------
# model


def resolve_model_dir(model: str | Path) -> Path:
    """A run folder -> its model/; a HF model folder -> itself."""
    p = Path(model)
    if (p / "model" / "config.json").is_file():
        return p / "model"
    if (p / "config.json").is_file():
        return p
    raise UserError(
        f"'{p}' is neither a run folder nor a Hugging Face model folder (no config.json)",
        "Pass a folder made by `domainlm pretrain`, or one saved with save_pretrained",
    )


@dataclass
class Windows:
    """Token windows of documents: ``ids[w]`` belongs to document ``doc[w]``."""

    ids: list[list[int]]
    doc: list[int]


def make_windows(tok, texts: list[str], cfg: FinetuneConfig, max_positions: int) -> Windows:
    max_len = min(cfg.max_length, max_positions)
    enc = tok(
        texts,
        truncation=True,
        max_length=max_len,
        stride=min(cfg.stride, max_len // 2),
        return_overflowing_tokens=True,
    )
    ids, doc, per_doc = [], [], {}
    for row, d in zip(enc["input_ids"], enc["overflow_to_sample_mapping"], strict=True):
        if per_doc.get(d, 0) < cfg.max_windows:
            per_doc[d] = per_doc.get(d, 0) + 1
            ids.append(row)
            doc.append(int(d))
    return Windows(ids, doc)


def _pad(rows: list[list[int]], pad_id: int):
    import torch

    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask  # (B, L) each


def _autocast(bf16: bool):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _head_params(model) -> list[str]:
    """Names of the head's parameters: everything outside the body, plus BERT's pooler."""
    prefix = model.base_model_prefix + "."
    return [n for n, _ in model.named_parameters() if not n.startswith(prefix) or ".pooler." in n]


def _head_logits(model, cls_states):
    """Logits from cached [CLS] states (N, H) -> (N, C), the same computation as the model's head."""
    family = model.config.model_type
    h = cls_states.unsqueeze(1)  # (N, 1, H): the heads read position 0
    if family == "bert":
        pooled = model.bert.pooler(h) if model.bert.pooler is not None else cls_states
        return model.classifier(model.dropout(pooled))
    return model.classifier(h)


class Classifier:
    """One fine-tuning run: a fresh model from ``model_dir`` trained on given documents' windows."""

    def __init__(self, model_dir: Path, ds: Dataset, cfg: FinetuneConfig, bf16: bool):
        from domainlm.tokens.tokenizer import load_tokenizer

        self.model_dir, self.ds, self.cfg, self.bf16 = model_dir, ds, cfg, bf16
        self.tok = load_tokenizer(model_dir)
        self.multi = ds.multi
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        self.model = None

    def build(self, seed: int):
        import torch
        from transformers import AutoModelForSequenceClassification

        names = self.ds.label_names
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(self.model_dir),
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            local_files_only=True,
            problem_type="multi_label_classification" if self.multi else "single_label_classification",
        )
        if self.cfg.mode == "head":
            head = set(_head_params(model))
            for n, p in model.named_parameters():
                p.requires_grad = n in head
        self.model = model
        return model

    # -- loss ------------------------------------------------------------------------------------------
    def loss_fn(self, y_train):
        import numpy as np
        import torch
        import torch.nn.functional as F

        C = len(self.ds.label_names)
        if self.multi:
            pos = y_train.sum(0)
            pw = (
                np.clip((len(y_train) - pos) / np.maximum(pos, 1), 1, 100)
                if self.cfg.class_weights
                else np.ones(C)
            )
            pos_weight = torch.tensor(pw, dtype=torch.float32)
            return lambda logits, y: F.binary_cross_entropy_with_logits(
                logits.float(), y, pos_weight=pos_weight
            )
        weight = None
        if self.cfg.class_weights:
            counts = np.bincount(y_train, minlength=C).astype(np.float64)
            # sklearn's "balanced": n / (C * count); absent classes get weight 0
            w = np.where(counts > 0, len(y_train) / (C * np.maximum(counts, 1)), 0.0)
            weight = torch.tensor(w, dtype=torch.float32)
        return lambda logits, y: F.cross_entropy(logits.float(), y, weight=weight)

    # -- forward passes --------------------------------------------------------------------------------
    def cls_states(self, windows: Windows, batch_size: int = 64):
        """(W, H) [CLS] states of the (frozen) body for every window, longest first to limit padding."""
        import torch

        body = getattr(self.model, self.model.base_model_prefix)
        order = sorted(range(len(windows.ids)), key=lambda i: -len(windows.ids[i]))
        out = [None] * len(order)
        body.eval()
        with torch.no_grad(), _autocast(self.bf16):
            for s in range(0, len(order), batch_size):
                chunk = order[s : s + batch_size]
                ids, mask = _pad([windows.ids[i] for i in chunk], self.pad_id)
                h = body(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0].float()  # (B, H)
                for j, i in enumerate(chunk):
                    out[i] = h[j]
        return torch.stack(out)

    def window_logits(self, windows: Windows, idx: list[int], cache=None, batch_size: int = 64):
        """(len(idx), C) logits of the windows ``idx``; from cached [CLS] states in head mode."""
        import torch

        self.model.eval()
        with torch.no_grad(), _autocast(self.bf16):
            if cache is not None:
                return _head_logits(self.model, cache[idx]).float()
            order = sorted(range(len(idx)), key=lambda i: -len(windows.ids[idx[i]]))
            out = torch.zeros(len(idx), len(self.ds.label_names))
            for s in range(0, len(order), batch_size):
                chunk = order[s : s + batch_size]
                ids, mask = _pad([windows.ids[idx[i]] for i in chunk], self.pad_id)
                out[chunk] = self.model(input_ids=ids, attention_mask=mask).logits.float()
            return out

    def doc_logits(self, windows: Windows, docs: list[int], cache=None):
        """(len(docs), C) document logits: the mean of each document's windows' logits."""
        import torch

        where: dict[int, list[int]] = {}
        for w, d in enumerate(windows.doc):
            where.setdefault(d, []).append(w)
        idx = [w for d in docs for w in where[d]]
        logits = self.window_logits(windows, idx, cache)
        out, k = [], 0
        for d in docs:
            n = len(where[d])
            out.append(logits[k : k + n].mean(0))
            k += n
        return torch.stack(out)

    # -- training --------------------------------------------------------------------------------------
    def train(
        self,
        windows: Windows,
        train_docs: list[int],
        val_docs: list[int],
        y,
        hp: dict,
        seed: int,
        cache=None,
        deadline: float | None = None,
    ) -> dict:
        """Train with early stopping on validation macro-F1; the best epoch's weights are kept."""
        import numpy as np
        import torch

        model = self.build(seed)
        train_set = set(train_docs)
        train_w = [w for w, d in enumerate(windows.doc) if d in train_set]
        y_t = torch.tensor(y)
        loss_fn = self.loss_fn(y[train_docs])
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": hp["weight_decay"]},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=hp["lr"],
        )
        bs = int(hp["batch_size"])
        steps_per_epoch = math.ceil(len(train_w) / bs)
        total = steps_per_epoch * int(hp["epochs"])
        warm = int(hp["warmup"] * total)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)),
        )
        rng = np.random.default_rng(seed)
        best, best_state, bad, history = -1.0, None, 0, []
        for epoch in range(int(hp["epochs"])):
            model.train()
            if cache is not None:
                getattr(model, model.base_model_prefix).eval()  # frozen body: no dropout either
            perm = rng.permutation(len(train_w))
            for s in range(0, len(perm), bs):
                batch = [train_w[i] for i in perm[s : s + bs]]
                target = y_t[[windows.doc[w] for w in batch]]
                with _autocast(self.bf16):
                    if cache is not None:
                        logits = _head_logits(model, cache[batch])
                    else:
                        ids, mask = _pad([windows.ids[w] for w in batch], self.pad_id)
                        logits = model(input_ids=ids, attention_mask=mask).logits
                loss = loss_fn(logits, target)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            f1 = self.score(windows, val_docs, y, cache)["macro_f1"]
            history.append({"epoch": epoch + 1, "val_macro_f1": f1, "loss": loss.item()})
            if f1 > best:
                best, bad = f1, 0
                best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            else:
                bad += 1
                if bad >= self.cfg.patience:
                    break
            if deadline is not None and time.perf_counter() > deadline:
                break
        with torch.no_grad():
            for n, p in model.named_parameters():
                if best_state is not None and n in best_state:
                    p.copy_(best_state[n])
        return {"best_val_macro_f1": best, "epochs_run": len(history), "history": history}

    def probabilities(self, windows: Windows, docs: list[int], cache=None):
        logits = self.doc_logits(windows, docs, cache)
        return (logits.sigmoid() if self.multi else logits.softmax(-1)).numpy()

    def score(self, windows: Windows, docs: list[int], y, cache=None) -> dict:
        probs = self.probabilities(windows, docs, cache)
        return classification_metrics(y[docs], predict(probs, self.multi), self.ds.label_names)


def predict(probs, multi: bool):
    return (probs > 0.5).astype(int) if multi else probs.argmax(1)


def classification_metrics(y_true, y_pred, names: list[str]) -> dict:
    """Accuracy (subset accuracy for multi-label), macro/micro-F1 and per-class P/R/F1 (scikit-learn)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    labels = list(range(len(names)))
    kw = {} if getattr(y_true, "ndim", 1) == 2 else {"labels": labels}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0, **kw)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0, **kw)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0, **kw)),
        "per_class": {
            n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, n in enumerate(names)
        },
    }


# ----------------------------------------------------------------------------------------------------
# baselines

BASELINES = {"tfidf+lr": "LogisticRegression", "tfidf+svm": "LinearSVC"}


def run_baseline(name: str, ds: Dataset, train_docs: list[int], test_docs: list[int], y, seed: int):
    """TF-IDF (word 1-2-grams, sublinear tf) + a linear model with balanced class weights; (metrics, s)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    t0 = time.perf_counter()
    clf = (
        LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
        if name == "tfidf+lr"
        else LinearSVC(class_weight="balanced", random_state=seed)
    )
    if ds.multi:
        clf = OneVsRestClassifier(clf)
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1), clf)
    pipe.fit([ds.texts[i] for i in train_docs], y[train_docs])
    pred = pipe.predict([ds.texts[i] for i in test_docs])
    return classification_metrics(y[test_docs], pred, ds.label_names), time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------
# search, reports, the command


def hyperparameters(cfg: FinetuneConfig) -> dict:
    return {
        "lr": cfg.lr or DEFAULT_LR[cfg.mode],
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "weight_decay": cfg.weight_decay,
        "warmup": cfg.warmup,
    }


def search(clf: Classifier, windows: Windows, split, y, cfg: FinetuneConfig, cache, seed: int) -> dict:
    """Optuna TPE over lr, epochs, batch size, weight decay and warm-up, maximising the validation
    macro-F1 of the first split, stopped by ``cfg.search`` trials or the ``cfg.budget`` wall clock."""
    try:
        import optuna
    except ImportError:
        raise UserError("--search needs optuna", "Install it: pip install 'domainlm[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget_s = parse_duration(cfg.budget)
    deadline = time.perf_counter() + budget_s
    train_docs, val_docs, _ = split
    lo, hi = (1e-5, 2e-4) if cfg.mode == "full" else (1e-4, 1e-2)

    def objective(trial):
        hp = {
            "lr": trial.suggest_float("lr", lo, hi, log=True),
            "epochs": trial.suggest_int("epochs", 1, 8),
            "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
            "warmup": trial.suggest_float("warmup", 0.0, 0.2),
        }
        return clf.train(windows, train_docs, val_docs, y, hp, seed, cache, deadline)["best_val_macro_f1"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(hyperparameters(cfg))  # the defaults are the first trial: search can only improve
    study.optimize(objective, n_trials=cfg.search, timeout=budget_s)
    return {**study.best_params, "val_macro_f1": study.best_value, "trials": len(study.trials)}


def summarize(per_fold: list[dict]) -> dict:
    import numpy as np

    out = {}
    for k in METRIC_KEYS:
        v = np.array([m[k] for m in per_fold])
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def plot_confusion(y_true, y_pred, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.45 * len(names) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(range(len(names))),
        display_labels=names,
        ax=ax,
        xticks_rotation=90,
        colorbar=False,
    )
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confident_errors(ds: Dataset, docs: list[int], probs, y, top: int) -> list[dict]:
    """The ``top`` most confident wrong predictions: text, gold, predicted, probability."""
    names = ds.label_names
    rows = []
    for r, d in enumerate(docs):
        if ds.multi:
            pred = [names[c] for c in range(len(names)) if probs[r, c] > 0.5]
            gold = [names[c] for c in range(len(names)) if y[d, c] > 0]
            if pred == gold:
                continue
            wrong = [c for c in range(len(names)) if (probs[r, c] > 0.5) != (y[d, c] > 0)]
            conf = max(abs(probs[r, c] - 0.5) * 2 for c in wrong)
            rows.append(
                {"row": d, "text": ds.texts[d], "gold": gold, "predicted": pred, "probability": float(conf)}
            )
        elif int(probs[r].argmax()) != int(y[d]):
            c = int(probs[r].argmax())
            rows.append(
                {
                    "row": d,
                    "text": ds.texts[d],
                    "gold": names[int(y[d])],
                    "predicted": names[c],
                    "probability": float(probs[r, c]),
                }
            )
    rows.sort(key=lambda e: -e["probability"])
    return rows[:top]


def finetune(
    model: str | Path,
    data: str | Path,
    text_field: str | None = None,
    label_field: str | None = None,
    multi_label: bool | None = None,
    mode: str | None = None,
    folds: int | None = None,
    search_trials: int | None = None,
    budget: str | None = None,
    output: str | Path | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    save_model: bool = True,
    reporter=None,
) -> FinetuneResult:
    """Fine-tune ``model`` on ``data``; evaluate with k-fold CV beside TF-IDF baselines; save the result."""
    import numpy as np
    import torch

    from domainlm import machine

    cfg = cfgmod.load(
        FinetuneConfig,
        config,
        overrides,
        text_field=text_field,
        label_field=label_field,
        multi_label=multi_label,
        mode=mode,
        folds=folds,
        search=search_trials,
        budget=budget,
    )
    say = reporter.message if reporter is not None else (lambda text: None)
    model_dir = resolve_model_dir(model)
    ds = load_dataset(data, cfg)
    out = (
        Path(output)
        if output
        else (model_dir.parent if model_dir.name == "model" else Path(data).parent) / "classifier"
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(machine.cores())
    bf16 = machine.resolve_bf16("auto")
    y = ds.targets()
    splits = make_splits(ds, cfg)
    clf = Classifier(model_dir, ds, cfg, bf16)
    probe = clf.build(cfg.seed)
    max_pos = getattr(probe.config, "max_position_embeddings", 512) - (
        2 if probe.config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    )
    t0 = time.perf_counter()
    windows = make_windows(clf.tok, ds.texts, cfg, max_pos)
    cache = None
    if cfg.mode == "head" and probe.config.model_type in CLS_HEADS:
        say(f"head-only: computing the frozen body's [CLS] states of {len(windows.ids)} windows once")
        cache = clf.cls_states(windows)
    cache_s = time.perf_counter() - t0
    say(
        f"{len(ds.texts)} documents, {len(windows.ids)} windows, {len(ds.label_names)} labels, "
        f"{len(splits)} fold(s), mode {cfg.mode}, bf16 {bf16}"
    )

    hp = hyperparameters(cfg)
    best_config = None
    if cfg.search:
        say(f"searching hyper-parameters: {cfg.search} trials within {cfg.budget}")
        best_config = search(clf, windows, splits[0], y, cfg, cache, cfg.seed)
        hp = {k: best_config[k] for k in hp}
        (out / "best_config.json").write_text(json.dumps({"format_version": 1, **best_config}, indent=2))

    name = f"{model_dir.parent.name if model_dir.name == 'model' else model_dir.name} ({cfg.mode})"
    per_fold: dict[str, list[dict]] = {name: []}
    seconds: dict[str, float] = {name: cache_s}
    for b in BASELINES if cfg.baselines else ():
        per_fold[b], seconds[b] = [], 0.0
    oof_docs, oof_probs = [], []
    train_logs = []
    for k, (train_docs, val_docs, test_docs) in enumerate(splits):
        t = time.perf_counter()
        log = clf.train(windows, train_docs, val_docs, y, hp, cfg.seed + k, cache)
        probs = clf.probabilities(windows, test_docs, cache)
        metrics = classification_metrics(y[test_docs], predict(probs, ds.multi), ds.label_names)
        seconds[name] += time.perf_counter() - t
        per_fold[name].append(metrics)
        train_logs.append(log)
        oof_docs += test_docs
        oof_probs.append(probs)
        say(
            f"fold {k + 1}/{len(splits)}: macro-F1 {metrics['macro_f1']:.3f} "
            f"({log['epochs_run']} epochs, best validation macro-F1 {log['best_val_macro_f1']:.3f})"
        )
        if k == 0 and save_model:
            _save_classifier(clf, out / "model", cfg)
        for b in BASELINES if cfg.baselines else ():
            m, s = run_baseline(b, ds, train_docs + val_docs, test_docs, y, cfg.seed)
            per_fold[b].append(m)
            seconds[b] += s
    probs = np.concatenate(oof_probs)
    pred = predict(probs, ds.multi)
    if not ds.multi:
        plot_confusion(
            y[oof_docs],
            pred,
            ds.label_names,
            out / "confusion.png",
            f"{name}: out-of-fold predictions ({len(oof_docs)} documents)",
        )
    errors = confident_errors(ds, oof_docs, probs, y, cfg.errors_top)
    with (out / "errors.jsonl").open("w", encoding="utf-8") as f:
        for e in errors:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    table = [
        {"method": m, **summarize(rows), "seconds": round(seconds[m], 2)} for m, rows in per_fold.items()
    ]
    report = {
        "format_version": 1,
        "model": str(model_dir),
        "data": str(ds.path),
        "documents": len(ds.texts),
        "labels": ds.label_names,
        "windows": len(windows.ids),
        "folds": len(splits),
        "bf16": bf16,
        "hyperparameters": hp,
        "config": cfg.model_dump(mode="json"),
        "table": table,
        "per_fold": per_fold,
        "training": train_logs,
        "out_of_fold": classification_metrics(y[oof_docs], pred, ds.label_names),
        "machine": machine.describe(),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    return FinetuneResult(out, out / "model", table, len(splits), report["config"], best_config, per_fold)


def _save_classifier(clf: Classifier, dest: Path, cfg: FinetuneConfig) -> None:
    """HF folder (safetensors + tokenizer) with id2label/label2id: loads in pipeline("text-classification")."""
    import shutil

    tmp = dest.with_name(dest.name + ".staging")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in clf.model.parameters():
        p.requires_grad = True  # frozen flags are not saved, but keep the object honest for reuse
    clf.model.save_pretrained(str(tmp), safe_serialization=True)
    tok = copy.copy(clf.tok)
    tok.model_max_length = min(
        cfg.max_length, getattr(clf.model.config, "max_position_embeddings", cfg.max_length)
    )
    tok.save_pretrained(str(tmp))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def describe_table(table: list[dict[str, Any]]) -> list[list[str]]:
    """Rows for printing: method, accuracy, macro-F1, micro-F1 as mean ± std, seconds."""
    return [
        [r["method"]]
        + [f"{r[k]['mean']:.3f} ± {r[k]['std']:.3f}" for k in METRIC_KEYS]
        + [f"{r['seconds']:.1f}"]
        for r in table
    ]
