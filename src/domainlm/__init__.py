"""domainlm: train a language model on your own corpus on one CPU machine, end to end.

Every CLI subcommand is a plain function with the same arguments:
``domainlm prepare ...`` == ``domainlm.corpus.prepare.prepare(...)``. Functions are quiet and return a result;
the CLI prints.
"""

__version__ = "0.1.0"

FORMAT_VERSION = 1
