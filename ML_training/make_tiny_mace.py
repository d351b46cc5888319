"""Build ML_training/models/mace-tiny-GaPt.model, a tiny MACE for Ga and Pt (tests and demos).

What: a MACE with 2 interactions, 16x0e+16x1o hidden features, max_ell 2, correlation 2 and a
5 Å cutoff (about 16 000 parameters, under 0.5 MB on disk), trained for a few minutes on
SevenNet-0 energies and forces of rattled Ga-Pt icosahedral clusters. It learns the labels roughly
(see ML_training/README.md for its errors); it is a test fixture, not a model for science.

Why: MACE foundation models are downloaded at run time, which cannot happen offline, and the
tests and examples of scalms need a real MACE weights file.

How:
1. Label (only when ML_training/data/GaPt_train.extxyz is missing, or with ``--relabel``):
   rattled, strained Ga-Pt clusters are made here from fixed seeds and evaluated with SevenNet-0
   through ``scalms static`` (needs scalms's own .venv and ``scalms env create sevennet``; one
   call, about a minute). The labelled frames are written to ML_training/data/ as extended XYZ
   (REF_energy in the comment line, REF_forces per atom), with the labelled examples/ clusters
   as a test set.
2. Train: seeds fixed, float64, Adam, a fixed number of epochs; E0s by least squares over the
   training frames. The model is written with ``torch.save`` and reloaded with
   ``MACECalculator`` as a check; errors on the training, validation and test frames are printed.

Rerun (from the repository root, about 3-4 minutes on 2 CPU cores):

    .venvs/mace/bin/python ML_training/make_tiny_mace.py            # train on the stored labels
    .venvs/mace/bin/python ML_training/make_tiny_mace.py --relabel  # make the labels again

Runs are deterministic on one machine (fixed seeds and data order, deterministic torch
algorithms: two runs write identical weights); another CPU or torch version may change the last
digits.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

# mace first: with torch 2.15, e3nn 0.4.4 only imports after mace has set up torch.load.
import mace  # noqa: F401  isort: skip
import numpy as np
import torch
from ase import Atoms
from ase.cluster import Icosahedron
from ase.io import read, write

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data"
TRAIN_FILE = DATA / "GaPt_train.extxyz"
TEST_FILE = DATA / "GaPt_test.extxyz"
MODEL_FILE = HERE / "models" / "mace-tiny-GaPt.model"
SCALMS_CLI = REPO / ".venv" / "bin" / "scalms"
TEST_SOURCES = [
    REPO / "examples" / "Ga54Pt_icosahedron.xyz",
    REPO / "examples" / "Ga54Pt_rattled.extxyz",
    REPO / "examples" / "Ga144Pt3_icosahedron.xyz",
]

SEED = 20240601
Z_TABLE = [31, 78]  # Ga, Pt
R_MAX = 5.0
N_VALID = 8
EPOCHS = 100
LEARNING_RATE = 5e-3  # decays tenfold over the run
BATCH_SIZE = 4
ENERGY_WEIGHT = 10.0  # on (eV/atom)^2, against forces in (eV/Å)^2: energies are small per atom
FORCES_WEIGHT = 1.0
LABEL_MODEL = "7net-0"

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit deprecation, from e3nn
warnings.filterwarnings("ignore", message=".*TorchScript type system.*")
warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*")


# ---------------------------------------------------------------------------------------------
# Labels


def cluster(shells: int, n_pt: int, rng: np.random.Generator, box: float = 40.0) -> Atoms:
    """A Ga icosahedron with ``n_pt`` random Pt solutes in a vacuum box (as examples/)."""
    atoms = Icosahedron("Ga", noshells=shells, latticeconstant=3.9)
    atoms.numbers[rng.choice(len(atoms), size=n_pt, replace=False)] = 78
    atoms.set_tags(0)
    atoms.set_cell([box] * 3)
    atoms.center()
    atoms.pbc = False
    return atoms


def candidate_frames() -> list[Atoms]:
    """Training candidates: strained and rattled 13- and 55-atom Ga-Pt clusters.

    The strains (±6 %) and rattles (up to 0.25 Å) span crystalline to liquid-like distances,
    which is where the scalms examples go in MD.
    """
    rng = np.random.default_rng(SEED)
    frames = []
    plan = [(3, (1, 2, 4, 8), (0.05, 0.15, 0.25)), (2, (1, 3), (0.1, 0.2))]
    for shells, pt_counts, rattles in plan:
        for n_pt in pt_counts:
            for strain in (0.94, 1.0, 1.06):
                for stdev in rattles:
                    atoms = cluster(shells, n_pt, rng)
                    centre = atoms.get_center_of_mass()
                    atoms.positions = centre + strain * (atoms.positions - centre)
                    atoms.positions += rng.normal(scale=stdev, size=atoms.positions.shape)
                    frames.append(atoms)
    return frames


def label_with_sevennet(sets: dict[str, list[Atoms]]) -> dict[str, list[Atoms]]:
    """Energies and forces of every frame from SevenNet-0, in one ``scalms static`` call."""
    if not SCALMS_CLI.exists():
        sys.exit(f"labelling needs scalms's own environment ({SCALMS_CLI}); run `make` first")
    from scalms.io.static_results import read_results

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, frames in sets.items():
            path = Path(tmp) / f"{name}.extxyz"
            write(path, frames)
            paths.append(path)
        out = Path(tmp) / "labels.h5"
        command = [str(SCALMS_CLI), "static", *map(str, paths), "-m", LABEL_MODEL]
        command += ["--backend", "ase", "--device", "cpu", "-o", str(out)]
        command += ["-c", str(REPO / "model_config.yaml")]
        print("labelling:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=REPO)
        labelled = read_results(out)[LABEL_MODEL]
    return {name: labelled[name] for name in sets}


def as_training_frame(labelled: Atoms) -> Atoms:
    """A bare copy with the label in mace's default keys (REF_energy, REF_forces)."""
    atoms = Atoms(
        numbers=labelled.numbers,
        positions=labelled.positions,
        cell=labelled.cell,
        pbc=labelled.pbc,
    )
    atoms.info["REF_energy"] = float(labelled.get_potential_energy())
    atoms.info["label_model"] = "SevenNet-0"
    atoms.arrays["REF_forces"] = np.asarray(labelled.get_forces(), dtype=float)
    return atoms


def make_labels() -> None:
    tests = [atoms for path in TEST_SOURCES for atoms in read(path, ":")]
    labelled = label_with_sevennet({"train": candidate_frames(), "test": tests})
    DATA.mkdir(exist_ok=True)
    write(TRAIN_FILE, [as_training_frame(a) for a in labelled["train"]], format="extxyz")
    write(TEST_FILE, [as_training_frame(a) for a in labelled["test"]], format="extxyz")
    print(f"wrote {TRAIN_FILE} ({len(labelled['train'])} frames), {TEST_FILE}", flush=True)


# ---------------------------------------------------------------------------------------------
# Training


def to_graphs(frames: list[Atoms]) -> list:
    from mace.data import AtomicData, KeySpecification, config_from_atoms
    from mace.tools import AtomicNumberTable

    keys = KeySpecification(
        info_keys={"energy": "REF_energy"}, arrays_keys={"forces": "REF_forces"}
    )
    table = AtomicNumberTable(Z_TABLE)
    return [
        AtomicData.from_config(
            config_from_atoms(atoms, key_specification=keys), z_table=table, cutoff=R_MAX
        )
        for atoms in frames
    ]


def fit_e0s(frames: list[Atoms]) -> np.ndarray:
    """Per-element reference energies by least squares: E ≈ Σ_Z n_Z E0_Z."""
    counts = np.array([[np.sum(a.numbers == z) for z in Z_TABLE] for a in frames], dtype=float)
    energies = np.array([a.info["REF_energy"] for a in frames])
    e0s, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return e0s


def build_model(train_frames: list[Atoms], train_graphs: list) -> torch.nn.Module:
    from e3nn import o3
    from mace import modules

    e0s = fit_e0s(train_frames)
    forces = np.concatenate([a.arrays["REF_forces"] for a in train_frames])
    n_edges = sum(g.edge_index.shape[1] for g in train_graphs)
    n_atoms = sum(len(a) for a in train_frames)
    interaction = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return modules.ScaleShiftMACE(
        atomic_inter_scale=float(np.sqrt(np.mean(forces**2))),  # mace's rms_forces_scaling
        atomic_inter_shift=0.0,
        r_max=R_MAX,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=interaction,
        interaction_cls_first=interaction,
        num_interactions=2,
        num_elements=len(Z_TABLE),
        hidden_irreps=o3.Irreps("16x0e+16x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=e0s,
        avg_num_neighbors=n_edges / n_atoms,
        atomic_numbers=Z_TABLE,
        correlation=2,
        radial_MLP=[32, 32, 32],
    )


def errors(model: torch.nn.Module, graphs: list) -> tuple[float, float]:
    """Mean absolute errors: energy in meV/atom, forces in meV/Å."""
    from mace.tools import torch_geometric

    loader = torch_geometric.dataloader.DataLoader(graphs, batch_size=BATCH_SIZE, shuffle=False)
    de, df = [], []
    for batch in loader:
        out = model(batch.to_dict(), training=False, compute_force=True)
        n_atoms = batch.ptr[1:] - batch.ptr[:-1]
        de.append(((out["energy"] - batch.energy) / n_atoms).abs().detach())
        df.append((out["forces"] - batch.forces).abs().flatten().detach())
    return 1000 * torch.cat(de).mean().item(), 1000 * torch.cat(df).mean().item()


def train(epochs: int = EPOCHS, out: Path = MODEL_FILE) -> None:
    from mace.tools import torch_geometric

    torch.manual_seed(SEED)
    frames = read(TRAIN_FILE, ":")
    order = np.random.default_rng(SEED).permutation(len(frames))
    valid_frames = [frames[i] for i in order[:N_VALID]]
    train_frames = [frames[i] for i in order[N_VALID:]]
    test_frames = read(TEST_FILE, ":")
    train_graphs, valid_graphs = to_graphs(train_frames), to_graphs(valid_frames)

    model = build_model(train_frames, train_graphs)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{len(train_frames)} training, {len(valid_frames)} validation, "
        f"{len(test_frames)} test frames; {n_params} parameters",
        flush=True,
    )

    loader = torch_geometric.dataloader.DataLoader(
        train_graphs,
        batch_size=BATCH_SIZE,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, amsgrad=True)
    # Fast progress first, then settle.
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / epochs))
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in loader:
            pred = model(batch.to_dict(), training=True, compute_force=True)
            n_atoms = batch.ptr[1:] - batch.ptr[:-1]
            loss = ENERGY_WEIGHT * (((pred["energy"] - batch.energy) / n_atoms) ** 2).mean()
            loss = loss + FORCES_WEIGHT * ((pred["forces"] - batch.forces) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        if epoch % 10 == 0 or epoch == 1:
            model.eval()
            e_mae, f_mae = errors(model, valid_graphs)
            print(
                f"epoch {epoch:3d}  validation MAE {e_mae:7.1f} meV/atom {f_mae:7.1f} meV/Å"
                f"  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )

    # Saved in float64, the precision scalms runs MACE in by default.
    torch.set_default_dtype(torch.float64)
    model = model.double().eval()
    for name, frames_ in (("train", train_frames), ("valid", valid_frames), ("test", test_frames)):
        e_mae, f_mae = errors(model, to_graphs(frames_))
        print(f"{name:5s} MAE: energy {e_mae:.1f} meV/atom, forces {f_mae:.1f} meV/Å")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.cpu(), out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    check_reload(out, test_frames[0], model)


def check_reload(path: Path, atoms: Atoms, model: torch.nn.Module) -> None:
    """The written file must give, through MACE's ASE calculator, what the trained model gives."""
    from mace.calculators import MACECalculator
    from mace.tools import torch_geometric

    calculator = MACECalculator(model_paths=[str(path)], device="cpu", default_dtype="float64")
    atoms = atoms.copy()
    atoms.calc = calculator
    (batch,) = torch_geometric.dataloader.DataLoader(to_graphs([atoms]), batch_size=1)
    expected = model(batch.to_dict(), training=False, compute_force=True)["energy"].item()
    got = atoms.get_potential_energy()
    if abs(got - expected) > 1e-6:
        sys.exit(f"reloaded model disagrees: {got} vs {expected} eV")
    print(f"reload check: MACECalculator gives {got:.6f} eV, as the trained model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relabel", action="store_true", help="label the frames again")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="for quick trials")
    parser.add_argument("--out", type=Path, default=MODEL_FILE, help="model file to write")
    args = parser.parse_args()
    # float32 trains twice as fast as float64 on a CPU; the model is saved in float64.
    torch.set_default_dtype(torch.float32)
    # Without this, CPU scatter sums change the last bits from run to run.
    torch.use_deterministic_algorithms(True)
    if args.relabel or not TRAIN_FILE.exists():
        make_labels()
    train(args.epochs, args.out)


if __name__ == "__main__":
    main()
