"""``python -m qldm.data [--root DIR] [--split eval|tune|all]``: hair captioner accuracy and confusion."""

from qldm.data.hair_eval import main

raise SystemExit(main())
