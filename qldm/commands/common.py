"""Shared command-line pieces: the parent parsers every command takes its common options from, and the parsers of
common values (integer lists, backend names).

The options mean the same in every command:

- ``--preset/--config/--set``: the run config (a preset or a saved ``run_config.json``, then typed overrides);
- ``--out``: where the command writes (a file or a folder; never ``--json``);
- ``--no-progress``, ``--verbose``, ``--quiet``: how much the command shows (also before the command name).

One name has one meaning in every command: ``--steps`` counts denoising steps and ``--hardware-steps`` picks the
steps that run on a backend; ``--seed`` is one integer and ``--seeds`` a comma list of sampling seeds, each giving a
full image set; ``--batch-size`` is prompts per sampling batch; ``--n-qubits`` is data qubits (a comma list where the
command sweeps it, like ``--layers``); ``--n`` counts images. A renamed option keeps its old name for one release as
a hidden alias, :func:`deprecated_alias`, that prints one warning line.

A command module lists the parents it wants in ``parents()``; :mod:`qldm.cli` builds its subparser from them.
Number options are checked by their argparse ``type`` (:func:`positive_int`, :func:`nonnegative_int`,
:func:`finite_float`, ...), so a bad value is refused where it is parsed, before anything runs. :func:`reading`
turns a damaged or unreadable input file into one ``ValueError`` line naming it.

Imported while the parser is built, so it stays cheap: no torch, qiskit or model imports at module level.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "available_memory",
    "backend_name",
    "check_image_memory",
    "config_parent",
    "deprecated_alias",
    "finite_float",
    "int_at_least",
    "int_list",
    "nonnegative_float",
    "nonnegative_int",
    "out_parent",
    "positive_float",
    "positive_int",
    "progress_parent",
    "reading",
    "resolve_config",
    "unit_float",
    "word_list",
]


def config_parent(*, default_preset: str = "tiny") -> argparse.ArgumentParser:
    """A parent parser with ``--preset``, ``--config`` and repeatable ``--set key=value``, layered in that order."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("run config (layered: preset, then --config, then --set)")
    group.add_argument(
        "--preset",
        help=f"starting preset: tiny | anime64 | paper | micro (default {default_preset}; with --config and no "
        "--preset, the dataclass defaults under the file)",
    )
    group.add_argument(
        "--config",
        help="a JSON or YAML config file (or a run directory's run_config.json) layered over the preset: "
        "it need only hold the keys it changes",
    )
    group.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=3 --set model.qffn.n_qubits=4 (repeatable)",
    )
    parser.set_defaults(default_preset=default_preset)
    return parser


def out_parent(*, help: str, default: str | None = None) -> argparse.ArgumentParser:
    """A parent parser with ``--out`` (required unless a ``default`` is given)."""
    parser = argparse.ArgumentParser(add_help=False)
    if default is None:
        parser.add_argument("--out", required=True, help=help)
    else:
        parser.add_argument("--out", default=default, help=f"{help} (default {default})")
    return parser


def progress_parent() -> argparse.ArgumentParser:
    """A parent parser with ``--no-progress``, ``--verbose`` and ``--quiet`` (see :mod:`qldm.logs`)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_output_options(parser)
    return parser


def add_output_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """``--no-progress``, ``--verbose`` and ``--quiet`` on ``parser``, stored as ``<prefix>no_progress``, ...

    ``qldm`` itself takes them too (``qldm --quiet CMD``), under a prefix, since a subcommand's own defaults would
    overwrite values parsed before the command name.
    """
    parser.add_argument(
        "--no-progress",
        dest=f"{prefix}no_progress",
        action="store_true",
        help="no progress bars (also off when stderr is not a terminal or TQDM_DISABLE is set)",
    )
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument(
        "-v",
        "--verbose",
        dest=f"{prefix}verbose",
        action="store_true",
        help="also show info lines of qldm and libraries",
    )
    loud.add_argument(
        "-q",
        "--quiet",
        dest=f"{prefix}quiet",
        action="store_true",
        help="results and errors only: no bars, no warnings",
    )


class _DeprecatedAlias(argparse.Action):
    """Stores like the option it stands for, after one warning line on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and goes in the next release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: argparse.Action) -> None:
    """Accept ``old`` as a deprecated name of the option ``new`` (same destination, type and choices).

    The alias is hidden from ``--help``; using it prints one warning line naming the new option.
    """
    parser.add_argument(
        old,
        dest=new.dest,
        action=_DeprecatedAlias,
        new=new.option_strings[-1],
        type=new.type,
        choices=new.choices,
        metavar=new.metavar,
        default=argparse.SUPPRESS,  # the new option's default stands
        help=argparse.SUPPRESS,
    )


def resolve_config(args: argparse.Namespace):
    """The run config the options describe: the preset, the ``--config`` file over it, then ``--set``, validated.

    Without ``--preset``, a ``--config`` file stands on the dataclass defaults (a saved ``run_config.json`` is
    complete, and loads as it was saved); with neither, the default preset is used.

    Raises:
        ValueError: On an unknown preset, key or value type, or an invalid combination.
        FileNotFoundError: If ``--config`` names no file.
    """
    from qldm.config import apply_overrides, load_config, make_preset

    preset, config = getattr(args, "preset", None), getattr(args, "config", None)
    if config:
        base = load_config(Path(config), base=make_preset(preset) if preset else None)
    else:
        base = make_preset(preset or getattr(args, "default_preset", "tiny"))
    return apply_overrides(base, list(args.overrides))


def backend_name(name: str, *, kinds: tuple[str, ...] = ("aer", "aer-noise", "fake", "ibm")) -> str:
    """``name`` checked by :func:`hardware.backends.parse_backend_name` (the one backend-name parser).

    Called from a command's ``run`` (not as an argparse ``type``), so a bad name is one ``qldm CMD: error:`` line.

    Raises:
        ValueError: ``BackendError`` on a malformed or unknown name, or a kind outside ``kinds``.
    """
    from hardware.backends import parse_backend_name

    parse_backend_name(name, kinds=kinds)
    return name


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``low``; raises ``argparse.ArgumentTypeError`` otherwise."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # counts, sizes, steps
nonnegative_int = int_at_least(0)  # seeds, timesteps


def finite_float(text: str) -> float:
    """A finite float, not NaN or infinite (an argparse ``type``). Raises ``argparse.ArgumentTypeError``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite float >= 0 (an argparse ``type``: guidance scales). Raises ``argparse.ArgumentTypeError`` otherwise."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0 (an argparse ``type``). Raises ``argparse.ArgumentTypeError`` otherwise."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def unit_float(text: str) -> float:
    """A float in (0, 1] (an argparse ``type``). Raises ``argparse.ArgumentTypeError`` otherwise."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """``"2,4,6"`` -> ``[2, 4, 6]``, every item >= 1 (an argparse ``type``: counts of qubits, layers, ...).

    Raises:
        argparse.ArgumentTypeError: If an item is not a positive integer or the list is empty.
    """
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def seed_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct integers >= 0 (an argparse ``type`` for sampling seeds).

    Raises:
        argparse.ArgumentTypeError: If an item is not an integer >= 0, an item repeats, or the list is empty.
    """
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0, got {text!r}")
    return values


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn a damaged input (truncated weights, garbled JSON, unreadable file) into one line naming ``path``.

    A missing file keeps its own ``FileNotFoundError`` (already one clear line). The loading bars of diffusers and
    transformers are off inside the block: they would leave half-drawn lines on stderr above an error.

    Raises:
        ValueError: ``cannot read <path>: <reason>`` for any other error while the block loads ``path``.
    """
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    bars = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in bars:
        lib.disable_progress_bar()
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - loaders raise many kinds (OSError, SafetensorError, JSON, torch)
        if isinstance(err, ValueError) and str(err).startswith("cannot read "):
            raise
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot read {path}: {type(err).__name__}: {reason}") from err
    finally:
        for lib, enabled in bars:
            if enabled:
                lib.enable_progress_bar()


def word_list(text: str) -> list[str]:
    """``"none, per-qubit"`` -> ``["none", "per-qubit"]`` (an argparse ``type``)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def available_memory() -> int | None:
    """Bytes of memory a new allocation can use now (``MemAvailable``, else free pages), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def check_image_memory(count: int, image_size: int, *, copies: int, what: str) -> None:
    """Refuse up front a request for ``count`` float32 RGB images that would not fit in the memory available now.

    Args:
        count: Images the command keeps in memory at once.
        image_size: Their side in pixels.
        copies: How many float32 copies of them the command holds at its peak (e.g. a list plus a stacked grid).
        what: How the message names the request (``"--n 4 x 2 prompt(s)"``).

    Raises:
        ValueError: With the estimate and what is available, if it exceeds the available memory.
    """
    need = count * image_size * image_size * 3 * 4 * copies
    free = available_memory()
    if free is not None and need > free:
        raise ValueError(
            f"{what} = {count} images of {image_size}x{image_size} would hold about {_bytes(need)} in memory, more "
            f"than the {_bytes(free)} available; ask for fewer images per run (another --seed continues the series)"
        )
