"""Each option is declared once: every flag is a config key, its help is the Field's description, and the
value given on the command line arrives at that key (no silent mis-wiring); a saved config reproduces a run."""

from __future__ import annotations

import importlib
import inspect
import json
import typing

import click
import pytest
from click.testing import CliRunner

from domainlm import config as cfgmod
from domainlm.cli import SPECS, Flag, Spec, cli, field_of, scalar_type

# values a validator insists on (durations, a known objective); everything else is generated below
SAMPLES = {"budget": "7m", "train.budget": "7m", "model.objective": "clm", "screen": "3m"}


class Stop(Exception):
    """Raised by a spy once it has seen what it needs: the command goes no further."""

    def __init__(self, seen):
        super().__init__("stopped by the test")
        self.seen = seen


def _field(spec: Spec, f: Flag):
    return field_of(spec.section_of(f), f.key)


def _sample(key: str, field, i: int):
    """(command-line words, expected value) for a value of ``field`` that is not its default."""
    if key in SAMPLES:
        return [SAMPLES[key]], SAMPLES[key]
    base, is_list = scalar_type(field.annotation)
    default = field.get_default(call_default_factory=True)
    literal = [a for a in typing.get_args(field.annotation) if typing.get_origin(a) is typing.Literal]
    if typing.get_origin(field.annotation) is typing.Literal or literal:
        choices = typing.get_args(literal[0] if literal else field.annotation)
        choice = next(c for c in choices if c != default)
        return [choice], choice
    if is_list:
        return [f"a{i},b{i}"], [f"a{i}", f"b{i}"]
    lo = next(
        (getattr(m, a) for m in field.metadata for a in ("ge", "gt") if getattr(m, a, None) is not None), 0
    )
    if base is int:
        value = int(lo) + 2 + i
    elif base is float:
        value = round(float(lo) + 0.01 * (i + 1), 4)
    else:
        value = f"v{i}"
    return [str(value)], value


def _argv(spec: Spec, flags: list[Flag]) -> tuple[list[str], dict[str, typing.Any]]:
    """The words that set every flag in ``flags`` to a distinct non-default value, and the values."""
    words: list[str] = []
    expected: dict[str, typing.Any] = {}
    for i, f in enumerate(flags):
        field = _field(spec, f)
        if scalar_type(field.annotation)[0] is bool:
            default = field.get_default()
            value = not default if default is not None else True
            words.append(f.flag if value else (f.off or "--no-" + f.flag[2:]))
            expected[f.key] = value
            continue
        w, v = _sample(f.key, field, i)
        words += [f.flag, *w]
        expected[f.key] = v
    return words, expected


ARGS = {  # the positional arguments of each command (nothing is read before the config is resolved)
    "prepare": ["x"],
    "tokenizer": ["x"],
    "recommend": ["x"],
    "pretrain": ["x"],
    "evaluate": ["x"],
    "finetune": ["x", "y"],
    "demo": [],
    "export": ["x"],
    "serve": ["x"],
}


def _library(spec: Spec):
    module, name = spec.library.split(":")
    return importlib.import_module(module), name


def test_every_command_has_a_spec_and_every_spec_a_command():
    assert set(cli.commands) == set(SPECS) == set(ARGS)


@pytest.mark.parametrize("name", SPECS)
def test_every_flag_is_a_config_key_and_its_help_is_the_field_description(name):
    spec = SPECS[name]
    command = cli.commands[name]
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for f in spec.flags:
        field = _field(spec, f)
        assert field is not None, f"{name} {f.flag}: no config key {f.key}"
        assert field.description, f"{name} {f.key}: the Field needs a description (it is the help)"
        help_text = options[f.dest].help
        assert help_text == field.description or help_text.startswith(field.description + " ("), (
            f,
            help_text,
        )
        assert f.flag in options[f.dest].opts
    known = {f.dest for f in spec.flags} | {"config", "overrides"}
    assert set(options) - known == set(), "a flag that is not in SPECS"


@pytest.mark.parametrize("name", SPECS)
def test_every_flag_is_a_keyword_of_the_library_function(name):
    spec = SPECS[name]
    module, fn = _library(spec)
    params = inspect.signature(getattr(module, fn)).parameters
    for f in spec.flags:
        if not f.cli_only:
            assert f.dest in params, f"{name}: {spec.library} has no keyword {f.dest} for {f.flag}"
    if spec.config is not None and spec.yaml:
        assert {"config", "overrides"} <= set(params)


@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.config is None])
def test_library_defaults_equal_the_field_defaults(name):
    """Where the library function keeps its own defaults (no config section), they cannot drift."""
    spec = SPECS[name]
    module, fn = _library(spec)
    params = inspect.signature(getattr(module, fn)).parameters
    for f in spec.flags:
        assert params[f.dest].default == _field(spec, f).get_default(call_default_factory=True), f


@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.config is not None])
def test_each_config_flag_arrives_at_its_key(name, monkeypatch):
    """Every config flag of the command at once, each a different value: the config the library resolves
    holds each value at the flag's key (two swapped keywords or keys would fail here)."""
    spec = SPECS[name]
    flags = [f for f in spec.flags if spec.section_of(f) is spec.config]
    words, expected = _argv(spec, flags)
    real_build = cfgmod.build

    def spy(cls, *layers):
        built = real_build(cls, *layers)
        if cls is spec.config:
            raise Stop(built)
        return built

    monkeypatch.setattr(cfgmod, "build", spy)
    res = CliRunner().invoke(cli, [name, *ARGS[name], *words])
    assert isinstance(res.exception, Stop), (res.output, res.exception)
    cfg = res.exception.seen
    for key, value in expected.items():
        got = cfg
        for part in key.split("."):
            got = getattr(got, part)
        assert got == value, (key, got, value)


@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.options is not None])
def test_each_option_flag_arrives_at_its_keyword(name, monkeypatch):
    spec = SPECS[name]
    flags = [f for f in spec.flags if spec.section_of(f) is spec.options and not f.cli_only]
    words, expected = _argv(spec, flags)
    module, fn = _library(spec)

    def fake(**kwargs):
        raise Stop(kwargs)

    monkeypatch.setattr(module, fn, fake)
    res = CliRunner().invoke(cli, [name, *ARGS[name], *words])
    assert isinstance(res.exception, Stop), (res.output, res.exception)
    for f in flags:
        assert res.exception.seen[f.dest] == expected[f.key], f


def test_every_config_field_has_a_description():
    """The Field description is the single source of a setting's help (flags, docs)."""
    from domainlm.serve.limits import ServeConfig

    sections = [c for c in vars(cfgmod).values() if isinstance(c, type) and issubclass(c, cfgmod.Section)]
    sections.append(ServeConfig)
    missing = [
        f"{c.__name__}.{k}"
        for c in sections
        if c is not cfgmod.Section
        for k, f in c.model_fields.items()
        if not f.description
    ]
    assert missing == []


def test_a_saved_config_reproduces_the_run(corpus_dir, bert_tokenizer, tmp_path):
    """A tiny pretrain from flags, then `pretrain --config runs/a/config.yaml` elsewhere: the same resolved
    config and the same weights at the same step."""
    from safetensors.torch import load_file

    from domainlm.cli import main

    def run(*args):
        try:
            main(["pretrain", *args])
        except SystemExit as e:  # main returns on success; an error exits 1 or 2
            raise AssertionError(f"pretrain {args} exited {e.code}") from None

    run(
        str(corpus_dir),
        "--tokenizer",
        str(bert_tokenizer),
        "--preset",
        "bert-tiny",
        "--max-steps",
        "3",
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--lr",
        "0.002",
        "--name",
        "a",
        "--runs-dir",
        str(tmp_path / "one"),
        "--set",
        "train.eval_batches=1",
    )
    first = tmp_path / "one" / "a"
    run("--config", str(first / "config.yaml"), "--runs-dir", str(tmp_path / "two"))
    second = tmp_path / "two" / "a"
    a = cfgmod.read_run_config(first).model_dump()
    b = cfgmod.read_run_config(second).model_dump()
    assert a.pop("runs_dir") != b.pop("runs_dir")
    assert a == b and a["train"]["max_steps"] == 3 and a["train"]["lr"] == 0.002
    for run_dir in (first, second):
        summary = json.loads((run_dir / "train_summary.json").read_text())
        assert summary["steps"] == 3 and summary["stopped_by"] == "max_steps"
    wa, wb = (
        load_file(first / "model" / "model.safetensors"),
        load_file(second / "model" / "model.safetensors"),
    )
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] == wb[k]).all(), k
