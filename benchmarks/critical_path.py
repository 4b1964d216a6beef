"""Launch and summarise the critical-path study (``experiments.critical_path``).

python benchmarks/critical_path.py --launch Fq0 Fc0 Fn0 --vae RUNS/vae64/vae --work RUNS
python benchmarks/critical_path.py            # summary of what is in benchmarks/results/critical_path/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.critical_path import job
from experiments.runs import run_job

RESULTS = Path(__file__).resolve().parent / "results" / "critical_path"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launch", nargs="*", default=[], help="run names, e.g. Fq0 Fc0 Fn0")
    parser.add_argument("--vae", help="the shared stage-1 VAE folder (a train-vae run's vae/)")
    parser.add_argument("--work", type=Path, default=Path("runs"), help="where run folders go")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.launch:
        if not args.vae:
            parser.error("--launch needs --vae")
        for name in args.launch:
            run_job(job(name, vae=args.vae), work=args.work, results=args.results)
        return
    from experiments.critical_path import report

    report(args.results)
    print((args.results / "summary.md").read_text())


if __name__ == "__main__":
    main()
