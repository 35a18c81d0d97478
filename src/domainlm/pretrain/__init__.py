"""pretrain: train a language model on token blocks within a wall-clock budget.

``presets`` names the architectures (stock `transformers` classes), ``objectives`` the losses,
``loop`` is the one training loop, ``metrics`` its validation metrics, ``checkpoint`` the atomic,
exactly resumable checkpoints.
"""
