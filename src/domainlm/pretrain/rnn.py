"""rnn: an LSTM/GRU language model, the recurrent baseline of the model-selection study (issue 14).

    domainlm pretrain CORPUS --preset lstm-mini --objective clm --max-steps 2000

Plain torch (``nn.LSTM`` / ``nn.GRU``) with the input embedding tied to the output projection (Press &
Wolf 2017; Inan et al. 2017), trained by the same loop and ``clm`` objective as GPT-2: ``forward`` takes
``input_ids`` and returns ``.logits`` (B, T, V) like a transformers causal LM, and ``.config`` answers
what the loop asks a config (``model_type``; no position limit).

It is a baseline, not a shipped artefact: ``transformers.AutoModel`` cannot load it. ``save_rnn`` writes
``model.safetensors`` + ``domainlm_rnn.json`` (no ``config.json``, so no tool mistakes the folder for a
Hugging Face model), the tokenizer and a model card that says so; ``load_rnn`` reads it back for
``domainlm evaluate``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

FORMAT_VERSION = 1
CONFIG_FILE = "domainlm_rnn.json"  # not config.json: this folder is not a transformers model
CELLS: dict[str, type[nn.Module]] = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class RNNConfig:
    """The shape of an RNN LM; ``model_type``/``max_position_embeddings`` are what the loop reads of any
    model's config (a recurrent net has no position limit: 0)."""

    vocab_size: int
    cell: str = "lstm"
    num_hidden_layers: int = 2
    hidden_size: int = 512
    dropout: float = 0.0
    model_type: str = "rnn"
    max_position_embeddings: int = 0

    def to_dict(self) -> dict:
        return asdict(self)  # the fields only (presets also set _attn_implementation: meaningless here)


@dataclass
class RNNOutput:
    logits: torch.Tensor  # (B, T, V)


class RNNLM(nn.Module):
    """Embedding -> LSTM/GRU layers -> tied projection to the vocabulary (dropout between, if set)."""

    def __init__(self, config: RNNConfig):
        super().__init__()
        from domainlm.errors import resolve

        self.config = config
        cell = resolve("RNN cell", config.cell, CELLS)
        H, p = config.hidden_size, config.dropout
        self.embed = nn.Embedding(config.vocab_size, H)
        self.rnn = cell(H, H, num_layers=config.num_hidden_layers, batch_first=True, dropout=p)
        self.drop = nn.Dropout(p)
        self.head = nn.Linear(H, config.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied (Press & Wolf 2017)
        # N(0, 1), torch's default, makes the tied output's first logits huge; +-0.1 as in Zaremba et
        # al. 2014 and Merity et al. 2018 (AWD-LSTM)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, input_ids: torch.Tensor, **_) -> RNNOutput:
        h, _ = self.rnn(self.drop(self.embed(input_ids)))  # (B, T, H)
        return RNNOutput(self.head(self.drop(h)))  # (B, T, V)


def write_weights(model: RNNLM, folder: Path) -> None:
    """``model.safetensors`` (the tied projection stored once) and ``domainlm_rnn.json`` in ``folder``."""
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    save_file(
        weights,
        str(folder / "model.safetensors"),
        metadata={"format": "pt", "tied": "head.weight=embed.weight"},
    )
    meta = {
        "format_version": FORMAT_VERSION,
        "class": "domainlm.pretrain.rnn.RNNLM",
        "config": model.config.to_dict(),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))


def save_rnn(model: RNNLM, tok, out: Path, cfg, summary: dict) -> Path:
    """Write ``out``: the weights (``write_weights``), the tokenizer and a README that says plainly what
    this folder is and is not. Staged, then renamed."""
    tmp = out.parent / f".{out.name}-staging"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_weights(model, tmp)
    tok.save_pretrained(str(tmp))
    (tmp / "README.md").write_text(_card(model, cfg, summary), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def load_rnn(folder: str | Path) -> RNNLM:
    """The RNN LM saved by ``save_rnn`` in ``folder`` (format_version checked)."""
    from safetensors.torch import load_file

    from domainlm.errors import UserError

    folder = Path(folder)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{folder / CONFIG_FILE}: format_version {meta.get('format_version')}, expected {FORMAT_VERSION}",
            "Retrain the RNN with this version of domainlm",
        )
    model = RNNLM(RNNConfig(**meta["config"]))
    weights = load_file(str(folder / "model.safetensors"))
    weights["head.weight"] = weights["embed.weight"]
    model.load_state_dict(weights)
    return model.eval()


def is_rnn_folder(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def _card(model: RNNLM, cfg, summary: dict) -> str:
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    val = summary.get("validation", {})
    lines = [
        "---",
        "library_name: domainlm",
        "tags: [domainlm, rnn, baseline]",
        "---",
        "",
        f"# {cfg.name}",
        "",
        f"A {c.cell.upper()} language model ({c.num_hidden_layers} layers, hidden {c.hidden_size}, tied "
        f"embeddings, {n:,} parameters) trained with domainlm as a **baseline** for comparing model "
        "families. It is not a shipped artefact:",
        "",
        "- it is **not** a Hugging Face model: `AutoModel.from_pretrained` cannot load this folder, and "
        "`domainlm export` / `serve` / `finetune` do not take it;",
        "- the weights are `model.safetensors` (plain torch state dict; the output projection is the "
        "embedding, stored once), the shape is `domainlm_rnn.json`;",
        "- load it with `domainlm.pretrain.rnn.load_rnn(folder)`; `domainlm evaluate RUN` measures it.",
        "",
        "## Training",
        f"- corpus: `{cfg.corpus}`; preset {cfg.model.preset}, objective {cfg.model.objective}",
        f"- trained {summary.get('steps', 0)} steps, {summary.get('tokens', 0):,} tokens "
        f"(stopped by {summary.get('stopped_by', '?')})",
        "",
        "## Validation",
    ]
    lines += [f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}" for k, v in val.items()]
    return "\n".join(lines) + "\n"


@dataclass
class RNNHidden:
    last_hidden_state: torch.Tensor  # (B, T, H): the top recurrent layer's output at every position


class RNNBody(nn.Module):
    """An RNN LM without its output projection: what a frozen-embedding classifier reads, answering like a
    transformers ``AutoModel`` (``.last_hidden_state``, ``.config``, ``save_pretrained``). With right
    padding, a position's state never depends on the padding after it."""

    def __init__(self, lm: RNNLM):
        super().__init__()
        self.lm, self.config = lm, lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask=None, **_) -> RNNHidden:
        h, _ = self.lm.rnn(self.lm.embed(input_ids))
        return RNNHidden(h)

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_weights(self.lm, Path(folder))  # the whole LM: load_rnn reads it back
