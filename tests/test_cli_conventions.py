"""Command-line conventions: instant ``--version``/``--help``, help text and defaults on every option."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from qldm import cli

HEAVY = ("torch", "sympy", "qiskit", "diffusers", "transformers", "numpy")


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command path, parser, action)`` for every option of ``parser`` and of its subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            yield path, parser, action


def _all_options():
    for name in cli.COMMANDS:
        for path, parser, action in _options(cli.build_parser([name])):
            if path[:1] == (name,):
                yield path, parser, action


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["sample", "--help"], ["hardware", "plan", "--help"]])
def test_version_and_help_import_nothing_heavy(argv, tmp_path):
    """``qldm --version`` and ``--help`` stay instant: they import no torch, sympy, qiskit or diffusers."""
    script = (
        "import sys\nfrom qldm.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []", out.stdout + out.stderr


def test_import_qldm_is_lazy_but_complete():
    script = (
        "import sys, qldm\nassert 'torch' not in sys.modules\n"
        "from qldm import QuantumLayer, make_executor\nassert 'torch' in sys.modules\nprint(QuantumLayer.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "QuantumLayer", out.stderr


def test_every_option_has_help():
    missing = [f"{' '.join(p)} {a.option_strings[0]}" for p, _, a in _all_options() if not (a.help or "").strip()]
    assert not missing


def test_help_shows_every_default():
    """Each option with a default names it in its help line (``qldm CMD --help``)."""
    hidden = []
    for path, parser, action in _all_options():
        d = action.default
        if d is None or d is False or d == [] or d == argparse.SUPPRESS:
            continue
        text = parser._get_formatter()._expand_help(action) if action.help else ""
        shown = ",".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
        if shown not in text.replace(", ", ","):
            hidden.append(f"{' '.join(path)} {action.option_strings[0]}: {text!r}")
    assert not hidden, "\n".join(hidden)


# ---------------------------------------------------------------- one meaning per option name


def test_old_option_names_are_hidden_aliases():
    """Renamed options keep working under their old names but no longer show in ``--help``."""
    renamed = {
        ("demo",): {"--batch", "--samples"},
        ("bp",): {"--qubits"},
        ("expressivity",): {"--qubits"},
        ("hardware", "plan"): {"--steps", "--blocks", "--json"},
        ("fid-separation",): {"--json"},
    }
    for path, _parser, action in _all_options():
        old = renamed.get(path, set()) & set(action.option_strings)
        if old:
            assert action.help == argparse.SUPPRESS, (path, old)
        elif action.help != argparse.SUPPRESS:
            visible = set(action.option_strings)
            assert not visible & {"--batch", "--qubits", "--json", "--blocks"}, (path, visible)
            assert not ("--steps" in visible and "hardware" in path), path


def _parses(action: argparse.Action, text: str) -> object:
    try:
        return (action.type or str)(text)
    except (argparse.ArgumentTypeError, ValueError):
        return None


def test_a_name_means_one_thing_across_commands():
    """``--steps`` always counts denoising steps (``last:5`` is ``--hardware-steps``), ``--seed`` is one integer and
    ``--seeds`` a list, ``--n-qubits`` counts data qubits (one or a list)."""
    seen = set()
    for path, _, action in _all_options():
        if action.help == argparse.SUPPRESS:
            continue
        names = set(action.option_strings)
        seen |= names
        where = " ".join(path)
        if names & {"--steps", "--seed", "--batch-size", "--n"}:
            assert _parses(action, "30") == 30 and _parses(action, "last:5") is None, where
        if "--seeds" in names:
            assert _parses(action, "0,1") in ([0, 1], "0,1"), where
        if "--n-qubits" in names:
            assert _parses(action, "4") in (4, [4]), where
        if "--hardware-steps" in names:
            assert _parses(action, "last:5") == "last:5", where
    assert {"--steps", "--hardware-steps", "--seed", "--seeds", "--n-qubits", "--batch-size"} <= seen


def test_deprecated_name_stores_like_the_new_one_with_one_warning(capsys):
    argv = ["demo", "--batch", "7", "--samples", "9"]
    args = cli.build_parser(argv).parse_args(argv)
    assert (args.batch_size, args.n) == (7, 9)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "--batch is deprecated" in err[0] and "--batch-size" in err[0]
    assert "--samples is deprecated" in err[1] and "use --n" in err[1]
    argv = ["hardware", "plan", "--backend", "aer", "--steps", "all", "--json", "p.json", "--blocks", "all"]
    args = cli.build_parser(argv).parse_args(argv)
    assert (args.hardware_steps, args.out, args.hardware_blocks) == ("all", "p.json", "all")
    assert len(capsys.readouterr().err.strip().splitlines()) == 3


def test_renamed_hardware_plan_options_give_the_same_plan(tmp_path, capsys):
    common = ["hardware", "plan", "--backend", "fake:FakeManilaV2", "--preset", "micro"]
    assert cli.main([*common, "--hardware-steps", "last:2", "--out", str(tmp_path / "new.json")]) == 0
    assert cli.main([*common, "--steps", "last:2", "--json", str(tmp_path / "old.json")]) == 0
    assert (tmp_path / "new.json").read_text() == (tmp_path / "old.json").read_text()
    assert "deprecated" in capsys.readouterr().err
