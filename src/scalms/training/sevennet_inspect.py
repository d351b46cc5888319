"""``<sevennet python> -m scalms.training.sevennet_inspect SOURCE``: what a fine-tune starts from.

Runs in the sevennet environment (the parent never imports sevenn) and prints one JSON object:
the checkpoint file SOURCE resolves to (a bundled name such as ``7net-0``, or a path), whether it
loads and builds a model, the elements of its type map, its model settings, whether it is
multi-fidelity, and the text of sevenn's own ``fine_tune`` preset, which the parent edits into
the run's input.yaml. A bundled name whose file is not on this machine is refused here rather
than downloaded: training runs offline.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any


def _resolve(source: str) -> str:
    """The local checkpoint file behind ``source``; never a download."""
    if Path(source).is_file():
        return str(Path(source).resolve())
    if Path(source).suffix in (".pth", ".pt") or "/" in source:
        raise ValueError(f"checkpoint file not found: {source}")
    from sevenn import _const
    from sevenn.util import get_available_pretrained_models, pretrained_name_to_path

    links = dict(_const.CHECKPOINT_DOWNLOAD_LINKS)
    _const.CHECKPOINT_DOWNLOAD_LINKS.clear()  # a missing bundled file must not start a download
    try:
        return pretrained_name_to_path(source)
    except ValueError:
        names = ", ".join(get_available_pretrained_models())
        raise ValueError(
            f"'{source}' is neither a checkpoint file nor a SevenNet model name ({names})"
        ) from None
    except FileNotFoundError:
        raise ValueError(
            f"'{source}' is a SevenNet model whose weights are not on this machine (sevenn "
            "would download them); download the checkpoint and pass its path"
        ) from None
    finally:
        _const.CHECKPOINT_DOWNLOAD_LINKS.update(links)


def inspect(source: str) -> dict[str, Any]:
    import sevenn
    import sevenn._keys as KEY
    from sevenn.checkpoint import SevenNetCheckpoint

    path = _resolve(source)
    checkpoint = SevenNetCheckpoint(path)
    config = checkpoint.config
    if not config or KEY.TYPE_MAP not in config:
        raise ValueError(f"{path} is not a SevenNet training checkpoint (no config in it)")
    checkpoint.build_model()  # a checkpoint that does not build a model would fail sevenn later
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "checkpoint version too old": only the yaml's data part
        model = checkpoint.yaml_dict("continue")["model"]
    preset = Path(sevenn.__file__).parent / "presets" / "fine_tune.yaml"
    return {
        "ok": True,
        "path": path,
        "elements": list(config[KEY.CHEMICAL_SPECIES]),
        "multi_fidelity": bool(config.get(KEY.USE_MODALITY) or config.get(KEY.MODAL_MAP)),
        "epoch": checkpoint.epoch,
        "model": model,
        "preset": preset.read_text(),
        "sevenn": sevenn.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m scalms.training.sevennet_inspect SOURCE", file=sys.stderr)
        return 2
    try:
        report = inspect(argv[0])
    except (ValueError, FileNotFoundError) as err:
        report = {"ok": False, "error": str(err)}
    except Exception as err:  # any other failure to load: this checkpoint cannot be fine-tuned
        report = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
