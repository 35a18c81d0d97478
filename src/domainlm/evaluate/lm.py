"""evaluate: how good is a language model, comparably across runs, objectives and tokenizers.

    domainlm evaluate runs/A [runs/B ...] [--baseline ngram] [--probes constitution|FILE] [--max-docs 10]

- Masked LMs: masked-token loss and accuracy on the validation split with deterministic masks (the same
  positions for every model sharing a tokenizer), and pseudo-perplexity (Salazar et al. 2020, "Masked
  Language Model Scoring": mask each token in turn, sum the log-probabilities) over ``--max-docs``
  validation documents, normalised per token and per word.
- Causal LMs: loss and perplexity per token, and perplexity per word: the total negative log-likelihood
  divided by whitespace-separated words, not tokens, so models with different tokenizers compare. The
  tokens-per-word ratio is measured on the evaluated split.
- Bits per character of held-out documents (bits.py), the number that compares across families and
  tokenizers: ``bits_per_char`` for left-to-right likelihoods (causal LMs, the RNN baseline, XLNet in
  natural order, the n-gram baseline), ``pppl_bits_per_char`` (pseudo-log-likelihood) for masked LMs.
  T5's span-corruption ``loss`` is not a language-model likelihood: ``intrinsic`` says which number a
  run has, and for T5 that none is comparable.
- XLNet: its permutation-LM loss on fixed orders; T5: its span-corruption loss on fixed spans.
- ELECTRA: the discriminator's replaced-token detection (tokens corrupted by the generator with fixed
  masks; by uniformly random tokens if the run has no generator folder) and the generator's MLM metrics,
  with the same definitions the training loop logs (``objectives.electra_metrics``; the names are
  defined once in ``pretrain.metrics.METRICS``).
- Probes: a cloze JSONL file, one ``{"text": "... [MASK] ...", "answers": [...]}`` per line -> top-1 and
  top-5 accuracy (an answer matches a predicted token case-insensitively). ``--probes constitution`` is
  the set shipped for the demo corpus (held-out articles; see scripts/make_probes.py).
- ``--baseline ngram``: a Kneser-Ney n-gram on each run's tokens (ngram.py), reported beside the runs.

Writes ``eval.json`` in each run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from domainlm.corpus.documents import read_documents
from domainlm.errors import UserError, resolve, unknown_name
from domainlm.pretrain.metrics import EVAL_MASK_PROBABILITY, EVAL_SEED

ASSETS = Path(__file__).parent.parent / "assets"
# name -> shipped probe file
PROBE_SETS: dict[str, Path] = {"constitution": ASSETS / "constitution_probes.jsonl"}
BASELINES = {"ngram": "ngram", "none": None}
SCORED_SPLITS = ("validation", "test")  # `evaluate --split`: prepare's held-out splits
PROBE_MASK = "[MASK]"  # the placeholder in probe files, whatever the model's own mask token is
# objective -> its number comparable across families (bits.py); objectives not here have none
INTRINSIC: dict[str, str] = {
    "clm": "bits_per_char",
    "plm": "bits_per_char",
    "mlm": "pppl_bits_per_char",
    "electra": "pppl_bits_per_char",  # of the generator, the run's only masked LM
}
NOT_COMPARABLE = "none: the loss is not a language-model likelihood, not comparable with the others"
# objective -> how cloze probes query it (XLNet and T5 are not probed)
PROBED: dict[str, str] = {"clm": "clm", "mlm": "mlm", "electra": "mlm"}
# folders (relative to the run) where an ELECTRA run may keep its generator, first found wins
GENERATOR_DIRS = ("generator", "model/generator", "model-generator", "model_generator")


def pseudo_perplexity(
    model, tok, texts: list[str], seq_len: int, batch_size: int = 64, max_tokens: int | None = None
) -> dict:
    """Pseudo-log-likelihood of each text (Salazar et al. 2020): every token masked in turn.

    A document longer than ``seq_len`` is scored in consecutive windows of ``seq_len - 2`` tokens framed
    by [CLS]/[SEP] (each token is scored once, with context from its own window only). Returns the mean
    per-token loss, pseudo-perplexity per token and per whitespace word, and the pseudo-log-likelihood in
    bits per character (``pppl_bits_per_char``). Call under no_grad.

    Each token costs one forward pass of its window, so ``max_tokens`` caps the tokens scored, in
    document order; the characters and words are counted up to the last token scored.
    """
    import torch

    from domainlm.evaluate.bits import chars_scored
    from domainlm.pretrain.objectives import MLM_HEADS, mlm_head

    family = model.config.model_type
    head = mlm_head(model, family) if family in MLM_HEADS else None
    body = getattr(model, model.base_model_prefix) if head is not None else None
    prefix = [tok.cls_token_id] if tok.cls_token_id is not None else []
    suffix = [tok.sep_token_id] if tok.sep_token_id is not None else []
    content = seq_len - len(prefix) - len(suffix)
    nll, n_tokens, n_words, n_chars, n_docs = 0.0, 0, 0, 0, 0
    for text in texts:
        left = None if max_tokens is None else max_tokens - n_tokens
        if left is not None and left <= 0:
            break
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if left is not None and len(ids) > left:
            ids = ids[:left]
            text = text[: chars_scored(tok, text, left)]
        n_words += len(text.split())
        n_chars += len(text)
        n_docs += 1
        for w in range(0, len(ids), content):
            window = torch.tensor(prefix + ids[w : w + content] + suffix)  # (L,)
            positions = torch.arange(len(prefix), len(prefix) + len(ids[w : w + content]))  # (n,)
            for s in range(0, len(positions), batch_size):
                pos = positions[s : s + batch_size]
                batch = window.repeat(len(pos), 1)  # (b, L): one copy per masked position
                rows = torch.arange(len(pos))
                batch[rows, pos] = tok.mask_token_id
                if head is not None:  # vocabulary projection at the masked positions only
                    logits = head(body(input_ids=batch).last_hidden_state[rows, pos])  # (b, V)
                else:
                    logits = model(input_ids=batch).logits[rows, pos]  # (b, V)
                logp = logits.float().log_softmax(-1)[rows, window[pos]]  # (b,)
                nll -= float(logp.sum())
                n_tokens += len(pos)
    loss = nll / max(1, n_tokens)
    return {
        "pppl_loss": loss,
        "pppl_token": math.exp(min(loss, 50)),
        "pppl_word": math.exp(min(nll / max(1, n_words), 50)),
        "pppl_bits_per_char": nll / math.log(2) / max(1, n_chars),
        "pppl_docs": n_docs,
        "pppl_tokens": n_tokens,
        "pppl_words": n_words,
    }


@dataclass
class FillMask:
    token: str
    score: float
    token_id: int


def fill_mask(model, tok, text: str, top_k: int = 5) -> list[FillMask]:
    """Top-k fillers of the single mask in ``text``, computed by domainlm itself (not the pipeline)."""
    import torch

    if tok.mask_token is None or tok.mask_token not in text:
        raise UserError(
            f"text has no mask token {tok.mask_token!r}", f"Write {tok.mask_token} where the gap is"
        )
    enc = tok(text, return_tensors="pt")
    pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(**enc).logits[0, pos].float()  # (V,)
    model.train(was_training)
    probs = logits.softmax(-1)
    top = probs.topk(top_k)
    return [
        FillMask(tok.decode([int(i)]).strip(), float(s), int(i))
        for s, i in zip(top.values, top.indices, strict=True)
    ]


# ----------------------------------------------------------------------------------------------------
# probes


def read_probes(path: str | Path) -> list[dict]:
    """Read and validate a cloze probe file (JSONL); a bad line is an error naming file, line and fix."""
    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"probe file '{p}' does not exist",
            f"Pass a JSONL file or one of the shipped sets: {', '.join(PROBE_SETS)}",
        )
    probes = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(
                f"{p}, line {i}: not valid JSON", 'Write one {"text": ..., "answers": [...]} per line'
            ) from None
        text, answers = (row.get("text"), row.get("answers")) if isinstance(row, dict) else (None, None)
        if not isinstance(text, str) or text.count(PROBE_MASK) != 1:
            raise UserError(
                f"{p}, line {i}: 'text' must be a string with exactly one {PROBE_MASK}",
                f"Mark the gap with a single {PROBE_MASK}",
            )
        if (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise UserError(
                f"{p}, line {i}: 'answers' must be a non-empty list of strings",
                'Write e.g. "answers": ["President"]',
            )
        probes.append({"text": text, "answers": [a.strip() for a in answers]})
    if not probes:
        raise UserError(f"probe file '{p}' has no probes", "Add lines of JSON")
    return probes


def _token_text(tok, token_id: int) -> str:
    piece = tok.convert_ids_to_tokens(int(token_id))
    for marker in ("##", "Ġ", "▁"):
        piece = piece.removeprefix(marker)
    return piece.strip().lower()


def _single_token(tok, word: str) -> bool:
    ids = tok(" " + word, add_special_tokens=False)["input_ids"]
    return len(ids) == 1 and ids[0] != tok.unk_token_id


def probe_metrics(model, tok, objective: str, probes: list[dict], top_k: int = 5) -> dict:
    """Top-1 / top-k accuracy on cloze probes. Masked LMs predict the masked slot; causal LMs the next
    token after the text before the mask. ``probe_coverage`` is the share of probes with an answer that
    is a single token of this tokenizer (only those can be hit by a one-token prediction)."""
    import torch

    hits1 = hitsk = covered = 0
    for probe in probes:
        answers = {a.lower() for a in probe["answers"]}
        covered += any(_single_token(tok, a) for a in probe["answers"])
        if objective == "clm":
            prefix = probe["text"].split(PROBE_MASK)[0].rstrip()
            ids = tok(prefix, add_special_tokens=False)["input_ids"]
            bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            ids = ([bos] if bos is not None else []) + ids
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        else:
            if tok.mask_token is None:
                raise UserError(
                    "this model's tokenizer has no mask token", "Use probes with masked or causal LMs only"
                )
            enc = tok(probe["text"].replace(PROBE_MASK, tok.mask_token), return_tensors="pt")
            pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
            logits = model(input_ids=enc["input_ids"]).logits[0, pos]
        top = logits.float().topk(top_k).indices.tolist()
        words = [_token_text(tok, i) for i in top]
        hits1 += words[0] in answers
        hitsk += any(w in answers for w in words)
    n = len(probes)
    return {
        "probe_top1": hits1 / n,
        f"probe_top{top_k}": hitsk / n,
        "probe_coverage": covered / n,
        "probes": n,
    }


# ----------------------------------------------------------------------------------------------------
# runs


def _load_run(run: Path):
    from domainlm.config import read_run_config
    from domainlm.pretrain.rnn import is_rnn_folder

    model_ok = (run / "model" / "config.json").is_file() or is_rnn_folder(run / "model")
    if not (run / "config.yaml").is_file() or not model_ok:
        raise UserError(
            f"'{run}' is not a finished run folder (config.yaml and model/ expected)",
            "Pass a folder made by `domainlm pretrain`",
        )
    return read_run_config(run)  # format_version checked


def _objective_of(run: Path, cfg) -> str:
    """The run's objective; an ELECTRA discriminator is recognised from its architecture too."""
    config = run / "model" / "config.json"
    arch = (json.loads(config.read_text()).get("architectures") or []) if config.is_file() else []
    if cfg.model.objective == "electra" or "ElectraForPreTraining" in arch:
        return "electra"
    return cfg.model.objective


def generator_dir(run: Path) -> Path | None:
    """An ELECTRA run's generator folder (``GENERATOR_DIRS``), or None when the run has none."""
    for rel in GENERATOR_DIRS:
        if (run / rel / "config.json").is_file():
            return run / rel
    return None


def first_texts(corpus, split: str, n: int) -> list[str]:
    """The texts of the first ``n`` documents of ``split``: what the per-character numbers score."""
    import itertools

    return [d["text"] for d in itertools.islice(read_documents(corpus, split), n)]


def words_per_token(corpus: Path, split: str, tok) -> float:
    """Whitespace words per token of ``split``, tokenised without truncation or special tokens.

    Counted from the text, not from the encoded shard: a tokenizer.json that carries its own truncation
    (sentence-transformers checkpoints such as MiniLM save ``max_length: 128``) would shorten the shard.
    """
    words = tokens = 0
    texts = [d["text"] for d in read_documents(corpus, split)]
    for s in range(0, len(texts), 256):
        batch = texts[s : s + 256]
        words += sum(len(t.split()) for t in batch)
        tokens += sum(len(ids) for ids in tok(batch, add_special_tokens=False, truncation=False)["input_ids"])
    return words / max(1, tokens)


def resolve_probes(probes: str | Path | None) -> Path | None:
    if probes is None:
        return None
    return PROBE_SETS.get(str(probes), Path(probes))


def evaluate(
    runs: list[str | Path],
    eval_batches: int | None = None,
    baseline: str | None = None,
    probes: str | Path | None = None,
    max_docs: int = 10,
    ngram_order: int = 5,
    ngram_tokens: int = 200_000,
    pppl_tokens: int = 4096,
    seq_len: int | None = None,
    split: str = "validation",
) -> dict[str, dict]:
    """Evaluate each run's ``model/`` on its corpus's ``split`` (validation, or test: the split neither
    training nor ``train.keep_best``'s choice of step has seen); write ``eval.json`` in each.

    ``baseline="ngram"`` adds a Kneser-Ney ``ngram_order``-gram on the run's tokens (scored on the first
    ``ngram_tokens`` validation tokens) under the key ``"baseline"``. ``probes`` is a shipped set name or
    a JSONL path. ``max_docs`` caps the documents scored per character (0: skip it), ``pppl_tokens`` the
    tokens pseudo-perplexity scores in them (each is one forward pass). ``seq_len`` sets the tokens per
    block (default: each run's ``train.seq_len``), so runs trained at different lengths are scored on the
    same blocks.
    """
    if not runs:
        raise UserError("no run given", "Pass one or more run folders: domainlm evaluate runs/NAME")
    baseline = resolve("baseline", baseline or "none", BASELINES)
    probe_path = resolve_probes(probes)
    probe_set = read_probes(probe_path) if probe_path else None
    ngram_cache: dict[str, dict] = {}  # tokenizer hash -> n-gram result (runs sharing a tokenizer share it)
    out: dict[str, dict] = {}
    for run in map(Path, runs):
        result, data = evaluate_run(
            run, eval_batches, probe_path, probe_set, max_docs, pppl_tokens, seq_len, split
        )
        if baseline == "ngram":
            ngram = ngram_baseline(run, data, ngram_order, ngram_tokens, ngram_cache, max_docs)
            result["baseline"] = {"ngram": ngram}
        (run / "eval.json").write_text(json.dumps(result, indent=2))
        out[str(run)] = result
    return out


def checked_seq_len(run: Path, seq_len: int) -> int:
    """``seq_len`` if the run's model has positions for it; a clear refusal if not."""
    cfg_file = run / "model" / "config.json"
    model_cfg = json.loads(cfg_file.read_text()) if cfg_file.is_file() else {}
    limit = model_cfg.get("max_position_embeddings") or model_cfg.get("n_positions")
    if limit and seq_len > limit:
        raise UserError(
            f"'{run}': --seq-len {seq_len} is longer than the model's {limit} positions",
            f"Pass --seq-len {limit} or less",
        )
    return seq_len


@dataclass
class EvalData:
    """What a run is evaluated on: the split asked for (validation: train when that is under one block)."""

    corpus: Path
    split: str
    sep: int  # the document separator of the shards
    shard: object  # tokens.encode's memmapped split
    blocks: object  # fixed-length blocks of ``shard``, in order
    mask_spec: object  # BERT masking with EVAL_SEED
    words_per_token: float


def eval_data(run: Path, cfg, tok, objective: str, seq_len: int, split: str = "validation") -> EvalData:
    from domainlm.pretrain.objectives import OBJECTIVES, MaskSpec
    from domainlm.tokens.blocks import Blocks, block_spec, separator_id
    from domainlm.tokens.encode import encode_split

    layout = resolve("objective", objective, OBJECTIVES).block_layout
    if split not in SCORED_SPLITS:
        raise unknown_name("split", split, SCORED_SPLITS)
    sep = separator_id(layout, tok)
    shard = encode_split(cfg.corpus, run / "tokenizer", split, sep)
    if len(shard.tokens) < seq_len and split == "test":  # a test score is never quietly a train score
        raise UserError(
            f"'{cfg.corpus}': its test split has {len(shard.tokens)} tokens, less than one block of {seq_len}",
            "Score the validation split (--split validation), or prepare a corpus with more test documents",
        )
    if len(shard.tokens) < seq_len:
        split = "train"
        shard = encode_split(cfg.corpus, run / "tokenizer", split, sep)
    blocks = Blocks(shard, block_spec(layout, tok, seq_len), 0, shuffle=False)
    specials = [
        i
        for i in {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}
        if i is not None
    ]
    mask_id = tok.mask_token_id if tok.mask_token_id is not None else -1
    spec = MaskSpec(mask_id, len(tok), specials, EVAL_MASK_PROBABILITY, EVAL_SEED)
    corpus = Path(cfg.corpus)
    return EvalData(corpus, split, sep, shard, blocks, spec, words_per_token(corpus, split, tok))


def evaluate_run(
    run: Path,
    eval_batches: int | None,
    probe_path,
    probe_set,
    max_docs: int,
    pppl_tokens: int | None = None,
    seq_len: int | None = None,
    split: str = "validation",
):
    """(eval.json's content, the data it was measured on) for one run folder."""
    import contextlib
    import time

    import torch

    from domainlm import machine
    from domainlm.tokens.tokenizer import load_tokenizer

    cfg = _load_run(run)
    t0 = time.perf_counter()
    tok = load_tokenizer(run / "model")
    objective = _objective_of(run, cfg)
    seq_len = checked_seq_len(run, seq_len or cfg.train.seq_len)
    data = eval_data(run, cfg, tok, objective, seq_len, split)
    bf16 = machine.resolve_bf16(cfg.speed.bf16)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    n_batches = eval_batches or cfg.train.eval_batches
    result: dict = {
        "format_version": 2,
        "run": str(run),
        "objective": objective,
        "split": data.split,
        "mask_seed": EVAL_SEED,
        "bf16": bf16,
        "words_per_token": data.words_per_token,
        "seq_len": seq_len,
    }
    with torch.no_grad(), ctx:
        score = electra_scores if objective == "electra" else lm_scores
        scores, model = score(run, cfg, objective, data, n_batches, tok)
        result |= scores
        result["intrinsic"] = INTRINSIC.get(objective) or NOT_COMPARABLE
        if model is not None and max_docs > 0:
            texts = first_texts(cfg.corpus, data.split, max_docs)
            result |= document_scores(model, tok, objective, texts, seq_len, pppl_tokens)
        if model is not None and probe_set is not None and objective in PROBED:
            result |= probe_metrics(model, tok, PROBED[objective], probe_set)
            # a shipped set by its name (no path of this machine in eval.json), else the file as given
            shipped = {v: k for k, v in PROBE_SETS.items()}
            result["probe_file"] = shipped.get(probe_path, str(probe_path))
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result, data


def document_scores(
    model, tok, objective: str, texts: list[str], seq_len: int, pppl_tokens: int | None = None
) -> dict:
    """The per-character numbers of ``texts`` (bits.py): bits per character for a left-to-right
    likelihood, pseudo-log-likelihood (and per character) for a masked LM, nothing for T5."""
    from domainlm.evaluate.bits import causal_bits

    if INTRINSIC.get(objective) == "bits_per_char":
        return causal_bits(model, tok, texts, seq_len, kind=objective)
    if INTRINSIC.get(objective) == "pppl_bits_per_char":
        return pseudo_perplexity(model, tok, texts, seq_len, max_tokens=pppl_tokens)
    return {}


def load_model(run: Path, objective: str):
    """The run's ``model/`` with the transformers Auto class of its objective, or the RNN baseline."""
    import transformers

    from domainlm.pretrain.objectives import OBJECTIVES
    from domainlm.pretrain.rnn import is_rnn_folder, load_rnn

    if is_rnn_folder(run / "model"):
        return load_rnn(run / "model")
    auto = OBJECTIVES[objective].auto_model
    if auto is None:
        raise UserError(f"'{run}': objective {objective} has no model loader", "Evaluate an mlm/clm run")
    return getattr(transformers, auto).from_pretrained(str(run / "model"), local_files_only=True).eval()


def lm_scores(run: Path, cfg, objective: str, data: EvalData, n_batches: int, tok=None):
    """(metrics, model) of a masked, causal, permutation or span-corruption LM: the training loop's
    validation metrics, and for a causal LM the perplexity per word (the same total NLL spread over
    words instead of tokens)."""
    from domainlm.pretrain.metrics import lm_metrics

    model = load_model(run, objective)
    family = model.config.model_type
    sparse = cfg.speed.sparse_prediction
    m = lm_metrics(
        model, family, objective, data.blocks, data.mask_spec, cfg.train.batch_size, n_batches, sparse, tok
    )
    if objective == "clm":
        m["perplexity_word"] = math.exp(min(m["loss"] / data.words_per_token, 50))
    return m, model


def electra_scores(run: Path, cfg, objective: str, data: EvalData, n_batches: int, tok=None):
    """(metrics, generator or None): the discriminator's disc_* metrics and the generator's as
    ``generator_*`` (objectives.electra_metrics, the definitions the training loop logs)."""
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    from domainlm.pretrain.objectives import electra_metrics

    disc = ElectraForPreTraining.from_pretrained(str(run / "model"), local_files_only=True).eval()
    gen_dir = generator_dir(run)
    gen = ElectraForMaskedLM.from_pretrained(str(gen_dir), local_files_only=True).eval() if gen_dir else None
    m = electra_metrics(disc, gen, data.blocks, data.mask_spec, cfg.train.batch_size, n_batches)
    out = {k: v for k, v in m.items() if k.startswith("disc_")}
    out |= {
        "corruption": "generator" if gen is not None else "random",
        "generator": str(gen_dir) if gen_dir else None,
    }
    out |= {f"generator_{k}": v for k, v in m.items() if not k.startswith("disc_")}
    return out, gen  # probes and pseudo-perplexity use the generator, the only MLM here


def ngram_baseline(
    run: Path, data: EvalData, order: int, n_tokens: int, cache: dict, max_docs: int = 10
) -> dict:
    """The Kneser-Ney n-gram on the run's training tokens, scored on ``data`` (cached per tokenizer),
    and its bits per character on the first ``max_docs`` documents (at most ``n_tokens`` tokens)."""
    from domainlm.evaluate.ngram import fit_and_score, split_documents
    from domainlm.tokens.encode import encode_split
    from domainlm.tokens.tokenizer import load_tokenizer, tokenizer_hash

    key = tokenizer_hash(run / "tokenizer")
    if key not in cache:
        train_shard = encode_split(data.corpus, run / "tokenizer", "train", data.sep)
        r, lm = fit_and_score(
            split_documents(train_shard.tokens, data.sep),
            split_documents(data.shard.tokens, data.sep),
            order,
            n_tokens,
        )
        cache[key] = r.as_dict() | {
            "perplexity_word": math.exp(min(r.loss / data.words_per_token, 50)),
            "tokenizer": key,
        }
        cache[key] |= ngram_bits(lm, load_tokenizer(run / "tokenizer"), data, order, n_tokens, max_docs)
    return cache[key]


def ngram_bits(lm, tok, data: EvalData, order: int, n_tokens: int, max_docs: int) -> dict:
    """The n-gram's bits per character of the documents ``document_scores`` reads (bits.py): their
    tokens after the start symbols, no end symbol; characters counted up to the last token scored."""
    from domainlm.evaluate.bits import bits_result, chars_scored
    from domainlm.evaluate.ngram import score

    texts = first_texts(data.corpus, data.split, max_docs)
    docs = [[str(i) for i in tok(t, add_special_tokens=False)["input_ids"]] for t in texts]
    nll, counts = score(lm, docs, order, n_tokens, end=False)
    chars = sum(chars_scored(tok, t, k) for t, k in zip(texts, counts, strict=False))
    return bits_result(nll, chars, sum(counts), len(counts))


# the rows of the side-by-side table, in order: (key, label)
TABLE_ROWS = [
    ("objective", "objective"),
    ("loss", "loss / token"),
    ("accuracy", "masked accuracy"),
    ("perplexity", "perplexity / token"),
    ("perplexity_word", "perplexity / word"),
    ("pppl_token", "pseudo-perplexity / token"),
    ("pppl_word", "pseudo-perplexity / word"),
    ("bits_per_char", "bits / character"),
    ("pppl_bits_per_char", "pseudo-LL bits / character"),
    ("disc_accuracy", "discriminator accuracy"),
    ("disc_replaced_f1", "discriminator F1 (replaced)"),
    ("generator_accuracy", "generator masked accuracy"),
    ("generator_loss", "generator loss"),
    ("probe_top1", "probe top-1"),
    ("probe_top5", "probe top-5"),
    ("probe_coverage", "probe coverage"),
    ("words_per_token", "words / token"),
]


def side_by_side(results: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(column headers, rows) of one table: metrics as rows, runs (and n-gram baselines) as columns."""
    cols: list[tuple[str, dict]] = [(Path(r).name, res) for r, res in results.items()]
    seen = set()
    for r, res in results.items():
        ng = res.get("baseline", {}).get("ngram")
        if ng and ng["tokenizer"] not in seen:
            seen.add(ng["tokenizer"])
            cols.append(
                (
                    f"{ng['order']}-gram KN ({Path(r).name} tokens)",
                    {
                        "objective": "n-gram",
                        "loss": ng["loss"],
                        "perplexity": ng["perplexity"],
                        "perplexity_word": ng["perplexity_word"],
                        **({"bits_per_char": ng["bits_per_char"]} if "bits_per_char" in ng else {}),
                    },
                )
            )
    rows = []
    for key, label in TABLE_ROWS:
        if not any(key in c for _, c in cols):
            continue
        rows.append(
            [label]
            + [
                (f"{c[key]:.4g}" if isinstance(c[key], float) else str(c[key])) if key in c else "-"
                for _, c in cols
            ]
        )
    return ["metric"] + [name for name, _ in cols], rows
