"""tokens: corpus text -> token ids.

``tokenizer`` trains and loads the domain tokenizer, ``encode`` turns a split into a memory-mapped
token array (cached), ``blocks`` cuts that array into the fixed-length training blocks.
"""
