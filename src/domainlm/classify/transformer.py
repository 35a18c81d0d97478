"""Fine-tuning a transformers model as a document classifier, as plain functions.

    model = build(model_dir, labels, multi, mode, seed)
    model, log = train(model, windows, train_docs, val_docs, y, hp, ...)
    probs = predict_proba(model, windows, docs, ...)

Documents longer than one window are cut into overlapping windows of ``max_length`` tokens. A document
is one example: its windows' logits are averaged (in training and in prediction), so the whole document
is read, not its first window. ``mode="head"`` freezes the body: its [CLS] states are computed once
(``cls_states``) and only the head (BERT: pooler + classifier) is trained on them, which is exact and
much cheaper. Early stopping keeps the epoch with the best validation macro-F1.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from pathlib import Path

from domainlm.classify.report import classification_metrics, predict

# families whose head reads the [CLS] state only: head-only training runs on cached [CLS] states
# (ModernBERT too, when its config pools the first token: ``caches_cls``)
CLS_HEADS = {"bert", "roberta", "xlm-roberta", "electra", "camembert"}
DEFAULT_LR = {"full": 5e-5, "head": 2e-3}
# clip the gradient norm at 1.0: BERT's fine-tuning recipe (Devlin et al. 2019, google-research/bert
# optimization.py `clip_by_global_norm(grads, clip_norm=1.0)`)
CLIP_NORM = 1.0


@dataclass
class Windows:
    """Token windows of documents: ``ids[w]`` belongs to document ``doc[w]``."""

    ids: list[list[int]]
    doc: list[int]

    def of(self, docs: list[int]) -> list[list[int]]:
        """For each document in ``docs``, the indices of its windows."""
        where: dict[int, list[int]] = {}
        for w, d in enumerate(self.doc):
            where.setdefault(d, []).append(w)
        return [where[d] for d in docs]


def max_positions(model_config) -> int:
    """Usable positions of a model (fairseq-style models lose two to the padding offset)."""
    offset = 2 if model_config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    n = getattr(model_config, "max_position_embeddings", 512)
    # no position limit: 0 for a recurrent net, -1 for XLNet (its config's property says so)
    return (n if n and n > 0 else 1 << 30) - offset


def make_windows(tok, texts: list[str], cfg, max_positions: int) -> Windows:
    """The first ``cfg.max_windows`` windows of ``cfg.max_length`` tokens (overlap ``cfg.stride``)."""
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


def pad(rows: list[list[int]], pad_id: int):
    """(B, L) ids and attention mask, right-padded to the longest row."""
    import torch

    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def autocast(bf16: bool):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def pad_id(tok) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else 0


# ----------------------------------------------------------------------------------------------------
# build, loss


def build(
    model_dir: Path, labels: list[str], multi: bool, mode: str, seed: int, pad_token_id: int | None = None
):
    """A fresh classifier from ``model_dir`` (a new head, seeded); head mode freezes the body.

    ``pad_token_id`` (the tokenizer's) is written into a config that has none: a causal model's sequence
    classifier (GPT-2, Llama) pools the last token before the padding and refuses batches without it."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the new head's "newly initialized" report is expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)},
            local_files_only=True,
            problem_type="multi_label_classification" if multi else "single_label_classification",
        )
    finally:
        transformers.logging.set_verbosity(level)
    if model.config.pad_token_id is None and pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    if mode == "head":
        head = set(head_params(model))
        for n, p in model.named_parameters():
            p.requires_grad = n in head
    return model


def head_params(model) -> list[str]:
    """Names of the head's parameters: everything outside the body, plus BERT's pooler."""
    prefix = model.base_model_prefix + "."
    return [n for n, _ in model.named_parameters() if not n.startswith(prefix) or ".pooler." in n]


def loss_fn(y_train, n_classes: int, multi: bool, class_weights: bool):
    """Cross-entropy (BCE for multi-label), weighted by inverse class frequency when asked."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    if multi:
        pos = y_train.sum(0)
        pw = (
            np.clip((len(y_train) - pos) / np.maximum(pos, 1), 1, 100)
            if class_weights
            else np.ones(n_classes)
        )
        pos_weight = torch.tensor(pw, dtype=torch.float32)
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight)
    weight = None
    if class_weights:
        counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        # sklearn's "balanced": n / (C * count); absent classes get weight 0
        w = np.where(counts > 0, len(y_train) / (n_classes * np.maximum(counts, 1)), 0.0)
        weight = torch.tensor(w, dtype=torch.float32)
    return lambda logits, y: F.cross_entropy(logits.float(), y, weight=weight)


# ----------------------------------------------------------------------------------------------------
# forward over windows


def caches_cls(config) -> bool:
    """Whether a classifier of this config reads only the first token's state (its head can be trained
    on cached states, ``cls_states``): ``CLS_HEADS``, and ModernBERT with ``classifier_pooling="cls"``."""
    if config.model_type == "modernbert":
        return getattr(config, "classifier_pooling", "cls") == "cls"
    return config.model_type in CLS_HEADS


def head_logits(model, cls):
    """Logits from cached [CLS] states (N, H) -> (N, C), the same computation as the model's head."""
    if model.config.model_type == "modernbert":  # ModernBertForSequenceClassification, "cls" pooling
        return model.classifier(model.drop(model.head(cls)))
    h = cls.unsqueeze(1)  # (N, 1, H): the heads read position 0
    if model.config.model_type == "bert":
        pooled = model.bert.pooler(h) if model.bert.pooler is not None else cls
        return model.classifier(model.dropout(pooled))
    return model.classifier(h)


def cls_states(model, windows: Windows, pad_token: int, bf16: bool = False, batch_size: int = 64):
    """(W, H) [CLS] states of the (frozen) body for every window, longest first to limit padding."""
    import torch

    body = getattr(model, model.base_model_prefix)
    order = sorted(range(len(windows.ids)), key=lambda i: -len(windows.ids[i]))
    out = [None] * len(order)
    body.eval()
    with torch.no_grad(), autocast(bf16):
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            ids, mask = pad([windows.ids[i] for i in chunk], pad_token)
            h = body(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0].float()  # (B, H)
            for j, i in enumerate(chunk):
                out[i] = h[j]
    return torch.stack(out)


def window_logits(
    model, windows: Windows, idx: list[int], pad_token: int, bf16=False, cache=None, grad=False
):
    """(len(idx), C) logits of the windows ``idx``; from cached [CLS] states when ``cache`` is given."""
    import torch

    with torch.set_grad_enabled(grad), autocast(bf16):
        if cache is not None:
            return head_logits(model, cache[idx]).float()
        if grad:  # one padded batch: the caller sized it
            ids, mask = pad([windows.ids[i] for i in idx], pad_token)
            return model(input_ids=ids, attention_mask=mask).logits.float()
        order = sorted(range(len(idx)), key=lambda i: -len(windows.ids[idx[i]]))
        out = torch.zeros(len(idx), model.config.num_labels)
        for s in range(0, len(order), 64):
            chunk = order[s : s + 64]
            ids, mask = pad([windows.ids[idx[i]] for i in chunk], pad_token)
            out[chunk] = model(input_ids=ids, attention_mask=mask).logits.float()
        return out


def pool_documents(logits, sizes: list[int]):
    """(W, C) window logits in document order, window counts per document -> (D, C) mean logits."""
    import torch

    return torch.stack([part.mean(0) for part in torch.split(logits, sizes)])


def doc_logits(model, windows: Windows, docs: list[int], pad_token: int, bf16=False, cache=None, grad=False):
    """(len(docs), C) document logits: the mean of each document's windows' logits."""
    groups = windows.of(docs)
    idx = [w for g in groups for w in g]
    return pool_documents(
        window_logits(model, windows, idx, pad_token, bf16, cache, grad), [len(g) for g in groups]
    )


def predict_proba(model, windows: Windows, docs: list[int], pad_token: int, bf16=False, cache=None):
    """(len(docs), C) probabilities: softmax (sigmoid for multi-label) of the pooled logits."""
    model.eval()
    logits = doc_logits(model, windows, docs, pad_token, bf16, cache)
    multi = model.config.problem_type == "multi_label_classification"
    return (logits.sigmoid() if multi else logits.softmax(-1)).numpy()


# ----------------------------------------------------------------------------------------------------
# train


def optimizer(model, hp: dict, total_steps: int):
    """AdamW (no weight decay on biases and norms) with linear warm-up and linear decay to 0."""
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp["lr"],
    )
    warm = int(hp["warmup"] * total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / max(1, warm) if s < warm else max(0.0, (total_steps - s) / max(1, total_steps - warm))
        ),
    )
    return opt, sched


def document_batches(docs: list[int], sizes: dict[int, int], batch_windows: int, rng) -> list[list[int]]:
    """Shuffled documents grouped so that a batch holds at most ``batch_windows`` windows (>= 1 doc)."""
    batches, cur, n = [], [], 0
    for d in (docs[i] for i in rng.permutation(len(docs))):
        if cur and n + sizes[d] > batch_windows:
            batches.append(cur)
            cur, n = [], 0
        cur.append(d)
        n += sizes[d]
    return batches + ([cur] if cur else [])


@dataclass
class TrainSetup:
    """What a training run needs besides the model: windows, labels, settings."""

    windows: Windows
    y: object  # (N,) class ids or (N, C) 0/1 over all documents
    pad_token: int
    bf16: bool = False
    class_weights: bool = True
    patience: int = 2
    cache: object = None  # (W, H) cached [CLS] states in head mode
    writer: object = None  # a TensorBoard SummaryWriter, or None
    deadline: float | None = None  # perf_counter() time after which no new epoch starts


def train(model, setup: TrainSetup, train_docs: list[int], val_docs: list[int], hp: dict, seed: int):
    """Train with early stopping on validation macro-F1; return (the best epoch's model, log)."""
    import numpy as np
    import torch

    w, y = setup.windows, setup.y
    sizes = dict(zip(train_docs, map(len, w.of(train_docs)), strict=True))
    y_t = torch.tensor(y)
    loss_of = loss_fn(y[train_docs], model.config.num_labels, y.ndim == 2, setup.class_weights)
    params = [p for p in model.parameters() if p.requires_grad]
    rng = np.random.default_rng(seed)
    bs = int(hp["batch_size"])
    steps = len(document_batches(train_docs, sizes, bs, np.random.default_rng(0))) * int(hp["epochs"])
    opt, sched = optimizer(model, hp, steps)
    best, best_state, bad, history = -1.0, None, 0, []
    for epoch in range(int(hp["epochs"])):
        # one epoch: each batch of documents forwards all their windows and pools them per document
        model.train()
        if setup.cache is not None:
            getattr(model, model.base_model_prefix).eval()  # frozen body: no dropout either
        losses = []
        for batch in document_batches(train_docs, sizes, bs, rng):
            logits = doc_logits(model, w, batch, setup.pad_token, setup.bf16, setup.cache, grad=True)
            loss = loss_of(logits, y_t[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        # validate, log, keep the best epoch's trainable weights
        f1 = score(model, setup, val_docs)["macro_f1"]
        history.append({"epoch": epoch + 1, "val_macro_f1": f1, "loss": float(np.mean(losses))})
        if setup.writer is not None:
            setup.writer.add_scalar("train/loss", history[-1]["loss"], epoch + 1)
            setup.writer.add_scalar("validation/macro_f1", f1, epoch + 1)
        if f1 > best:
            best, bad = f1, 0
            best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        else:
            bad += 1
            if bad >= setup.patience:
                break
        if setup.deadline is not None and time.perf_counter() > setup.deadline:
            break
    restore(model, best_state)
    return model, {"best_val_macro_f1": best, "epochs_run": len(history), "history": history}


def restore(model, state: dict | None) -> None:
    import torch

    with torch.no_grad():
        for n, p in model.named_parameters():
            if state is not None and n in state:
                p.copy_(state[n])


def score(model, setup: TrainSetup, docs: list[int]) -> dict:
    probs = predict_proba(model, setup.windows, docs, setup.pad_token, setup.bf16, setup.cache)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return classification_metrics(setup.y[docs], predict(probs, setup.y.ndim == 2), names)


def save_hf(model, tok, dest: Path, max_length: int) -> None:
    """HF folder (safetensors + tokenizer) with id2label/label2id: loads in pipeline("text-classification")."""
    import shutil

    tmp = dest.with_name(dest.name + ".staging")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in model.parameters():
        p.requires_grad = True  # frozen flags are not saved, but keep the object honest for reuse
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok = copy.copy(tok)
    tok.model_max_length = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
    tok.save_pretrained(str(tmp))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def parameter_bytes(model) -> int:
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))
