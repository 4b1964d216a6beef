"""``python -m qldm.data [--root DIR] [--split eval|tune|all]``: the same as ``qldm captioner-accuracy``."""

import sys

from qldm.cli import main

raise SystemExit(main(["captioner-accuracy", *sys.argv[1:]]))
