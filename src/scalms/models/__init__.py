"""Model families: a registry of plain data, and one adapter module per family.

The parent process only reads this registry; it never imports a model package. Each adapter
module (``scalms.models.<family>``) is imported inside that family's environment and offers
three functions, all taking a :class:`scalms.models.entry.ModelEntry` (the adapter contract):

- ``ase_calculator(entry, device) -> ase.calculators.calculator.Calculator``
- ``torchsim_model(entry, device) -> torch_sim.models.interface.ModelInterface``
  (raises :class:`scalms.errors.BackendUnavailable` where TorchSim has no such model)
- ``elements(entry, loaded) -> frozenset[str] | None``: elements the loaded model knows,
  ``None`` when it takes any element.

A family marked ``descriptors=True`` below offers a fourth:

- ``describer(entry, device) -> scalms.models.loading.Describer``: a callable giving per-atom
  invariant descriptors (one row per atom) of an ``ase.Atoms``, for structural analysis.

Adding a family means one adapter module, one entry below and a requirements file.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    """A model architecture: its config names, environment and adapter."""

    key: str
    """Lower-case name: the environment folder (.venvs/<key>) and requirements/<key>.txt."""
    display: str
    """The name used in model_config.yaml and in messages (the thesis's spelling)."""
    adapter: str
    """Module imported in the child process."""
    import_name: str | None
    """The package whose import proves the environment works (None: nothing beyond scalms)."""
    distribution: str | None = None
    """The PyPI name of that package, whose version is recorded with every result."""
    bundled: frozenset[str] = field(default_factory=frozenset)
    """Model names that load without model_path (weights shipped inside the package)."""
    own_environment: bool = True
    """False for the builtin family, which runs in scalms's own interpreter."""
    weights_hint: str = ""
    """What to do when a model has no weights file here."""
    descriptors: bool = False
    """True when the adapter offers ``describer`` (per-atom invariant descriptors)."""


FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family(
            key="sevennet",
            display="SevenNet",
            adapter="scalms.models.sevennet",
            import_name="sevenn",
            distribution="sevenn",
            bundled=frozenset(
                {
                    "7net-0",
                    "sevennet-0",
                    "7net-0_11jul2024",
                    "7net-0_11july2024",
                    "7net-0_22may2024",
                    "7net-l3i5",
                    "7net-mf-0",
                }
            ),
            weights_hint="set model_path to a SevenNet checkpoint (.pth)",
            descriptors=True,
        ),
        Family(
            key="mace",
            display="MACE",
            adapter="scalms.models.mace",
            import_name="mace",
            distribution="mace-torch",
            weights_hint="set model_path to a .model file (foundation models download at run "
            "time, which is not possible offline: fetch one elsewhere and copy it here)",
            descriptors=True,
        ),
        Family(
            key="orb",
            display="ORB",
            adapter="scalms.models.orb",
            import_name="orb_models",
            distribution="orb-models",
            weights_hint="set model_path to a local ORB checkpoint (.ckpt) and "
            "options.architecture to the model it belongs to",
        ),
        Family(
            key="mattersim",
            display="MatterSim",
            adapter="scalms.models.mattersim",
            import_name="mattersim",
            distribution="mattersim",
            weights_hint="set model_path to a local MatterSim checkpoint (.pth); pretrained "
            "MatterSim weights are downloaded at run time otherwise",
        ),
        Family(
            key="nequip",
            display="NequIP",
            adapter="scalms.models.nequip",
            import_name="nequip",
            distribution="nequip",
            weights_hint="set model_path to a compiled NequIP model (.nequip.pt2 or "
            ".nequip.pth from nequip-compile)",
        ),
        Family(
            key="builtin",
            display="builtin",
            adapter="scalms.models.builtin",
            import_name=None,
            bundled=frozenset({"lj", "emt"}),
            own_environment=False,
        ),
    )
}


def family_for(name: str) -> Family | None:
    """The family whose key or display name matches ``name`` (case-insensitive)."""
    wanted = name.strip().lower()
    for family in FAMILIES.values():
        if wanted in (family.key, family.display.lower()):
            return family
    return None


def descriptor_families() -> list[str]:
    """Display names of the families whose models give per-atom descriptors, alphabetically."""
    return sorted((f.display for f in FAMILIES.values() if f.descriptors), key=str.lower)
