"""Progress lines while a trainer runs: one per evaluated epoch, with the validation loss and
the energy and force RMSE of each head, read from the trainer's own curves as they grow."""

from __future__ import annotations

from collections.abc import Callable

from scalms.training.curves import VALID, EpochRecord


def _metrics(record: EpochRecord) -> str:
    values = []
    if record.loss is not None:
        values.append(f"loss {record.loss:.4g}")
    if record.rmse_energy_meV_per_atom is not None:
        values.append(f"RMSE E {record.rmse_energy_meV_per_atom:.1f} meV/atom")
    if record.rmse_forces_meV_per_A is not None:
        values.append(f"F {record.rmse_forces_meV_per_A:.1f} meV/Å")
    return f"{record.head}: " + ", ".join(values)


def epoch_lines(records: list[EpochRecord], total_epochs: int) -> list[str]:
    """One line per evaluated epoch: validation loss, energy and force RMSE of each head
    (epoch 0: the model before training)."""
    by_epoch: dict[int, list[EpochRecord]] = {}
    for record in records:
        if record.split == VALID:
            by_epoch.setdefault(record.epoch, []).append(record)
    return [
        (f"epoch {epoch}/{total_epochs}" if epoch else "before training")
        + "  "
        + " | ".join(_metrics(r) for r in heads)
        for epoch, heads in sorted(by_epoch.items())
    ]


class EpochProgress:
    """Logs each epoch's line once, as the trainer's curves grow. Records already there when
    it starts (earlier runs in the folder) are not news; a resumed epoch's new record is."""

    def __init__(
        self,
        read_records: Callable[[], list[EpochRecord]],
        total_epochs: int,
        log: Callable[[str], None],
    ):
        self.read_records = read_records
        self.total_epochs = total_epochs
        self.log = log
        self._shown: set[EpochRecord] = set(read_records())

    def update(self) -> None:
        fresh = [r for r in self.read_records() if r not in self._shown]
        self._shown.update(fresh)
        for line in epoch_lines(fresh, self.total_epochs):
            self.log(line)
