"""Build the cloze probe set shipped for the demo corpus: src/domainlm/assets/constitution_probes.jsonl.

    PYTHONPATH=src python scripts/make_probes.py [--n 120]

Held-out sentences only: the demo corpus is prepared exactly as `domainlm demo` does (same package
data, same `prepare` defaults, hence the same seed-0 document split: document ids hash the file's path
relative to the input folder, so the split does not depend on --runs-dir or --name), and probes come
from its *test* split, which pretraining never reads. In each sentence of 8-40 words one word is masked: the first legal term
from TERMS if the sentence has one, otherwise the middle lowercase word of 5+ letters. The answer is
that word (matched case-insensitively by `domainlm evaluate --probes`). Deterministic: rerunning it
writes the same file. At most three probes per article.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

# Legal terms whose prediction needs domain knowledge (chosen by hand from the constitution's vocabulary).
TERMS = [
    "President",
    "Parliament",
    "Governor",
    "Legislature",
    "Constitution",
    "Union",
    "Court",
    "Council",
    "Assembly",
    "Commission",
    "law",
    "article",
    "clause",
    "Schedule",
    "citizen",
    "election",
    "tax",
    "Ministers",
    "Judge",
    "House",
    "order",
    "provisions",
    "appointed",
    "salary",
    "Government",
]


def probes_from(texts: list[str], n: int) -> list[dict]:
    out = []
    for text in texts:
        body = text.split("\n", 1)[-1]  # drop the "Article N. Title" line
        per_article = 0
        for sentence in re.split(r"(?<=[.;:])\s+", body):
            words = sentence.split()
            if not 8 <= len(words) <= 40:
                continue
            idx = next((i for i, w in enumerate(words) if i > 0 and w in TERMS), None)
            if idx is None:
                cands = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) >= 5]
                if not cands:
                    continue
                idx = cands[len(cands) // 2]
            answer = words[idx]
            words[idx] = "[MASK]"
            out.append({"text": " ".join(words), "answers": [answer]})
            per_article += 1
            if per_article == 3:  # at most three per article: more variety
                break
        if len(out) >= n:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument(
        "--output",
        default=str(Path(__file__).resolve().parents[1] / "src/domainlm/assets/constitution_probes.jsonl"),
    )
    args = ap.parse_args()
    from domainlm.corpus.documents import read_documents
    from domainlm.corpus.prepare import prepare
    from domainlm.demo import write_demo_corpus

    output = Path(args.output).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        # the same folder layout as `domainlm demo`, so this test split is the demo's test split
        base = Path(tmp) / "demo-data"
        raw = write_demo_corpus(base / "raw")
        prepare([raw.parent], base / "corpus")
        texts = [d["text"] for d in read_documents(base / "corpus", "test")]
    probes = probes_from(texts, args.n)
    with open(output, "w", encoding="utf-8") as f:
        for p in probes:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"{len(probes)} probes from {len(texts)} held-out articles -> {output}")


if __name__ == "__main__":
    main()
