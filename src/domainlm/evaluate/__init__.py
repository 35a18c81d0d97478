"""evaluate: how good is a trained language model, against baselines.

``lm`` is the `domainlm evaluate` command (masked/causal metrics, pseudo-perplexity, probes,
fill-mask); ``ngram`` is the Kneser-Ney baseline.
"""
