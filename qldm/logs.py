"""How much a command shows on the terminal, and the log file it leaves in its run folder.

- Progress bars only on a terminal: off when stderr is redirected, when ``TQDM_DISABLE`` is set (tqdm's own
  variable, non-empty as tqdm reads it), or with ``--no-progress`` or ``--quiet``. Off means the libraries' bars too
  (diffusers, transformers, huggingface_hub), so redirected output carries no ``\\r`` frames.
- ``--verbose`` adds the info lines of qldm and of the libraries (diffusers, transformers); ``--quiet`` leaves the
  results and errors only (no bars, no warnings).
- A command that writes a run folder keeps a transcript there, ``qldm.log``: the command line, then everything it
  printed (results, warnings, errors, the last frame of each progress bar) and its info lines even when they were not
  shown. The file is opened only once the command has made the folder, so a refused command leaves nothing behind;
  in a multi-process run only the main process writes it.

Imported by :mod:`qldm.cli` before every command, so it stays cheap: standard library only.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["LOG_NAME", "RunLog", "progress_wanted", "session"]

LOG_NAME = "qldm.log"
_LIBRARIES = ("diffusers", "transformers")
_PROJECT_LOGGERS = ("qldm", "hardware", "analysis", "circuits")
# read when tqdm and huggingface_hub are first imported, which is after a command starts
_NO_BARS_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def progress_wanted(*, no_progress: bool = False, quiet: bool = False, stream: IO[str] | None = None) -> bool:
    """Whether progress bars should be drawn on ``stream`` (default ``sys.stderr``).

    False with ``no_progress`` or ``quiet``, when ``TQDM_DISABLE`` is non-empty (tqdm's rule), or when the stream is
    not a terminal (a file or a pipe would collect every redrawn frame).
    """
    stream = sys.stderr if stream is None else stream
    if no_progress or quiet or os.environ.get("TQDM_DISABLE"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class RunLog:
    """The transcript of one command in ``folder/qldm.log``, appended, opened once ``folder`` exists.

    Lines are held in memory until then; :meth:`close` drops them if the folder never appeared.

    Args:
        folder: The run folder.
        header: The first line (what ran, when).
    """

    def __init__(self, folder: str | os.PathLike, header: str) -> None:
        self.path = Path(folder) / LOG_NAME
        self._file: IO[str] | None = None
        self._pending = [header]
        self._partial: dict[str, str] = {}

    def feed(self, key: str, text: str) -> None:
        """Text written to stream ``key``: complete lines are logged, each as its last ``\\r`` frame."""
        *lines, self._partial[key] = (self._partial.get(key, "") + text).split("\n")
        for line in lines:
            frame = line.rsplit("\r", 1)[-1].rstrip()
            if frame or "\r" not in line:  # a bar that cleared itself leaves no empty line
                self.line(frame)

    def line(self, text: str) -> None:
        """Log one line."""
        self._pending.append(text)
        if self._file is None:
            if not self.path.parent.is_dir():
                return
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write("".join(f"{t}\n" for t in self._pending))
        self._file.flush()  # a killed run keeps its log up to the kill
        self._pending.clear()

    def close(self) -> None:
        """Log unfinished lines and close the file (a no-op for the file if the folder was never made)."""
        for key in list(self._partial):
            rest = self._partial.pop(key).rsplit("\r", 1)[-1].rstrip()
            if rest:
                self.line(rest)
        if self._file is not None:
            self._file.close()
            self._file = None


class _Tee:
    """A text stream that writes to ``stream`` and feeds the same text to a :class:`RunLog`."""

    def __init__(self, stream: IO[str], log: RunLog, key: str) -> None:
        self._stream, self._log, self._key = stream, log, key

    def write(self, text: str) -> int:
        self._stream.write(text)
        self._log.feed(self._key, text)
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...: the terminal's
        return getattr(self._stream, name)


class _LogHandler(logging.Handler):
    """Sends log records to a :class:`RunLog`: the project's info lines even when the terminal does not show them
    (job ids, for one), and the libraries' from warnings up (their info lines, e.g. every transpiler pass, only
    with ``everything``)."""

    def __init__(self, log: RunLog, *, everything: bool = False) -> None:
        super().__init__(logging.DEBUG)
        self._log, self._everything = log, everything

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name.split(".")[0] in _PROJECT_LOGGERS
        return (ours or self._everything or record.levelno >= logging.WARNING) and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._log.line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never end a command
            self.handleError(record)


def _is_main_process() -> bool:
    """False in a non-zero rank of a torchrun/accelerate launch (they set ``RANK``)."""
    return os.environ.get("RANK", "0") in ("", "0")


@contextmanager
def session(
    command_line: str,
    *,
    progress: bool = True,
    verbose: bool = False,
    quiet: bool = False,
    run_folder: str | os.PathLike | None = None,
) -> Iterator[RunLog | None]:
    """Set up how much a command shows, and its run-folder log, for the duration of the block.

    Restores every setting it changes on exit (the test suite calls commands in one process).

    Args:
        command_line: The command as typed, for the log's first line.
        progress: Leave the libraries' progress bars on; False turns them off (the command's own bars follow its
            ``--no-progress``, which :func:`progress_wanted` sets).
        verbose: Show info lines (qldm's and the libraries').
        quiet: Show results and errors only (warnings are ignored).
        run_folder: Where the command writes its run; ``None`` for no log file.

    Yields:
        The :class:`RunLog`, or ``None`` without a run folder (or in a non-main process).
    """
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    root = logging.getLogger()
    saved_level = root.level
    terminal = logging.StreamHandler(sys.stderr)  # the real stderr: log lines reach the file once, by _LogHandler
    terminal.setLevel(level)
    terminal.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    log = None
    if run_folder is not None and _is_main_process():
        from qldm import __version__

        log = RunLog(run_folder, f"# {time.strftime('%Y-%m-%d %H:%M:%S')} qldm {__version__}, process {os.getpid()}")
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        if quiet:
            warnings.simplefilter("ignore")
        root.addHandler(terminal)
        stack.callback(root.removeHandler, terminal)
        root.setLevel(min(level, logging.INFO) if log is not None else level)
        stack.callback(root.setLevel, saved_level)
        stack.callback(_library_verbosity("info" if verbose else "error" if quiet else None))
        if not progress:
            stack.callback(_library_bars_off())
        if log is not None:
            handler = _LogHandler(log, everything=verbose)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
            root.addHandler(handler)
            stack.callback(root.removeHandler, handler)
            stack.callback(log.close)
            out, err = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = _Tee(out, log, "out"), _Tee(err, log, "err")
            stack.callback(setattr, sys, "stderr", err)
            stack.callback(setattr, sys, "stdout", out)
        logging.getLogger("qldm").info("%s", command_line)
        yield log


def _library_bars_off() -> Callable[[], None]:
    """Turn off the progress bars of tqdm users that load later (environment) and of the already imported libraries
    that keep their own switch; returns the undo."""
    env = {key: os.environ.get(key) for key in _NO_BARS_ENV}
    os.environ.update(_NO_BARS_ENV)
    switched = []
    for lib in _LIBRARIES:
        module = sys.modules.get(f"{lib}.utils.logging")
        if module is not None and module.is_progress_bar_enabled():
            module.disable_progress_bar()
            switched.append(module.enable_progress_bar)
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        switched.append(hub.enable_progress_bars)

    def undo() -> None:
        _restore_env(env)
        for enable in switched:
            enable()

    return undo


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _library_verbosity(name: str | None) -> Callable[[], None]:
    """Set diffusers' and transformers' verbosity (``"info"``, ``"error"``; ``None`` leaves it); returns the undo.

    Both read ``<LIB>_VERBOSITY`` when first imported (the libraries load after the command starts); one already
    imported is set through its own setter.
    """
    if name is None:
        return lambda: None
    env = {f"{lib.upper()}_VERBOSITY": os.environ.get(f"{lib.upper()}_VERBOSITY") for lib in _LIBRARIES}
    modules = [m for lib in _LIBRARIES if (m := sys.modules.get(f"{lib}.utils.logging")) is not None]
    levels = [(m, m.get_verbosity()) for m in modules]
    for key in env:
        os.environ[key] = name
    for module in modules:
        module.set_verbosity(getattr(module, name.upper()))

    def undo() -> None:
        _restore_env(env)
        for module, level in levels:
            module.set_verbosity(level)

    return undo
