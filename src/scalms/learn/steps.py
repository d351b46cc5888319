"""The steps of a round, each a function of the learning folder and the round's record.

Every step is the library function of another section, called with the round's paths:

- md: ``scalms.dynamics.run`` (start, or resume a killed run) with the previous committee's
  first member; every saved frame becomes a candidate.
- spread: ``scalms.evaluate.run_static`` of the candidates with every member, then
  ``scalms.benchmark.metrics.committee_of`` (the benchmark's committee spread).
- select: ``scalms.analysis.frame_selection`` on the spreads and, with a minimum distance, on the
  descriptors of ``scalms.structural.descriptors.compute_descriptors`` (first member).
- label: ``scalms.hpc.labelling.run_rattle`` in its each-frame mode (no rattle): a frame on disk
  is never labelled again.
- package: ``scalms.hpc.package.filter_frames`` (net and max force), split by round and source.
- train: ``scalms.training.mace.train_mace``, each member continuing from its own weights with
  its own seed; a killed training resumes from its checkpoint.
- evaluate: the new committee on the candidates (spread after) and on the held-out set.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase import Atoms

from scalms.analysis.learning import HeldOutErrors, RoundRecord, SelectedFrame
from scalms.config import ModelEntry
from scalms.errors import ScalmsError
from scalms.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from scalms.learn.settings import TRAINABLE_FAMILIES, LearnError, LearnSettings, LearnStepFailed
from scalms.learn.state import LearnDir, MemberModel, RoundDir
from scalms.workers.fanout import Reporter

Log = Callable[[str], None]
ROUND_KEY = "learn_round"
"""``info`` key of a labelled frame: the round that picked it (0: the starting data)."""


@dataclass
class Context:
    """What every step needs: the folder, the settings, where to say what happens."""

    folder: LearnDir
    settings: LearnSettings
    log: Log = print
    reporter: Reporter | None = None


# ---- the committee ---------------------------------------------------------------------------


def starting_members(settings: LearnSettings) -> list[MemberModel]:
    """The committee of model_config.yaml, each a model the loop can fine-tune."""
    from scalms.config import entry_problems, load_config

    config = load_config(settings.model_config)
    members = []
    for name in settings.committee:
        entry = config.entries.get(name)
        if entry is None:
            known = ", ".join(config.entries) or "none"
            raise LearnError(
                f"committee model '{name}' is not in {settings.model_config} (models: {known})"
            )
        problems = entry_problems(entry)
        if problems:
            raise LearnError(f"committee model '{name}': " + "; ".join(problems))
        if entry.family not in TRAINABLE_FAMILIES:
            raise LearnError(
                f"committee model '{name}' is a {entry.family_info.display} model; the loop "
                "fine-tunes MACE members only (train a committee with `scalms train mace "
                "--seed S`, one seed per member)"
            )
        members.append(
            MemberModel(
                name=name,
                family=entry.family,
                model_path=str(entry.model_path) if entry.model_path else None,
                options=dict(entry.options),
                base=name,
            )
        )
    return members


def entries_of(members: list[MemberModel]) -> list[ModelEntry]:
    return [
        ModelEntry(
            name=m.name,
            family=m.family,
            model_path=Path(m.model_path) if m.model_path else None,
            options=dict(m.options),
        )
        for m in members
    ]


def _failed(what: str, outcomes) -> LearnError:
    lines = [f"{o.model}: {o.reason}" + (f" (log: {o.log})" if o.log else "") for o in outcomes]
    return LearnError(f"{what} failed: " + "; ".join(lines))


# ---- md --------------------------------------------------------------------------------------


def run_md(ctx: Context, rd: RoundDir, record: RoundRecord, previous: list[MemberModel]) -> None:
    """MD of every structure with the previous committee's first member; a killed MD resumes."""
    from scalms.dynamics.run import resume_dynamics, start_dynamics
    from scalms.dynamics.settings import MDSettings
    from scalms.dynamics.workdir import WorkDir

    s = ctx.settings
    entry = entries_of(previous[:1])
    if WorkDir(rd.md).manifest.exists():
        ctx.log(f"round {rd.index}: continuing the MD in {rd.md}")
        run = resume_dynamics(rd.md, reporter=ctx.reporter)
    else:
        settings = MDSettings(
            n_steps=s.md_steps,
            time_step_fs=s.time_step_fs,
            temperature_K=s.temperature_K,
            save_interval=s.save_interval,
            seed=s.seed + rd.index,
        )
        ctx.log(
            f"round {rd.index}: MD with {entry[0].name}, {s.md_steps} steps at "
            f"{s.temperature_K:g} K, a frame every {s.save_interval} steps"
        )
        run = start_dynamics(
            list(s.structures), entry, rd.md, settings, device=s.device, plot=False,
            reporter=ctx.reporter,
        )  # fmt: skip
    if run.results is None:
        raise (
            _failed(f"round {rd.index}: the MD", run.failed)
            if run.failed
            else LearnStepFailed(f"round {rd.index}: the MD wrote no results; see {rd.md}")
        )
    for status in run.statuses:
        if not status.complete:
            # a run stopped early (a blow-up) keeps its frames: those before the stop are
            # the ones the committee knows least, exactly what the loop is for
            ctx.log(
                f"round {rd.index}: the MD of {status.structure} stopped early "
                f"({status.failed or status.note or 'unfinished'}); its {status.n_frames} saved "
                "frames are candidates"
            )
    _write_candidates(rd, run.results)
    record.n_candidates = sum(len(frames) for frames in read_candidates(rd).values())
    if record.n_candidates == 0:
        raise LearnStepFailed(
            f"round {rd.index}: the MD saved no frame after its first; see {rd.md}"
        )


def _write_candidates(rd: RoundDir, results: Path) -> None:
    """Every saved frame but the first (the structure as given, the same in every round)."""
    from ase.io import write

    from scalms.structural.selection import FrameSelection, select_runs

    rd.candidates.mkdir(parents=True, exist_ok=True)
    for run in select_runs([results], FrameSelection(every=1)):
        traj = run.trajectory
        frames = run.atoms()
        if len(frames) < 2:
            continue
        for i, atoms in enumerate(frames):
            atoms.info.update(
                structure=traj.structure,
                md_frame=int(run.frames[i]),
                time_fs=float(traj.time_fs[i]),
                temperature_K=float(traj.temperature_K[i])
                if traj.temperature_K is not None
                else float("nan"),
                **{ROUND_KEY: rd.index},
            )
        buffer = io.StringIO()
        write(buffer, frames[1:], format="extxyz")
        atomic_write_text(rd.candidates / f"{traj.structure}.extxyz", buffer.getvalue())


def candidate_files(rd: RoundDir) -> list[Path]:
    return sorted(rd.candidates.glob("*.extxyz"))


def read_candidates(rd: RoundDir) -> dict[str, list[Atoms]]:
    from scalms.io.structures import read_frames

    return {path.stem: read_frames(path) for path in candidate_files(rd)}


# ---- spread ----------------------------------------------------------------------------------


def evaluate(
    ctx: Context, files: list[Path], members: list[MemberModel], out: Path
) -> dict[str, dict[str, list[Atoms]]]:
    """Every frame of ``files`` by every member (``scalms static``): ``{member: {label: [..]}}``."""
    from scalms.evaluate import run_static
    from scalms.io.static_results import read_results

    run = run_static(
        files, entries_of(members), out, device=ctx.settings.device, overwrite=True,
        reporter=ctx.reporter,
    )  # fmt: skip
    if run.failed:
        raise _failed(f"evaluating {', '.join(f.name for f in files)}", run.failed)
    return read_results(out)


def frame_spreads(
    results: dict[str, dict[str, list[Atoms]]], members: list[MemberModel], labels: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of ``labels`` (in order): the max per-atom force spread; and the per-atom
    spreads concatenated."""
    from scalms.analysis.frame_selection import frame_max_spread
    from scalms.benchmark.metrics import committee_of

    names = [m.name for m in members]
    forces, energies, n_atoms = [], [], []
    for name in names:
        frames = [atoms for label in labels for atoms in results[name][label]]
        forces.append(np.concatenate([a.get_forces() for a in frames]))
        energies.append(np.array([a.get_potential_energy() for a in frames]))
        n_atoms = [len(a) for a in frames]
    committee = committee_of(names, forces, energies, np.array(n_atoms))
    per_atom = committee.force_spread_eV_per_A
    spread = frame_max_spread(per_atom, n_atoms)
    bad = np.flatnonzero(~np.isfinite(spread))
    if bad.size:
        raise LearnStepFailed(
            f"the committee's forces are not finite on {bad.size} frame(s) (first: frame "
            f"{int(bad[0])} of {', '.join(labels)}): a member broke down there"
        )
    return spread, per_atom


def run_spread(
    ctx: Context, rd: RoundDir, record: RoundRecord, previous: list[MemberModel]
) -> None:
    from scalms.io.structures import label_sources

    files = candidate_files(rd)
    ctx.log(f"round {rd.index}: {record.n_candidates} candidate frames by {len(previous)} members")
    results = evaluate(ctx, files, previous, rd.spread)
    labels = [source.label for source in label_sources(files)]
    spread, _ = frame_spreads(results, previous, labels)
    record.spread_before_eV_per_A = [float(v) for v in spread]
    ctx.log(
        f"round {rd.index}: spread before training: mean {spread.mean():.3f}, max "
        f"{spread.max():.3f} eV/Å ({int((spread > ctx.settings.spread_threshold_eV_per_A).sum())}"
        f" of {spread.size} above {ctx.settings.spread_threshold_eV_per_A:g})"
    )


# ---- select ----------------------------------------------------------------------------------


def _features(ctx: Context, rd: RoundDir, member: MemberModel) -> np.ndarray:
    """Each candidate's descriptor summary
    (:func:`scalms.analysis.frame_selection.frame_features`)."""
    from scalms.analysis.frame_selection import frame_features
    from scalms.structural.cache import DescriptorCache
    from scalms.structural.descriptors import compute_descriptors
    from scalms.structural.selection import FrameSelection, select_runs

    runs = select_runs(candidate_files(rd), FrameSelection(every=1))
    described = compute_descriptors(
        runs, entries_of([member])[0], rd.descriptors,
        cache=DescriptorCache(ctx.folder.descriptor_cache), device=ctx.settings.device,
        reporter=ctx.reporter,
    )  # fmt: skip
    per_frame = [frame for run in described.runs for frame in run.values]
    return frame_features(per_frame)


def run_select(
    ctx: Context, rd: RoundDir, record: RoundRecord, previous: list[MemberModel]
) -> None:
    from ase.io import write

    from scalms.analysis.frame_selection import select_frames

    s = ctx.settings
    spread = np.asarray(record.spread_before_eV_per_A)
    features = None
    if s.min_descriptor_distance > 0 and (spread > s.spread_threshold_eV_per_A).sum() > 1:
        features = _features(ctx, rd, previous[0])
    selection = select_frames(
        spread, features, s.spread_threshold_eV_per_A, s.select,
        s.min_descriptor_distance if features is not None else 0.0,
    )  # fmt: skip
    # with one frame above the threshold no distance was needed; the setting still applied
    selection = replace(selection, min_distance=s.min_descriptor_distance)
    record.selection = selection
    _save_selection(rd, spread, features, selection.picked)
    frames = [atoms for group in read_candidates(rd).values() for atoms in group]
    picked, selected = [], []
    for index, nearest in zip(selection.picked, selection.nearest, strict=True):
        atoms = frames[index].copy()
        atoms.info["candidate"] = int(index)
        atoms.info["max_spread_eV_per_A"] = float(spread[index])
        picked.append(atoms)
        selected.append(
            SelectedFrame(
                candidate=int(index),
                structure=str(atoms.info["structure"]),
                md_frame=int(atoms.info["md_frame"]),
                time_fs=float(atoms.info["time_fs"]),
                temperature_K=float(atoms.info["temperature_K"]),
                n_atoms=len(atoms),
                max_spread_eV_per_A=float(spread[index]),
                min_distance=nearest,
            )
        )
    record.selected = selected
    if picked:
        buffer = io.StringIO()
        write(buffer, picked, format="extxyz")
        atomic_write_text(rd.selected, buffer.getvalue())
        ctx.log(
            f"round {rd.index}: picked {len(picked)} of {selection.above_threshold} frames above "
            f"{s.spread_threshold_eV_per_A:g} eV/Å ({selection.too_close} too close to a pick)"
        )
    else:
        largest = float(spread.max()) if spread.size else float("nan")
        record.stopped = (
            f"nothing selected in round {rd.index}: no frame's spread is above "
            f"{s.spread_threshold_eV_per_A:g} eV/Å (largest {largest:.3f}); the committee agrees "
            "on these structures, stopping"
        )


def _save_selection(rd: RoundDir, spread, features, picked: list[int]) -> None:
    """What the picks were made from, so that anyone can check them: ``selection.npz``."""
    buffer = io.BytesIO()
    arrays = {"max_spread_eV_per_A": spread, "picked": np.asarray(picked, dtype=int)}
    if features is not None:
        arrays["features"] = features
    np.savez(buffer, **arrays)
    atomic_write_bytes(rd.root / "selection.npz", buffer.getvalue())


# ---- label -----------------------------------------------------------------------------------


def dft_settings(settings: LearnSettings):
    from scalms.hpc.dft.settings import DFTSettings

    values = dict(settings.dft)
    if "workdir" in values:
        values["workdir"] = Path(values["workdir"])
    return DFTSettings(**values)


def check_labeller(ctx: Context) -> None:
    """Refuse a labeller that cannot label the structures' elements, before any MD: a DFT code
    checks its basis sets or pseudopotentials here; a teacher model evaluates the structures
    once in its child, which refuses elements it does not know in one line."""
    from scalms.hpc.dft import is_dft_code, make_dft_labeller
    from scalms.hpc.labelling import model_entry
    from scalms.io.structures import read_frames

    settings = ctx.settings
    if is_dft_code(settings.labeller):
        labeller = make_dft_labeller(settings.labeller.lower(), dft_settings(settings))
        try:
            for path in settings.structures:
                labeller.check(read_frames(path)[-1])
        finally:
            labeller.close()
        return
    from scalms.evaluate import run_static

    entry = model_entry(settings.labeller, settings.model_config, settings.device)
    ctx.log(f"checking that {entry.name} can label the structures")
    out = ctx.folder.root / "labeller_check" / "structures.h5"
    run = run_static(list(settings.structures), [entry], out, device=settings.device,
                     overwrite=True, reporter=ctx.reporter)  # fmt: skip
    if run.failed:
        raise LearnError(
            f"labeller '{entry.name}' cannot label the structures: {run.failed[0].reason}"
        )


class _LabelLog:
    def __init__(self, log: Log):
        self.log = log

    def line(self, text: str) -> None:
        self.log(f"  {text}")

    def progress(self, done: int, total: int) -> None:
        pass


def run_label(ctx: Context, rd: RoundDir, record: RoundRecord, previous) -> None:
    from scalms.hpc.dft import is_dft_code
    from scalms.hpc.labelling import run_rattle
    from scalms.hpc.rattle import RattleSpec

    s = ctx.settings
    spec = RattleSpec(
        input=rd.selected, stddev_A=0.0, count=len(record.selected), each_frame=True, seed=s.seed
    )
    ctx.log(f"round {rd.index}: labelling {spec.count} frames with {s.labeller} -> {rd.labelled}")
    outcome = run_rattle(
        spec,
        s.labeller,
        dft_settings(s) if is_dft_code(s.labeller) else None,
        rd.labelled,
        model_config=s.model_config,
        device=s.device,
        log=_LabelLog(ctx.log),
    )
    record.labelled = outcome.done
    record.labelled_now += outcome.computed
    if not outcome.complete:
        raise LearnStepFailed(
            f"round {rd.index}: labelling stopped after {outcome.done} of {outcome.total} frames "
            f"({outcome.stopped}); the labelled frames are kept in {rd.labelled}: rerun to "
            "continue"
        )


# ---- package ---------------------------------------------------------------------------------


def split_valid(n_frames: int, fraction: float, rng: np.random.Generator) -> set[int]:
    """Which of ``n_frames`` frames of one group validate: round(fraction * n), at least one
    when the group has two or more frames, none when it has one."""
    if n_frames < 2:
        return set()
    count = min(n_frames - 1, max(1, round(fraction * n_frames)))
    return {int(i) for i in rng.choice(n_frames, size=count, replace=False)}


def run_package(ctx: Context, rd: RoundDir, record: RoundRecord, previous) -> None:
    """All labelled frames so far (and the starting data), filtered, split per (round, source
    structure) so that every group trains and validates."""
    from ase.io import write

    from scalms.hpc.package import Thresholds, filter_frames
    from scalms.io.structures import read_frames

    s = ctx.settings
    thresholds = Thresholds(s.max_force_eV_per_A, s.net_force_threshold_eV_per_A)
    groups: dict[str, list[Atoms]] = {}
    if s.train is not None:
        groups["round 0: " + s.train.name] = read_frames(s.train)
    for index in range(1, rd.index + 1):
        labelled = ctx.folder.round(index).labelled
        if not labelled.exists():
            continue
        for atoms in read_frames(labelled):
            key = f"round {index}: {atoms.info.get('structure', labelled.name)}"
            groups.setdefault(key, []).append(atoms)
    train, valid, dropped, counts = [], [], {}, {}
    for key, frames in sorted(groups.items()):
        kept, _isolated, refused = filter_frames(frames, thresholds, key)
        for item in refused:
            dropped[item.reason] = dropped.get(item.reason, 0) + 1
        # seeded by the group, so that a group keeps its split from round to round: a frame
        # that validated once never trains later
        rng = np.random.default_rng([s.seed, zlib.crc32(key.encode())])
        chosen = split_valid(len(kept), s.valid_fraction, rng)
        for i, atoms in enumerate(kept):
            (valid if i in chosen else train).append(atoms)
        counts[key] = {"kept": len(kept), "valid": len(chosen), "dropped": len(refused)}
    if not valid:
        raise LearnError(
            f"round {rd.index}: no frame to validate on ({len(train)} training frames): label "
            "more frames (--select) or give --train"
        )
    rd.dataset.mkdir(parents=True, exist_ok=True)
    for name, frames in (("train", train), ("valid", valid)):
        buffer = io.StringIO()
        write(buffer, frames, format="extxyz")
        atomic_write_text(rd.dataset / f"{name}.extxyz", buffer.getvalue())
    record.dataset = {"train": len(train), "valid": len(valid), **{
        f"dropped_{k}": v for k, v in sorted(dropped.items())
    }}  # fmt: skip
    atomic_write_json(rd.dataset / "package.json", {"groups": counts, **record.dataset})
    ctx.log(
        f"round {rd.index}: dataset {len(train)} training + {len(valid)} validation frames"
        + (f", dropped {sum(dropped.values())} ({', '.join(dropped)})" if dropped else "")
    )


# ---- train -----------------------------------------------------------------------------------


def member_name(base: str, round_index: int) -> str:
    return f"{base}-r{round_index}"


def run_train(
    ctx: Context, rd: RoundDir, record: RoundRecord, previous: list[MemberModel]
) -> list[MemberModel]:
    """Each member continues from its own weights on the round's dataset, with its own seed."""
    from scalms.training.mace import train_mace
    from scalms.training.mace_config import MaceTrainingSpec

    s = ctx.settings
    train_file, valid_file = rd.dataset / "train.extxyz", rd.dataset / "valid.extxyz"
    batch = min(s.batch_size, max(1, record.dataset.get("train", 1) // 2))
    members = []
    for number, member in enumerate(previous):
        name = member_name(member.base, rd.index)
        spec = MaceTrainingSpec(
            name=name,
            train_file=train_file,
            valid_file=valid_file,
            test_file=s.held_out or valid_file,
            e0_file=None,
            continue_from=Path(member.model_path),
            lr=s.lr,
            epochs=s.epochs,
            batch_size=batch,
            device=s.device,
            seed=s.seed + 1000 * rd.index + number + 1,
        )
        ctx.log(f"round {rd.index}: training {name} from {member.name} ({s.epochs} epochs)")
        trained = train_mace(spec, s.model_config, rd.train, lambda line: ctx.log(f"  {line}"))
        members.append(
            replace(
                member,
                name=name,
                model_path=str(trained.model_path),
                options={**member.options, **trained.options},
            )
        )
    return members


# ---- evaluate --------------------------------------------------------------------------------


def held_out_errors(
    round_index: int,
    results: dict[str, dict[str, list[Atoms]]],
    reference: list[Atoms],
    members: list[MemberModel],
    label: str,
) -> HeldOutErrors:
    """Each member's and the committee mean's errors on the held-out frames."""
    from scalms.benchmark.metrics import committee_of
    from scalms.hpc.package import reference_of

    ref_forces = np.concatenate([reference_of(a)[1] for a in reference])
    ref_energy = np.array([reference_of(a)[0] for a in reference])
    n_atoms = np.array([len(a) for a in reference])
    forces, energies, force_mae, energy_mae = [], [], {}, {}
    for member in members:
        frames = results[member.name][label]
        f = np.concatenate([a.get_forces() for a in frames])
        e = np.array([a.get_potential_energy() for a in frames])
        forces.append(f)
        energies.append(e)
        force_mae[member.name] = float(np.abs(f - ref_forces).mean())
        energy_mae[member.name] = float(np.abs((e - ref_energy) / n_atoms).mean())
    committee = committee_of([m.name for m in members], forces, energies, n_atoms)
    error = committee.mean_forces - ref_forces
    return HeldOutErrors(
        round=round_index,
        member_force_mae_eV_per_A=force_mae,
        committee_force_mae_eV_per_A=float(np.abs(error).mean()),
        committee_force_rmse_eV_per_A=float(np.sqrt(np.mean(error**2))),
        member_energy_mae_eV_per_atom=energy_mae,
        mean_spread_eV_per_A=float(committee.force_spread_eV_per_A.mean()),
        n_frames=len(reference),
    )


def run_evaluate(
    ctx: Context, rd: RoundDir, record: RoundRecord, members: list[MemberModel]
) -> None:
    """The new committee, in one evaluation: its spread on this round's candidates, its errors
    on the held-out set."""
    from scalms.io.structures import label_sources, read_frames

    s = ctx.settings
    candidates = candidate_files(rd) if rd.index > 0 else []
    files = [*candidates, *([s.held_out] if s.held_out is not None else [])]
    if not files:
        return
    labels = [source.label for source in label_sources(files)]
    results = evaluate(ctx, files, members, rd.evaluation)
    if candidates:
        spread, _ = frame_spreads(results, members, labels[: len(candidates)])
        record.spread_after_eV_per_A = [float(v) for v in spread]
        ctx.log(
            f"round {rd.index}: spread after training: mean {spread.mean():.3f} eV/Å "
            f"(before {record.mean_spread_before:.3f})"
        )
    if s.held_out is not None:
        record.held_out = held_out_errors(
            rd.index, results, read_frames(s.held_out), members, labels[-1]
        )
        ctx.log(
            f"round {rd.index}: held-out force MAE of the committee "
            f"{1000 * record.held_out.committee_force_mae_eV_per_A:.1f} meV/Å"
        )


def run_report(ctx: Context, rd: RoundDir, record: RoundRecord, previous) -> None:
    from scalms.plots.learn import PLOTLYJS, round_report

    # one plotly.js for every round's page: the one the report across rounds uses
    path = round_report(
        record, ctx.settings.spread_threshold_eV_per_A, rd.root,
        plotlyjs=ctx.folder.root / PLOTLYJS,
    )  # fmt: skip
    ctx.log(f"round {rd.index}: report {path}")


def check_trainable(members: list[MemberModel]) -> None:
    for member in members:
        if member.model_path is None or not Path(member.model_path).is_file():
            raise ScalmsError(f"committee model '{member.name}': no weights file to continue from")
