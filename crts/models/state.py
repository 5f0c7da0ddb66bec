"""Reading weight files and state dicts: the helpers every model's original-checkpoint loader shares.

Files are read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import os
import warnings

import torch

StateDict = dict[str, torch.Tensor]


def load_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> object:
    """``torch.load(weights_only=True)``; a file it cannot read as tensors and plain data is one ValueError line.

    OS errors (no such file, permission denied, ...) pass unchanged: they name the file already.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. about the pickle protocol of a foreign file
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as err:  # damaged or foreign bytes fail in many ways: UnpicklingError, RuntimeError, KeyError ...
        raise ValueError(
            f"{path}: not a PyTorch file of tensors and plain data ({type(err).__name__} in torch.load)"
        ) from None


def read_state(path_or_state_dict: str | os.PathLike | StateDict) -> StateDict:
    """A state dict (or a checkpoint's dict of them) from a file, or the dict itself."""
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict
    state = load_file(path_or_state_dict)
    if not isinstance(state, dict):
        raise ValueError(f"{path_or_state_dict}: a {type(state).__name__}, not a state dict")
    return state


def strip(state: StateDict, prefix: str) -> StateDict:
    """``state`` with ``prefix`` removed from the names that start with it.

    Examples
    --------
    >>> sorted(strip({"module.a": 1, "b": 2}, "module."))
    ['a', 'b']
    """
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def generator_state(content: dict) -> StateDict:
    """The generator's weights in a file of the UnCRtainTS training script (``state_dict_G``, or ``state_dict``
    behind a ``netG.`` prefix), or a bare state dict; a ``module.`` prefix of DataParallel removed."""
    state = content["state_dict_G"] if "state_dict_G" in content else strip(content.get("state_dict", content), "netG.")
    return strip(state, "module.")


def load_into(module: torch.nn.Module, state: StateDict, source: str) -> None:
    """``module.load_state_dict(state)``; weights that do not fit are one line naming ``source``."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ValueError(f"{source}: its weights do not fit this model ({reason[:300]})") from None


def count_blocks(state: StateDict, part: str) -> int:
    """How many numbered sub-modules ``part.0``, ``part.1`` ... the state dict holds.

    Examples
    --------
    >>> count_blocks({"in_block.0.w": 0, "in_block.1.w": 0, "in_block.1.b": 0, "other.3.w": 0}, "in_block")
    2
    """
    prefix = f"{part}."
    return len({k[len(prefix) :].split(".", 1)[0] for k in state if k.startswith(prefix)})
