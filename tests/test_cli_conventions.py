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
