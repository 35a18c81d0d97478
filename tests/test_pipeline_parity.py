"""A trained run's model/ is a standard HF folder: transformers.pipeline agrees with domainlm's evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from domainlm.evaluate.lm import evaluate, fill_mask
from domainlm.tokens.tokenizer import load_tokenizer
from tests.conftest import tiny_pretrain

SENTENCE = "The President shall be elected by the members of an electoral [MASK] ."


def pipeline_top1(model_dir, sentence: str) -> int:
    """Top-1 token id from transformers.pipeline in a fresh process, offline."""
    code = (
        "import json, sys; from transformers import pipeline; "
        "p = pipeline('fill-mask', model=sys.argv[1]); "
        "print(json.dumps(p(sys.argv[2])[0]['token']))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-c", code, str(model_dir), sentence],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_pipeline_top1_matches_domainlm(corpus_dir, bert_tokenizer, tmp_path):
    from transformers import AutoModelForMaskedLM

    res = tiny_pretrain(corpus_dir, tmp_path, tokenizer=bert_tokenizer, max_steps=40, name="parity")
    tok = load_tokenizer(res.model_dir)
    model = AutoModelForMaskedLM.from_pretrained(res.model_dir)
    ours = fill_mask(model, tok, SENTENCE)[0]
    assert pipeline_top1(res.model_dir, SENTENCE) == ours.token_id
    # evaluate writes eval.json with the validation metrics
    out = evaluate([res.run_dir])[str(res.run_dir)]
    assert 0.0 <= out["accuracy"] <= 1.0 and (res.run_dir / "eval.json").is_file()
