"""What a command shows: progress bars only on a terminal (``TQDM_DISABLE``, ``--no-progress`` before or after the
command name), ``--verbose``/``--quiet``, and the transcript ``qldm.log`` in each run folder."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios
import warnings

import pytest

from qldm import logs
from qldm.cli import main

BP = ["bp", "--design", "none", "--n-qubits", "2", "--layers", "2", "--samples", "4", "--bootstrap", "10"]


def _in_terminal(argv: list[str], cwd, **env: str) -> str:
    """Run ``qldm argv`` with stdout and stderr on a pseudo-terminal; returns all it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen(
        [sys.executable, "-m", "qldm.cli", *argv],
        stdout=follower,
        stderr=follower,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def terminal_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tty")
    return {
        "bar": _in_terminal([*BP, "--out", "a.json"], tmp),
        "tqdm_disable": _in_terminal([*BP, "--out", "b.json"], tmp, TQDM_DISABLE="1"),
        "global_flag": _in_terminal(["--no-progress", *BP, "--out", "c.json"], tmp),
        "command_flag": _in_terminal([*BP, "--out", "d.json", "--no-progress"], tmp),
    }


def test_a_terminal_gets_a_progress_bar(terminal_runs):
    assert "bp points" in terminal_runs["bar"] and "\r" in terminal_runs["bar"].replace("\r\n", "")


@pytest.mark.parametrize("run", ["tqdm_disable", "global_flag", "command_flag"])
def test_bars_are_off_by_tqdm_disable_and_no_progress_before_or_after_the_command(terminal_runs, run):
    text = terminal_runs[run]
    assert "bp points" not in text and "\r" not in text.replace("\r\n", "")  # a terminal turns \n into \r\n
    assert "wrote" in text  # the command ran


def test_redirected_output_has_no_bar_frames(tmp_path):
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        subprocess.run(
            [sys.executable, "-m", "qldm.cli", *BP, "--out", "x.json"],
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            check=True,
            timeout=600,
        )
    text = (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()
    assert "wrote x.json" in text and "\r" not in text and "bp points" not in text


def test_progress_wanted_follows_the_rules(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert logs.progress_wanted(stream=Tty())
    assert not logs.progress_wanted(stream=Tty(), no_progress=True)
    assert not logs.progress_wanted(stream=Tty(), quiet=True)
    assert not logs.progress_wanted(stream=open(os.devnull, "w"))  # noqa: SIM115 - closed by the GC; a file
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not logs.progress_wanted(stream=Tty())


def test_quiet_hides_warnings_and_verbose_shows_info(capsys):
    with logs.session("qldm x", quiet=True):
        warnings.warn("a warning the user asked not to see", UserWarning, stacklevel=1)
        logging.getLogger("qldm.test").warning("a log warning")
    assert capsys.readouterr().err == ""
    with logs.session("qldm x"):
        logging.getLogger("qldm.test").info("an info line")
        logging.getLogger("qldm.test").warning("a log warning")
    err = capsys.readouterr().err
    assert "an info line" not in err and "a log warning" in err
    with logs.session("qldm x", verbose=True):
        logging.getLogger("qldm.test").info("an info line")
    assert "an info line" in capsys.readouterr().err


def test_verbose_and_quiet_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-v", "circuit", "-q"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_run_log_keeps_the_last_frame_and_waits_for_its_folder(tmp_path):
    log = logs.RunLog(tmp_path / "run", "# header")
    log.feed("err", "bar  10%\rbar  50%\rbar 100%\n")
    log.feed("out", "result ")
    assert not (tmp_path / "run").exists()  # a refused command leaves nothing behind
    (tmp_path / "run").mkdir()
    log.feed("out", "line\n")
    log.close()
    assert (tmp_path / "run" / "qldm.log").read_text() == "# header\nbar 100%\nresult line\n"


def test_train_writes_a_log_in_its_run_folder(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--preset", "micro", "--set", "sample.seeds=0", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "qldm.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr  # not a terminal: no bars, the libraries' included
    text = (out / "qldm.log").read_text()
    assert f"qldm train --preset micro --set sample.seeds=0 --out {out}" in text
    assert "trained 2 steps" in text and "\r" not in text


def test_run_log_takes_project_info_lines_and_library_warnings(tmp_path):
    with logs.session("qldm x", run_folder=tmp_path) as log:
        assert log is not None
        logging.getLogger("hardware.executor").info("submitted job abc")
        logging.getLogger("qiskit.passmanager").info("Pass: Optimize1qGates - 0.1 ms")
        logging.getLogger("qiskit.passmanager").warning("a library warning")
    text = (tmp_path / "qldm.log").read_text()
    assert "submitted job abc" in text and "a library warning" in text and "Optimize1qGates" not in text
