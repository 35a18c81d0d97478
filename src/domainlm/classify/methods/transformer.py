"""Fine-tuning the encoder (full, or head-only on a frozen body) as a classifier method: the HF folder
it saves loads in ``transformers.pipeline("text-classification")``. The training functions are
``domainlm.classify.transformer``; this module adapts them to the method protocol and holds the
optional optuna search."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from domainlm.classify import transformer as T
from domainlm.classify.data import validation_split
from domainlm.config import parse_duration
from domainlm.errors import UserError


def hyperparameters(cfg) -> dict:
    return {
        "lr": cfg.lr or T.DEFAULT_LR[cfg.mode],
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "weight_decay": cfg.weight_decay,
        "warmup": cfg.warmup,
    }


@dataclass
class FittedTransformer:
    model: object  # AutoModelForSequenceClassification
    tok: object
    cfg: object
    labels: list[str]
    log: dict

    def predict_proba(self, texts: list[str]):
        w = T.make_windows(self.tok, texts, self.cfg, T.max_positions(self.model.config))
        return T.predict_proba(self.model, w, list(range(len(texts))), T.pad_id(self.tok))

    def save(self, dest: Path) -> None:
        T.save_hf(self.model, self.tok, dest, self.cfg.max_length)

    def size(self) -> int:
        return T.parameter_bytes(self.model)


class FineTune:
    multi_label = True

    def __init__(self, ctx, mode: str):
        from domainlm.tokens.tokenizer import load_tokenizer

        self.ctx, self.mode, self.name = ctx, mode, f"finetune-{mode}"
        self.model_dir = ctx.encoder_dir(self.name)
        self.cfg = ctx.cfg.model_copy(update={"mode": mode})
        self.tok = load_tokenizer(self.model_dir)
        self.hp = hyperparameters(self.cfg)
        self.cls_cache: dict[str, object] = {}  # text -> (windows, H) frozen [CLS] states (head mode)

    def count_windows(self, texts: list[str]) -> int:
        from transformers import AutoConfig

        conf = AutoConfig.from_pretrained(str(self.model_dir), local_files_only=True)
        return len(T.make_windows(self.tok, texts, self.cfg, T.max_positions(conf)).ids)

    def setup(self, texts: list[str], y, seed: int, log_dir: Path | None, deadline=None):
        """(a fresh model, its TrainSetup) for ``texts``; head mode caches the body's [CLS] states."""
        import torch

        model = T.build(self.model_dir, self.ctx.labels, self.ctx.multi, self.mode, seed, T.pad_id(self.tok))
        w = T.make_windows(self.tok, texts, self.cfg, T.max_positions(model.config))
        cache = None
        if self.mode == "head" and T.caches_cls(model.config):
            todo = sorted({t for t in texts if t not in self.cls_cache})
            if todo:  # the body is frozen and the same for every seed: its states are cached per text
                tw = T.make_windows(self.tok, todo, self.cfg, T.max_positions(model.config))
                states = T.cls_states(model, tw, T.pad_id(self.tok), self.ctx.bf16)
                for t, g in zip(todo, tw.of(list(range(len(todo)))), strict=True):
                    self.cls_cache[t] = states[g]
            cache = torch.cat([self.cls_cache[t] for t in texts])  # windows in document order
        c = self.cfg
        setup = T.TrainSetup(
            w, y, T.pad_id(self.tok), self.ctx.bf16, c.class_weights, c.patience, cache, None, deadline
        )
        from domainlm.classify.report import tensorboard_writer

        setup.writer = tensorboard_writer(log_dir)
        return model, setup

    def fit(self, texts, y, seed: int, log_dir=None, hp: dict | None = None, deadline=None):
        tr, va = validation_split(texts, y, self.cfg.val_fraction, self.cfg.seed)
        model, setup = self.setup(texts, y, seed, log_dir, deadline)
        model, log = T.train(model, setup, tr, va, hp or self.hp, seed)
        if setup.writer is not None:
            setup.writer.close()
        model.eval()
        return FittedTransformer(model, self.tok, self.cfg, self.ctx.labels, log)

    def search(self, texts: list[str], y, trials: int, budget: str, seed: int) -> dict:
        """Optuna TPE over lr, epochs, batch size, weight decay and warm-up, maximising the validation
        macro-F1 of ``texts``' early-stopping split, stopped by ``trials`` or the ``budget`` wall clock."""
        try:
            import optuna
        except ImportError:
            raise UserError("--search needs optuna", "Install it: pip install 'domainlm[search]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        budget_s = parse_duration(budget)
        deadline = time.perf_counter() + budget_s
        lo, hi = (1e-5, 2e-4) if self.mode == "full" else (1e-4, 1e-2)

        def objective(trial):
            hp = {
                "lr": trial.suggest_float("lr", lo, hi, log=True),
                "epochs": trial.suggest_int("epochs", 1, 8),
                "batch_size": trial.suggest_categorical("batch_size", [8, 16, 32]),
                "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
                "warmup": trial.suggest_float("warmup", 0.0, 0.2),
            }
            return self.fit(texts, y, seed, hp=hp, deadline=deadline).log["best_val_macro_f1"]

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial(self.hp)  # the defaults are the first trial: search can only improve
        study.optimize(objective, n_trials=trials, timeout=budget_s)
        self.hp = {k: study.best_params[k] for k in self.hp}
        return {**study.best_params, "val_macro_f1": study.best_value, "trials": len(study.trials)}


def factory(mode: str):
    return lambda ctx: FineTune(ctx, mode)
