"""``qldm circuit``: build a circuit spec, print its summary, export QPY/QASM3 and draw it."""

from __future__ import annotations

import argparse

from qldm.commands.common import nonnegative_int, positive_int, progress_parent


def parents() -> list[argparse.ArgumentParser]:
    return [progress_parent()]  # accepted like everywhere; building a circuit shows no progress bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=["qffn", "bp"], default="qffn", help="circuit family")
    parser.add_argument("--n-qubits", type=positive_int, default=4, help="data qubits")
    parser.add_argument("--layers", type=positive_int, default=2, help="layers")
    parser.add_argument("--ancillas", default="per-qubit", help="per-qubit | shared | none")
    parser.add_argument("--readout", default="ring", help="qffn only: ring | local")
    parser.add_argument("--observable", default="z0z1", help="bp only: z0z1 | global | local")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="bp only: seed of the random gate axes")
    parser.add_argument("--qpy", help="write the circuit as QPY to this path")
    parser.add_argument("--qasm3", help="write the circuit as OpenQASM 3 to this path")
    parser.add_argument("--draw", help="draw the circuit (matplotlib) to this PNG path")


def run(args: argparse.Namespace) -> int:
    import circuits

    if args.kind == "qffn":
        spec = circuits.qffn_circuit(args.n_qubits, args.layers, ancillas=args.ancillas, readout=args.readout)
    else:
        spec = circuits.bp_circuit(
            args.n_qubits, args.layers, ancillas=args.ancillas, observable=args.observable, seed=args.seed
        )
    if args.draw:
        _check_drawable(spec.circuit)  # before any output: the drawing is what can exhaust memory
    ops = spec.circuit.count_ops()
    print(spec)
    print(f"fingerprint {spec.fingerprint()}  depth {spec.circuit.depth()}  gates {dict(ops)}")
    if args.qpy:
        print("wrote", circuits.to_qpy(spec, args.qpy))
    if args.qasm3:
        circuits.to_qasm3(spec, args.qasm3)
        print("wrote", args.qasm3)
    if args.draw:
        circuits.draw(spec, args.draw)
        print("wrote", args.draw)
    return 0


# The matplotlib drawing folds the circuit every 40 layers; each wire row of each fold is about 235 px high at the
# 120 dpi it is saved with, and a fold is about 3250 px wide. Rendering takes about 12 bytes per pixel, so the limit
# keeps a drawing near 1 GiB of memory.
_FOLD, _ROW_PX, _FOLD_PX, _BYTES_PER_PX = 40, 235, 3250, 12
DRAW_LIMIT_MEGAPIXELS = 100


def _check_drawable(circuit) -> None:
    """Refuse a drawing whose estimated size exceeds :data:`DRAW_LIMIT_MEGAPIXELS`, with the estimate.

    Raises:
        ValueError: If the estimated image is too large.
    """
    wires, depth = circuit.num_qubits, circuit.depth()
    folds = max(1, -(-depth // _FOLD))
    height = wires * folds * _ROW_PX
    megapixels = height * _FOLD_PX / 1e6
    if megapixels > DRAW_LIMIT_MEGAPIXELS:
        raise ValueError(
            f"--draw: {wires} wires at depth {depth} would be a {_FOLD_PX} x {height} px image (about "
            f"{megapixels:,.0f} megapixels, {megapixels * _BYTES_PER_PX / 1024:,.1f} GiB to render); the limit is "
            f"{DRAW_LIMIT_MEGAPIXELS} megapixels: draw fewer qubits or layers, or export with --qpy / --qasm3"
        )
