"""corpus: a messy folder of documents -> a clean, deduplicated corpus split by document.

``readers/`` read each format, ``clean`` normalises text, ``dedup`` drops exact and near copies,
``langid`` identifies the language, ``prepare`` runs them and writes the corpus folder, and
``documents`` reads that folder back (the format every later stage reads).
"""
