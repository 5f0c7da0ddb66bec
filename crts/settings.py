"""The settings of training and the choices of ``crts train`` and ``crts evaluate``, without torch.

The ``crts`` command builds and checks its arguments from these before it imports
torch or xarray, so that a mistyped option is answered at once (:mod:`crts.cli`).
:mod:`crts.train`, :mod:`crts.losses` and :mod:`crts.evaluate` take them from here;
each model kind's recipe (the defaults it gives unset settings) and the settings it
reads are its own (:mod:`crts.models.kinds`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from .data.sampling import check_selection
from .models.kinds import recipe

LOSSES = ("l1", "l2", "MGNLL")
"""The training losses (:func:`crts.losses.reconstruction_loss`)."""

_Value = TypeVar("_Value")


def resolved_setting(value: _Value | None, name: str) -> _Value:
    """``value`` of the setting ``name`` of a :class:`TrainConfig`, one that the model's recipe sets: unset (None)
    until :meth:`TrainConfig.resolved` takes it from there.

    Raises
    ------
    ValueError
        If it is unset: the settings were not resolved.

    Examples
    --------
    >>> resolved_setting(TrainConfig("cube.zarr").resolved().lr, "lr")
    0.0002
    """
    if value is None:
        raise ValueError(f"{name} is unset: resolve the settings first (TrainConfig.resolved takes the model's recipe)")
    return value


@dataclass
class TrainConfig:
    """Everything a training run depends on (JSON in ``RUN_DIR/config.json``)."""

    cube: str
    out: str = "runs/train"
    model: str = "resnet3d"
    region: str = "all"
    cloud_masks: str = "s2cloudless_mask"
    n_input_samples: int = 3
    min_cov: float = 0.0
    max_cov: float = 1.0
    crop: int = 128
    batch_size: int = 4
    lr: float | None = None
    beta1: float | None = None
    epochs: int | None = None
    epochs_decay: int | None = None
    loss: str | None = None
    sampler: str | None = None
    max_steps: int | None = None
    checkpoint_every: int = 500
    features: int = 256
    blocks: int = 16
    width: int | None = None
    n_head: int = 16
    d_model: int = 256
    scale_by: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    accumulate: int = 1
    log_every: int = 10
    num_workers: int | None = None
    init_encoder: str | None = None
    freeze_encoder_steps: int = 0

    @classmethod
    def from_json(cls, path: str | os.PathLike, **overrides: object) -> TrainConfig:
        """A config from a JSON file, with non-None ``overrides`` on top."""
        try:
            values = json.loads(Path(path).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a JSON file of settings ({err})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: not a JSON object of settings (it holds a {type(values).__name__})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def resolved(self) -> TrainConfig:
        """This config with unset settings taken from its model's recipe (:mod:`crts.models.kinds`), checked."""
        # the recipe's values, each of its setting's type (numbers checked below)
        unset: dict[str, Any] = {k: v for k, v in recipe(self.model).defaults.items() if getattr(self, k) is None}
        resolved = replace(self, **unset)
        resolved.check()
        return resolved

    def check(self) -> None:
        """Refuse, in one line naming the setting, any number outside its range (see :data:`LIMITS`)."""
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if not ((value is None and name in OPTIONAL) or limit.holds(value)):
                raise ValueError(f"invalid {name} {value!r}: must be {limit}")
        if self.all_epochs < 1:
            raise ValueError(f"invalid epochs {self.epochs} and epochs_decay {self.epochs_decay}: together at least 1")
        if self.d_model % self.n_head:
            raise ValueError(f"invalid d_model {self.d_model}: must be a multiple of n_head {self.n_head}")
        check_selection(self.n_input_samples, self.min_cov, self.max_cov)

    @property
    def all_epochs(self) -> int:
        """Epochs in all: at the initial rate, then decaying (of resolved settings)."""
        return resolved_setting(self.epochs, "epochs") + resolved_setting(self.epochs_decay, "epochs_decay")


@dataclass(frozen=True)
class Limit:
    """The values a numeric setting may take: an interval, of whole numbers or of real ones.

    Examples
    --------
    >>> str(Limit(0, 1, high_open=True, whole=False)), Limit(1).holds(0), Limit(1).holds(2.5)
    ('a number in [0, 1)', False, False)
    """

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    whole: bool = True

    def holds(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else int | float):
            return False
        above = self.low < value if self.low_open else self.low <= value
        return above and (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        closing = ")" if self.high_open or self.high == math.inf else "]"
        return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{closing}"


_POSITIVE = Limit(0, low_open=True, whole=False)
LIMITS: dict[str, Limit] = {
    **dict.fromkeys(
        (
            "batch_size",
            "accumulate",
            "log_every",
            "checkpoint_every",
            "crop",
            "max_steps",
            "features",
            "width",
            "n_head",
            "d_model",
        ),
        Limit(1),
    ),
    **dict.fromkeys(("epochs", "epochs_decay", "blocks", "seed", "num_workers", "freeze_encoder_steps"), Limit(0)),
    "lr": _POSITIVE,
    "scale_by": _POSITIVE,
    "beta1": Limit(0, 1, high_open=True, whole=False),
}
"""The range of every numeric setting of :class:`TrainConfig` (whole numbers unless said)."""
OPTIONAL = ("max_steps", "num_workers", "width", "scale_by")
"""Settings that may be left unset (None)."""


RESUME_SAME = (
    "batch_size",
    "accumulate",
    "crop",
    "seed",
    "sampler",
    "n_input_samples",
    "region",
    "cloud_masks",
    "min_cov",
    "max_cov",
)
"""Settings that define the order and content of a run's batches: a resumed run must keep them."""
