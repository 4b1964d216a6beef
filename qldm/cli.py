"""The ``qldm`` command. Each subcommand lives in its own module, imported only when that command runs.

A command module exposes ``add_arguments(parser)`` (cheap: no heavy imports), ``run(args) -> int`` and, optionally,
``parents() -> list[ArgumentParser]``: the shared option sets of :mod:`qldm.commands.common` it takes
(``--preset/--config/--set``, ``--out``, ``--no-progress/--verbose/--quiet``), so those options mean the same in every
command; and ``output_lock(args)``: the :class:`~qldm.train.runlock.RunLock` of what it writes (or None), held while it
runs, so a second writer of the same output is refused with one line before it does any work. ``--no-progress``,
``--verbose`` and ``--quiet`` also work before the command name; how much a command shows and its run-folder log are
set up by :mod:`qldm.logs`.

Errors: a bad argument, config value or input file, an OS error (missing, unreadable or read-only path, full disk),
running out of memory and a hardware job that failed after its retries each end the command with one line on
stderr, ``qldm CMD: error: ...``, and exit code 2 (1 for a failed hardware job); the global ``--debug`` flag shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import shlex
import sys
import typing
from pathlib import Path

from qldm.commands.common import add_output_options

__all__ = ["main", "COMMANDS", "RUN_FOLDER_COMMANDS"]

# name -> (module, one-line help). Every command lives in qldm.commands; a command module imports hardware or
# analysis only inside its functions, and only the chosen command's module is imported.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("qldm.commands.demo", "train the tiny preset on built-in faces and sample a grid (the main job)"),
    "train": ("qldm.commands.train", "train the hybrid latent diffusion model"),
    "train-vae": ("qldm.commands.train_vae", "train a small VAE on a data set (stage 1)"),
    "sample": ("qldm.commands.sample", "generate images from prompts"),
    "evaluate": ("qldm.commands.evaluate", "FID, spectra and prompt-attribute accuracy"),
    "ablate": ("qldm.commands.ablate", "does a trained model use Q? inference-time ablations with paired intervals"),
    "circuit": ("qldm.commands.circuit", "build a circuit spec and export/draw it"),
    "hardware": ("qldm.commands.hardware", "IBM backends: plan, transpile report, emulator checks"),
    "bp": ("qldm.commands.bp", "barren-plateau gradient-variance study"),
    "expressivity": ("qldm.commands.expressivity", "output spread, input-gradient norms and simulability of the Q-FFN"),
    "features": ("qldm.commands.features", "feature maps and gradient flow of a checkpoint's Q-FFN blocks"),
    "captioner-accuracy": ("qldm.commands.captioner", "hair-colour captioner against the hand labels"),
    "fid-separation": ("qldm.commands.separation", "does the FID feature extractor separate real from degraded?"),
    "config": ("qldm.commands.config", "show the effective run config (preset, then --config, then --set)"),
}

# commands whose --out is a folder they write: each keeps its transcript there (qldm.logs)
RUN_FOLDER_COMMANDS = frozenset({"demo", "train", "train-vae", "sample", "evaluate", "ablate", "features"})


def _load(name: str):
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            return None
        raise


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default after its help, unless the help already states it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == []
            or default == argparse.SUPPRESS
            or isinstance(action, argparse._VersionAction)
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default {shown.replace('%', '%%')})"


def _use_formatter(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every subparser below it the defaults-showing help formatter."""
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _use_formatter(sub)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), like every other error."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _version() -> str:
    from qldm import __version__

    return f"qldm {__version__}"


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="qldm", description="Hybrid quantum-classical latent diffusion on Qiskit.")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    add_output_options(parser, prefix="global_")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        module = _load(name) if name == wanted else None  # only the chosen command's module is imported
        parents = module.parents() if module is not None and hasattr(module, "parents") else []
        p = sub.add_parser(name, help=help_text, description=help_text, parents=parents)
        if module is not None:
            module.add_arguments(p)
    _use_formatter(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qldm`` console script. Returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = _load(args.command)
    if module is None:
        print(f"qldm {args.command}: this command is not available in this build", file=sys.stderr)
        return 2
    from qldm import logs

    for name in ("no_progress", "verbose", "quiet"):  # before or after the command name, the same
        setattr(args, name, bool(getattr(args, name, False) or getattr(args, f"global_{name}")))
    if args.verbose and args.quiet:
        parser.error("--verbose and --quiet exclude each other")
    args.no_progress = not logs.progress_wanted(no_progress=args.no_progress, quiet=args.quiet)
    folder = getattr(args, "out", None) if args.command in RUN_FOLDER_COMMANDS else None
    line = shlex.join(["qldm", *argv])

    def logged() -> int:  # the run-folder log starts once the output is ours: a refused writer leaves no file
        show = {"progress": not args.no_progress, "verbose": args.verbose, "quiet": args.quiet}
        with logs.session(line, **show, run_folder=folder):
            code = _guarded(args, lambda: int(module.run(args) or 0))
        if code == 2 and folder is not None:  # refused input: a transcript alone is not worth a new folder
            log = Path(folder) / logs.LOG_NAME
            if log.is_file() and not [p for p in Path(folder).iterdir() if p != log and not p.name.startswith(".")]:
                log.unlink()
        return code

    def locked() -> int:
        with _output_lock(module, args):
            return logged()

    return _guarded(args, locked)


def _guarded(args: argparse.Namespace, body: typing.Callable[[], int]) -> int:
    """``body()``, its expected errors turned into one line and an exit code (``--debug``: tracebacks as they are)."""
    if args.debug:
        return body()
    try:
        return body()
    except KeyboardInterrupt:
        print(f"qldm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - sorted below: expected errors are one line, bugs re-raised
        message, code = _expected_error(err)
        if message is None:
            raise
        print(f"qldm {args.command}: error: {message}", file=sys.stderr)
        return code


def _output_lock(module, args: argparse.Namespace) -> typing.ContextManager:
    lock = module.output_lock(args) if hasattr(module, "output_lock") else None
    return contextlib.nullcontext() if lock is None else lock


def _expected_error(err: Exception) -> tuple[str | None, int]:
    """``(one-line message, exit code)`` of an error a user can fix, ``(None, 0)`` for a bug (keeps its traceback).

    Input and configuration errors are ``ValueError`` (or a subclass); OS errors name the path; a hardware job
    that failed after its retries says how to collect it.
    """
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return _one_line(f"{err.strerror or err}{where}"), 2
    torch = sys.modules.get("torch")  # never imported here: only a command that loaded it can run out of its memory
    if isinstance(err, MemoryError) or (torch is not None and isinstance(err, torch.OutOfMemoryError)):
        reason = (str(err).strip().splitlines() or [""])[0]
        hint = "ask for less (fewer images, a smaller batch, circuit or model)"
        return _one_line(f"out of memory{': ' + reason if reason else ''}; {hint}"), 2
    if isinstance(err, ValueError):
        return _one_line(err), 2
    jobs = sys.modules.get("hardware.jobs")  # loaded only if a job ran; never imported here (it builds on qldm)
    if jobs is not None and isinstance(err, jobs.HardwareJobError):
        return _one_line(err), 1
    return None, 0


if __name__ == "__main__":
    sys.exit(main())
