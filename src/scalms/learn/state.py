"""The learning folder: its settings, its rounds, and which step of each round is done.

```
DIR/
  learn.json                 the loop's settings (a rerun must ask for the same loop)
  round-00/round.json        round 0: the starting committee scored on the held-out set
  round-01/
    round.json               the round's record and the steps done (rewritten after each step)
    md/                      `scalms dynamics run` working dir (MD with the previous committee)
    candidates/<structure>.extxyz   every saved MD frame
    spread.h5                every candidate evaluated by every member of the previous committee
    descriptors/             the descriptor child's folder (the cache is DIR/descriptor_cache)
    selection.npz            each candidate's max spread (and descriptor summary), the picks
    selected.extxyz          the frames picked, with why (info)
    labelled.extxyz          the same frames labelled (`scalms hpc rattle --each-frame` file)
    dataset/                 train.extxyz, valid.extxyz, package.json (all rounds so far)
    train/<member>/          each member's MACE run folder
    evaluation.h5            the new committee on the candidates and the held-out set
    report.html
  report.html, figures/      across rounds
  descriptor_cache/
```
Each step's output is written whole (atomically) or resumes on its own (MD, labelling,
training), and a step is marked done in ``round.json`` only after its output is complete, so a
killed loop reruns at most the step it was in, and that step continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalms.analysis.learning import RoundRecord
from scalms.files import CorruptFile, atomic_write_json, read_json
from scalms.learn.settings import LearnError, LearnSettings

FORMAT = "scalms-learn"
FORMAT_VERSION = 1
STEPS = ("md", "spread", "select", "label", "package", "train", "evaluate", "report")
"""The steps of a round >= 1, in order. Round 0 has only evaluate and report."""
ROUND_ZERO_STEPS = ("evaluate", "report")


def steps_of(round_index: int) -> tuple[str, ...]:
    return ROUND_ZERO_STEPS if round_index == 0 else STEPS


@dataclass
class MemberModel:
    """One committee member as a round ends: a model the children can load."""

    name: str
    family: str
    model_path: str | None
    options: dict[str, Any]
    base: str
    """The starting member it descends from (its name in model_config.yaml)."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RoundDir:
    """Paths of one round's folder."""

    root: Path
    index: int

    @property
    def record_file(self) -> Path:
        return self.root / "round.json"

    @property
    def md(self) -> Path:
        return self.root / "md"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    @property
    def spread(self) -> Path:
        """The candidates by the previous committee."""
        return self.root / "spread.h5"

    @property
    def evaluation(self) -> Path:
        """The candidates and the held-out set by the round's new committee."""
        return self.root / "evaluation.h5"

    @property
    def descriptors(self) -> Path:
        return self.root / "descriptors"

    @property
    def selected(self) -> Path:
        return self.root / "selected.extxyz"

    @property
    def labelled(self) -> Path:
        return self.root / "labelled.extxyz"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def train(self) -> Path:
        return self.root / "train"


class LearnDir:
    """The learning folder ``root``: its settings file and its rounds."""

    def __init__(self, root: Path | str):
        self.root = Path(root).absolute()

    @property
    def settings_file(self) -> Path:
        return self.root / "learn.json"

    @property
    def descriptor_cache(self) -> Path:
        return self.root / "descriptor_cache"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def round(self, index: int) -> RoundDir:
        return RoundDir(self.root / f"round-{index:02d}", index)

    def exists(self) -> bool:
        return self.settings_file.is_file()

    def read_settings(self) -> LearnSettings:
        if not self.exists():
            raise LearnError(
                f"{self.root} holds no learning loop (no learn.json); start one with `scalms "
                "learn run STRUCTURES... --committee A --committee B --labeller L --out DIR`"
            )
        data = read_json(self.settings_file, "learning settings")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LearnError(f"{self.settings_file} is not a `scalms learn` settings file")
        try:
            return LearnSettings.from_dict(data["settings"])
        except (KeyError, TypeError, AttributeError) as err:
            raise CorruptFile(
                f"learning settings {self.settings_file} are damaged ({err})"
            ) from None

    def write_settings(self, settings: LearnSettings) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.settings_file,
            {"format": FORMAT, "version": FORMAT_VERSION, "settings": settings.to_dict()},
        )

    def load_round(self, index: int) -> tuple[RoundRecord | None, list[str], list[MemberModel]]:
        """The round's record, the steps done and its committee (empty until trained)."""
        path = self.round(index).record_file
        if not path.is_file():
            return None, [], []
        data = read_json(path, "round record", "remove it to run the round again")
        try:
            members = [MemberModel(**m) for m in data.get("members", [])]
            return RoundRecord.from_dict(data["record"]), list(data.get("done", [])), members
        except (KeyError, TypeError, AttributeError) as err:
            raise CorruptFile(
                f"round record {path} is damaged ({err}); remove it to run the round again"
            ) from None

    def save_round(self, record: RoundRecord, done: list[str], members: list[MemberModel]) -> None:
        folder = self.round(record.round).root
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            folder / "round.json",
            {
                "record": record.to_dict(),
                "done": list(done),
                "members": [m.to_dict() for m in members],
            },
        )
