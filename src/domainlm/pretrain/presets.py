"""Named architectures: small dicts that build `transformers` configs and models (we write no BERT).

``domainlm pretrain --preset list`` prints them with parameter counts. Shapes follow the papers they are
named after: bert-tiny/mini/small/medium are Turc et al. 2019 ("Well-Read Students Learn Better",
the 24 compact BERTs); bert-small is also the LEGAL-BERT-small shape (Chalkidis et al. 2020).
electra-small is ELECTRA-Small (Clark et al. 2020, table 6: 12 layers, hidden 256, embeddings 128,
4 heads; the generator 1/4 of the discriminator's width); albert-small shares one layer's weights
across 6 layers with factorised 128-wide embeddings (Lan et al. 2020).
modernbert-* are ModernBERT (Warner et al. 2024, "Smarter, Better, Faster, Longer": pre-LN, RoPE, GeGLU,
no biases, alternating global/local attention) at the compact BERTs' widths; the GeGLU width is ModernBERT's
1.5 x hidden.

Each preset may carry a ``recipe``: the train settings measured best for it at the budgets a CPU user has
(benchmarks/time_to_quality.py, RESULTS.md). They are defaults, filled into a run's config when the user
does not set them (``with_recipe``, called by the loop), so the saved config.yaml still holds every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domainlm.errors import resolve

# family -> (config class name, {objective: model class name}, tokenizer style)
FAMILIES: dict[str, tuple[str, dict[str, str], str]] = {
    "bert": ("BertConfig", {"mlm": "BertForMaskedLM"}, "bert"),
    "roberta": ("RobertaConfig", {"mlm": "RobertaForMaskedLM"}, "roberta"),
    "albert": ("AlbertConfig", {"mlm": "AlbertForMaskedLM"}, "bert"),
    "gpt2": ("GPT2Config", {"clm": "GPT2LMHeadModel"}, "gpt"),
    "llama": ("LlamaConfig", {"clm": "LlamaForCausalLM"}, "gpt"),
    # ELECTRA: the discriminator is the product (model/); the generator is saved beside it (generator/)
    "electra": ("ElectraConfig", {"electra": "ElectraForPreTraining"}, "bert"),
    "modernbert": ("ModernBertConfig", {"mlm": "ModernBertForMaskedLM"}, "bert"),
    # issue 14's other families: XLNet (permutation LM), T5 (span corruption; its encoder classifies),
    # and the LSTM/GRU baseline, plain torch (rnn.py: a dotted name is a domainlm class, not transformers')
    "xlnet": ("XLNetConfig", {"plm": "XLNetLMHeadModel"}, "gpt"),
    "t5": ("T5Config", {"span": "T5ForConditionalGeneration"}, "t5"),
    "rnn": ("domainlm.pretrain.rnn.RNNConfig", {"clm": "domainlm.pretrain.rnn.RNNLM"}, "gpt"),
}


def _bert(layers: int, hidden: int, heads: int) -> dict[str, Any]:
    return {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
    }


def _modernbert(layers: int, hidden: int, heads: int) -> dict[str, Any]:
    # GeGLU width 1.5 x hidden as in ModernBERT-base (768 -> 1152); a global layer every third
    return {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": hidden * 3 // 2,
    }


# RESULTS.md "model_selection --screen" (demo corpus, 2 minutes, batch 8 vs 32 at each preset's lr, final
# validation loss): batch 8 learned more in the same time for every family but roberta-small (a tie,
# 5.998 vs 5.966: at 27.7M parameters it makes too few steps at either size to tell). More optimizer
# steps over the same tokens win while a small corpus is far from learned.
SMALL_BATCH = {"batch_size": 8}

PRESETS: dict[str, dict[str, Any]] = {
    "bert-tiny": {"family": "bert", **_bert(2, 128, 2)},
    "bert-mini": {"family": "bert", **_bert(4, 256, 4), "recipe": SMALL_BATCH},  # 5.656 vs 5.864
    "bert-small": {"family": "bert", **_bert(6, 512, 8)},
    "bert-medium": {"family": "bert", **_bert(8, 512, 8)},
    "roberta-small": {"family": "roberta", **_bert(6, 512, 8)},
    "albert-small": {
        "family": "albert",
        **_bert(6, 512, 8),
        "embedding_size": 128,
        "recipe": SMALL_BATCH,
    },  # 5.956 vs 7.097
    "gpt-mini": {
        "family": "gpt2",
        "n_layer": 4,
        "n_embd": 256,
        "n_head": 4,
        "recipe": SMALL_BATCH,
    },  # 3.961 vs 4.699
    "gpt-small": {"family": "gpt2", "n_layer": 6, "n_embd": 512, "n_head": 8},
    "electra-small": {
        "family": "electra",
        **_bert(12, 256, 4),
        "embedding_size": 128,
        "generator": {"hidden_size": 64, "num_attention_heads": 1, "intermediate_size": 256},
        "recipe": SMALL_BATCH,  # 5.937 vs 6.716
    },
    "llama-mini": {
        "family": "llama",
        "num_hidden_layers": 4,
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 688,
        "recipe": SMALL_BATCH,  # 4.259 vs 5.316
    },
    # recipe, RESULTS.md "time_to_quality" (demo corpus): batch 8 x 128 tokens, 47.7% held-out masked
    # accuracy at 3 minutes against 24.1% at batch 32 (more optimizer steps leave the unigram plateau
    # sooner; batch 4 48.3%, within noise, at 15% fewer tokens/s); at batch 8, 40% masking +11.8 points
    # over 15% (Wettig et al. 2023, "Should You Mask 15% in Masked Language Modeling?"), dropout 0.1
    # -9.8. Peak lr at batch 8 and 40% masking, at equal tokens (1.4M; RESULTS.md, 2026-12-06 20:36):
    # 7e-4 53.1%, 1e-3 55.5% (4 cells), 1.4e-3 57.0% (2), 1.7e-3 57.0%, 2e-3 56.9% (2): 1.4e-3, the low
    # end of the plateau (longer runs take more steps at the peak)
    "modernbert-mini": {
        "family": "modernbert",
        **_modernbert(4, 256, 4),
        "recipe": {"lr": 1.4e-3, "warmup": 0.06, "mlm_probability": 0.4, "batch_size": 8},
    },
    # not measured at this width: lr 5e-4 because bert-small at 1e-3 stayed on the unigram plateau and
    # left it at 5e-4 (RESULTS.md, train_throughput quality runs); masking as modernbert-mini
    "modernbert-small": {
        "family": "modernbert",
        **_modernbert(6, 512, 8),
        "recipe": {"lr": 5e-4, "warmup": 0.06, "mlm_probability": 0.4},
    },
    # XLNet at bert-mini's shape (Yang et al. 2019 use 12/24 layers; this is the CPU size)
    "xlnet-mini": {
        "family": "xlnet",
        "n_layer": 4,
        "d_model": 256,
        "n_head": 4,
        "d_inner": 1024,
        "recipe": SMALL_BATCH,  # 5.388 vs 5.765
    },
    # T5 at bert-mini's shape, 4 encoder + 4 decoder layers, ReLU feed-forward (Raffel et al. 2020)
    "t5-mini": {
        "family": "t5",
        "num_layers": 4,
        "d_model": 256,
        "num_heads": 4,
        "d_kv": 64,
        "d_ff": 1024,
        "recipe": SMALL_BATCH,  # 4.502 vs 4.999
    },
    # 2-layer recurrent LMs with tied embeddings (Merity et al. 2018 use 3 layers; a CPU baseline)
    "lstm-mini": {
        "family": "rnn",
        "cell": "lstm",
        "num_hidden_layers": 2,
        "hidden_size": 512,
        "recipe": SMALL_BATCH,
    },
    # gru-mini: not screened (the study's extra family); batch 32
    "gru-mini": {"family": "rnn", "cell": "gru", "num_hidden_layers": 2, "hidden_size": 512},
}

# train settings a preset's recipe may set (fields of config.TrainConfig)
RECIPE_KEYS = ("lr", "warmup", "mlm_probability", "seq_len", "batch_size", "weight_decay")


@dataclass
class Built:
    model: Any
    family: str
    objective: str
    style: str


def family_of(preset: str) -> str:
    return resolve("preset", preset, PRESETS)["family"]


def style_of(preset: str) -> str:
    return FAMILIES[family_of(preset)][2]


def recipe_of(preset: str) -> dict[str, Any]:
    """The measured train defaults of ``preset`` ({} if it has none, or is unknown)."""
    return dict(PRESETS.get(preset, {}).get("recipe", {}))


def with_recipe(cfg):
    """``cfg`` (a RunConfig) with the preset's recipe in the train settings the user left unset.

    "Unset" is pydantic's ``model_fields_set``: a value given by YAML, ``--set`` or a flag is kept, even
    when it equals the generic default. Not with ``--init-from``: a continued checkpoint keeps the
    generic defaults. A resumed run reads its saved config.yaml, where every field is set.
    """
    if cfg.model.init_from:
        return cfg
    fill = {k: v for k, v in recipe_of(cfg.model.preset).items() if k not in cfg.train.model_fields_set}
    if not fill:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=fill)})


def objectives_of(preset: str) -> list[str]:
    return list(FAMILIES[family_of(preset)][1])


def make_config(
    preset: str,
    vocab_size: int,
    max_positions: int,
    specials: dict[str, int | None],
    dropout: float = 0.0,
    attention: str = "eager",
    overrides: dict | None = None,
):
    """The HF config for ``preset`` with this vocabulary, context length and dropout."""
    spec = dict(resolve("preset", preset, PRESETS))
    family = spec.pop("family")
    spec.pop("generator", None)
    spec.pop("recipe", None)
    cfg_cls = _class(FAMILIES[family][0])
    if family in ("bert", "roberta", "albert", "electra"):
        # RoBERTa offsets positions by padding_idx + 1 (fairseq legacy): reserve room for it.
        extra = 2 if family == "roberta" else 0
        spec |= {
            "max_position_embeddings": max_positions + extra,
            "hidden_dropout_prob": dropout,
            "attention_probs_dropout_prob": dropout,
            "pad_token_id": specials.get("pad"),
        }
        if family == "albert":
            spec |= {"classifier_dropout_prob": dropout}
    elif family == "gpt2":
        spec |= {
            "n_positions": max_positions,
            "resid_pdrop": dropout,
            "embd_pdrop": dropout,
            "attn_pdrop": dropout,
            "bos_token_id": specials.get("bos"),
            "eos_token_id": specials.get("eos"),
        }
    elif family == "llama":
        spec |= {
            "max_position_embeddings": max_positions,
            "attention_dropout": dropout,
            "bos_token_id": specials.get("bos"),
            "eos_token_id": specials.get("eos"),
            "pad_token_id": specials.get("pad"),
            "tie_word_embeddings": True,
        }
    elif family == "modernbert":
        ids = {
            "pad_token_id": specials.get("pad"),
            "cls_token_id": _first(specials.get("cls"), specials.get("bos")),
            "sep_token_id": _first(specials.get("sep"), specials.get("eos")),
            # a BERT-style tokenizer has no bos/eos: [CLS]/[SEP] play their part
            "bos_token_id": _first(specials.get("bos"), specials.get("cls")),
            "eos_token_id": _first(specials.get("eos"), specials.get("sep")),
        }
        spec |= {
            "max_position_embeddings": max_positions,
            "attention_dropout": dropout,
            "embedding_dropout": dropout,
            "mlp_dropout": dropout,
            **{k: v for k, v in ids.items() if v is not None},  # the config refuses None ids
        }
    elif family == "xlnet":
        spec |= {"dropout": dropout, "mem_len": None, "use_mems_eval": False, "use_mems_train": False}
        spec |= {"pad_token_id": specials.get("pad"), "bos_token_id": specials.get("bos")}
        spec |= {"eos_token_id": specials.get("eos")}
        attention = "eager"  # XLNet's relative attention has no SDPA path in transformers
    elif family == "t5":
        pad = specials.get("pad")
        spec |= {"dropout_rate": dropout, "pad_token_id": pad, "decoder_start_token_id": pad}
        spec |= {"eos_token_id": specials.get("eos")}
    elif family == "rnn":
        spec |= {"dropout": dropout}
    spec |= overrides or {}
    cfg = cfg_cls(vocab_size=vocab_size, **spec)
    cfg._attn_implementation = attention
    return cfg


def _first(*ids: int | None) -> int | None:
    return next((i for i in ids if i is not None), None)


def _class(name: str):
    """A transformers class by name, or a domainlm one by its dotted path (the RNN baseline)."""
    import importlib

    import transformers

    if "." not in name:
        return getattr(transformers, name)
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def model_class(family: str, objective: str):
    classes = FAMILIES[family][1]
    name = resolve(f"objective for the {family} family", objective, classes)
    return _class(name)


def generator_config(preset: str, disc_cfg):
    """ELECTRA generator config: the discriminator's, narrower (``PRESETS[preset]["generator"]``)."""
    import transformers

    fields = disc_cfg.to_dict() | resolve("preset", preset, PRESETS).get("generator", {})
    fields["architectures"] = ["ElectraForMaskedLM"]
    cfg = transformers.ElectraConfig(**{k: v for k, v in fields.items() if k != "model_type"})
    cfg._attn_implementation = disc_cfg._attn_implementation
    return cfg


def build(
    preset: str,
    objective: str,
    vocab_size: int,
    max_positions: int,
    specials: dict[str, int | None],
    dropout: float = 0.0,
    attention: str = "eager",
    overrides: dict | None = None,
) -> Built:
    """A freshly initialised model for ``preset`` trained with ``objective``.

    For ``electra`` the model is an ``objectives.ElectraPair`` (generator + discriminator).
    """
    family = family_of(preset)
    cfg = make_config(preset, vocab_size, max_positions, specials, dropout, attention, overrides)
    model = model_class(family, objective)(cfg)
    if objective == "electra":
        import transformers

        from domainlm.pretrain.objectives import ElectraPair

        model = ElectraPair(transformers.ElectraForMaskedLM(generator_config(preset, cfg)), model)
    return Built(model, family, objective, FAMILIES[family][2])


def count_parameters(preset: str, vocab_size: int = 16000, max_positions: int = 512) -> int:
    """Parameters of ``preset`` at a given vocabulary (built on the meta device: no memory used)."""
    import torch

    family = family_of(preset)
    objective = next(iter(FAMILIES[family][1]))
    cfg = make_config(preset, vocab_size, max_positions, {"pad": 0, "bos": 0, "eos": 0})
    with torch.device("meta"):
        model = model_class(family, objective)(cfg)
    return sum(p.numel() for p in model.parameters())


def count_generator_parameters(preset: str, vocab_size: int = 16000, max_positions: int = 512) -> int:
    """Parameters of an ELECTRA preset's generator not shared with the discriminator (0 otherwise)."""
    import torch
    import transformers

    if "generator" not in resolve("preset", preset, PRESETS):
        return 0
    cfg = make_config(preset, vocab_size, max_positions, {"pad": 0, "bos": 0, "eos": 0})
    with torch.device("meta"):
        gen = transformers.ElectraForMaskedLM(generator_config(preset, cfg))
    shared = sum(p.numel() for p in gen.electra.embeddings.parameters())
    return sum(p.numel() for p in gen.parameters()) - shared


def describe(vocab_size: int = 16000) -> list[dict[str, Any]]:
    """One row per preset: name, family, objectives, shape and parameter count (ELECTRA: discriminator,
    plus the generator's own parameters in ``generator_parameters``)."""
    rows = []
    for name, spec in PRESETS.items():
        family = spec["family"]
        layers = spec.get("num_hidden_layers", spec.get("n_layer", spec.get("num_layers")))
        hidden = spec.get("hidden_size", spec.get("n_embd", spec.get("d_model")))
        rows.append(
            {
                "preset": name,
                "family": family,
                "objectives": "/".join(FAMILIES[family][1]),
                "layers": layers,
                "hidden": hidden,
                "parameters": count_parameters(name, vocab_size),
                "generator_parameters": count_generator_parameters(name, vocab_size),
            }
        )
    return rows
