"""Errors a user can act on: the CLI prints their message and exits with their code."""


class ScalmsError(Exception):
    """A problem with the user's input or set-up, explained in one message."""

    exit_code = 2


class ConfigError(ScalmsError):
    """model_config.yaml is missing, unreadable or inconsistent; one line per problem."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class StructureError(ScalmsError):
    """A structure file is missing or cannot be read."""


class EnvironmentMissing(ScalmsError):
    """A model's Python environment does not exist or cannot run scalms."""


class ModelLoadError(ScalmsError):
    """A model cannot be loaded: weights missing, package absent, unsupported backend."""


class UnsupportedElements(ScalmsError):
    """A structure holds elements the model was not trained on."""


class BackendUnavailable(ModelLoadError):
    """The model family has no implementation for the requested backend (e.g. TorchSim)."""


class NoDescriptors(ScalmsError):
    """The model's family gives no per-atom descriptors in scalms (structural analysis)."""
