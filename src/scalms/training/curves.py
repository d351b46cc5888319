"""Per-epoch training metrics read from the trainers' own logs, for progress lines, the curves
figure (thesis Figure 4.5) and a run's summary.

- MACE (``mace_run_train``) appends one JSON object per line to ``RUN_DIR/results/*_train.txt``:
  ``"mode": "eval"`` lines hold a head's validation metrics (energies in eV per atom, forces in
  eV/Å), ``"mode": "opt"`` lines the loss of one training batch.
- sevenn writes ``RUN_DIR/lc.csv`` (``epoch``, ``lr``, then ``trainset_*`` and ``validset_*``
  columns such as ``validset_Force_RMSE`` in eV/Å); a continued run starts ``lc0.csv``, ``lc1.csv``.

Both files grow while the trainer runs and may end in a half-written line: such a line is skipped,
so they can be read at any time. ``EpochRecord.epoch`` counts the epochs completed when the
evaluation was made (0: the model before training), whatever the trainer's own numbering.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scalms.training.trained import TrainingError

MACE = "mace"
SEVENNET = "sevennet"
TRAINERS = (MACE, SEVENNET)
DEFAULT_HEAD = "Default"
ALL_HEADS = "all heads"
"""Head of MACE's training-loss records when batches of several heads are mixed."""
VALID = "valid"
TRAIN = "train"
MACE_CONFIG = "config.yaml"
SEVENN_INPUT = "input.yaml"
JOB_FILE = "job.json"
SEVENN_CURVE = re.compile(r"^lc(\d*)\.csv$")
SEVENN_SPLITS = {"validset": VALID, "trainset": TRAIN}
EV_TO_MEV = 1000.0


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    """Epochs completed when this was measured; 0 is the model before training."""
    head: str
    """MACE's head ("Default", "pt_head", ...); SevenNet: "Default"."""
    split: str
    """"valid" or "train"."""
    loss: float | None = None
    rmse_energy_meV_per_atom: float | None = None
    rmse_forces_meV_per_A: float | None = None
    mae_energy_meV_per_atom: float | None = None
    mae_forces_meV_per_A: float | None = None


def _mev(value: Any) -> float | None:
    """eV (per atom, or per Å) to meV; None for what is missing or not a finite number."""
    number = _number(value)
    return None if number is None else number * EV_TO_MEV


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _decode(line: str) -> Any:
    """The JSON object of one line; None for a line MACE was writing when it was read or
    killed. A resumed MACE appends to such a cut line: the object after the cut is kept."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        pass
    start = line.find("{", 1)
    while start > 0:
        try:
            return json.loads(line[start:])
        except json.JSONDecodeError:
            start = line.find("{", start + 1)
    return None


def _json_lines(path: Path) -> list[dict]:
    """The complete JSON objects of ``path``, one per line."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return [item for line in handle if isinstance(item := _decode(line), dict)]


def _mace_eval_record(item: dict, epoch: int) -> EpochRecord:
    return EpochRecord(
        epoch=epoch,
        head=str(item.get("head") or DEFAULT_HEAD),
        split=VALID,
        loss=_number(item.get("loss")),
        rmse_energy_meV_per_atom=_mev(item.get("rmse_e_per_atom")),
        rmse_forces_meV_per_A=_mev(item.get("rmse_f")),
        mae_energy_meV_per_atom=_mev(item.get("mae_e_per_atom")),
        mae_forces_meV_per_A=_mev(item.get("mae_f")),
    )


def parse_mace_lines(items: list[dict]) -> list[EpochRecord]:
    """Records from MACE's results lines, in the order they were written.

    MACE numbers its epochs from 0 and logs the model before training with ``"epoch": null``.
    A resumed MACE appends to the same file: it logs its loaded checkpoint with ``null`` again
    (not the untrained model: skipped) and trains the checkpoint's epoch once more, so for an
    epoch logged twice the later line is the one the final model descends from. The training
    loss of an epoch is the mean over its batches, counted once the epoch is over.
    """
    valid: dict[tuple[int, str], EpochRecord] = {}
    batches: dict[tuple[int, int], list[float]] = {}  # (segment, epoch) -> batch losses
    closed: set[tuple[int, int]] = set()
    logging: tuple[int, int] | None = None  # the (segment, epoch) whose batches come in
    heads: list[str] = []
    segment = 0
    seen_epoch = False
    for item in items:
        mode, raw_epoch = item.get("mode"), item.get("epoch")
        if mode == "eval" and raw_epoch is None:
            if seen_epoch:
                segment += 1  # a resumed run's first evaluation
                continue
            record = _mace_eval_record(item, 0)
        elif mode == "eval" and isinstance(raw_epoch, int):
            seen_epoch = True
            record = _mace_eval_record(item, raw_epoch + 1)
            closed.add((segment, raw_epoch))
        elif mode == "opt" and isinstance(raw_epoch, int):
            seen_epoch = True
            if logging is not None and logging != (segment, raw_epoch):
                closed.add(logging)
            logging = (segment, raw_epoch)
            loss = _number(item.get("loss"))
            if loss is not None:
                batches.setdefault((segment, raw_epoch), []).append(loss)
            continue
        else:
            continue
        if record.head not in heads:
            heads.append(record.head)
        valid[(record.epoch, record.head)] = record
    train_head = heads[0] if len(heads) == 1 else ALL_HEADS
    train: dict[int, EpochRecord] = {}
    for seg, epoch in sorted(batches):
        if (seg, epoch) in closed:
            losses = batches[(seg, epoch)]
            train[epoch + 1] = EpochRecord(epoch + 1, train_head, TRAIN, sum(losses) / len(losses))
    records = list(valid.values()) + list(train.values())
    return sorted(records, key=lambda r: (r.epoch, r.split != VALID))


def read_mace_results(run_dir: Path) -> list[EpochRecord]:
    """Every evaluation MACE logged under ``run_dir`` (results/*_train.txt), in order; a partly
    written last line is skipped, so it can be read while MACE trains."""
    files = sorted(Path(run_dir).glob("results/*_train.txt"))
    items = [item for path in files for item in _json_lines(path)]
    return parse_mace_lines(items)


def _sevenn_files(run_dir: Path) -> list[Path]:
    """lc.csv, then the lc0.csv, lc1.csv, ... that continued runs start, in that order."""
    found = [(m, p) for p in Path(run_dir).glob("lc*.csv") if (m := SEVENN_CURVE.match(p.name))]
    return [p for m, p in sorted(found, key=lambda mp: -1 if not mp[0][1] else int(mp[0][1]))]


def _energy_per_atom(run_dir: Path) -> bool:
    """False when sevenn's input asks for total-energy errors (``TotalEnergy``: eV, per
    structure), which share the column name ``Energy_*`` with the per-atom ones."""
    path = Path(run_dir) / SEVENN_INPUT
    if not path.is_file():
        return True
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        record = (raw.get("train") or {}).get("error_record") or []
    except (yaml.YAMLError, AttributeError):
        return True
    return not any(isinstance(row, list) and row and row[0] == "TotalEnergy" for row in record)


def parse_sevenn_rows(rows: list[dict[str, str]], per_atom: bool = True) -> list[EpochRecord]:
    """Records from the rows of sevenn's lc.csv (header -> text). Rows that are incomplete or do
    not parse (the row sevenn was writing) are skipped. sevenn counts epochs from 1."""
    records = []
    for row in rows:
        epoch = _number(row.get("epoch"))
        if epoch is None or None in row.values() or None in row:
            continue
        for prefix, split in SEVENN_SPLITS.items():
            columns = {
                k[len(prefix) + 1 :]: v for k, v in row.items() if k.startswith(f"{prefix}_")
            }
            if not columns:
                continue
            records.append(
                EpochRecord(
                    epoch=int(epoch),
                    head=DEFAULT_HEAD,
                    split=split,
                    loss=_number(columns.get("TotalLoss")),
                    rmse_energy_meV_per_atom=_mev(columns.get("Energy_RMSE")) if per_atom else None,
                    rmse_forces_meV_per_A=_mev(columns.get("Force_RMSE")),
                    mae_energy_meV_per_atom=_mev(columns.get("Energy_MAE")) if per_atom else None,
                    mae_forces_meV_per_A=_mev(columns.get("Force_MAE")),
                )
            )
    return records


def read_sevenn_curves(run_dir: Path) -> list[EpochRecord]:
    """Every epoch sevenn logged under ``run_dir`` (lc.csv, and lc0.csv, ... of continued runs),
    in order; for an epoch logged in several files the latest file's row is kept."""
    per_atom = _energy_per_atom(run_dir)
    latest: dict[tuple[int, str], EpochRecord] = {}
    for path in _sevenn_files(run_dir):
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read()
        if not text.endswith("\n"):
            text = text.rpartition("\n")[0]  # the row sevenn is still writing
        rows = list(csv.DictReader(text.splitlines()))
        for record in parse_sevenn_rows(rows, per_atom):
            latest[(record.epoch, record.split)] = record
    return sorted(latest.values(), key=lambda r: (r.epoch, r.split != VALID))


def read_curves(run_dir: Path, trainer: str) -> list[EpochRecord]:
    """``trainer``: "mace" or "sevennet"."""
    if trainer == MACE:
        return read_mace_results(run_dir)
    if trainer == SEVENNET:
        return read_sevenn_curves(run_dir)
    raise TrainingError(f"unknown trainer '{trainer}'; use {' or '.join(TRAINERS)}")


def detect_trainer(run_dir: Path) -> str:
    """Which trainer ran in ``run_dir``: its ``job.json`` says so, else MACE's ``config.yaml``
    or results folder, or sevenn's ``input.yaml`` or ``lc.csv``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TrainingError(f"run folder not found: {run_dir}")
    job = run_dir / JOB_FILE
    if job.is_file():
        try:
            trainer = json.loads(job.read_text(encoding="utf-8")).get("trainer")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            trainer = None
        if trainer in TRAINERS:
            return trainer
    if (run_dir / MACE_CONFIG).is_file() or any(run_dir.glob("results/*_train.txt")):
        return MACE
    if (run_dir / SEVENN_INPUT).is_file() or _sevenn_files(run_dir):
        return SEVENNET
    raise TrainingError(
        f"{run_dir} is not a training run folder: it has no {MACE_CONFIG} (MACE) or "
        f"{SEVENN_INPUT} (sevenn); pass the folder `scalms train mace|sevennet` made"
    )


def read_runs(run_dirs: list[Path]) -> list[EpochRecord]:
    """The records of each run folder, trainer detected. With several folders each head is
    named ``RUN: HEAD``, so runs stay apart in one figure."""
    records: list[EpochRecord] = []
    for run_dir in run_dirs:
        found = read_curves(run_dir, detect_trainer(run_dir))
        if len(run_dirs) > 1:
            name = Path(run_dir).resolve().name
            found = [replace(r, head=f"{name}: {r.head}") for r in found]
        records += found
    return records


def last_epoch_per_head(records: list[EpochRecord], split: str = VALID) -> list[EpochRecord]:
    """The latest ``split`` record of each head, heads in order of appearance."""
    last: dict[str, EpochRecord] = {}
    for record in records:
        if record.split == split and (
            record.head not in last or record.epoch >= last[record.head].epoch
        ):
            last[record.head] = record
    return list(last.values())
