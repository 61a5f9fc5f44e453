"""A language pack's metadata as a typed, versioned record: how the pack was made and what it scored, saved beside
its weights as `language_pack.json` (as peft saves its `adapter_config.json`).

It is a dataclass, so fields have types and names an editor completes; it is also a mapping, as transformers'
`ModelOutput` is, so `pack.metadata["train_flops"]` works too, and keys it does not know (a user's own notes) travel
along in `extra`. Reading checks the format version and every field, and names the file and the field when one is
missing or of the wrong type.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import numbers
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from .checks import InputError

# 1: every pack so far. A reader refuses a higher version (a newer hf-minimodel wrote it); a file without the field
# was written before it existed, and is version 1.
FORMAT_VERSION = 1

# Present in every pack written since version 1 (their value may be null). Fields added later are optional.
REQUIRED = ("language", "base_model", "base_fingerprint", "method", "mini_num_layers", "hidden_size", "vocab_size",
            "train_steps", "train_tokens", "train_flops", "train_seconds", "init", "created_with")


@dataclass(eq=False)
class PackMetadata(MutableMapping):
    """How a language pack was made. Every field may be `None` (not known); `LanguagePack` fills in `hidden_size`,
    `vocab_size` and `created_with`."""

    language: str | list | None = None  # a language code, or a list of them
    base_model: str | None = None
    base_fingerprint: str | None = None  # xlmr.base_fingerprint of the base model's frozen embedding parts
    method: str | None = None  # "standard", "minijoint" or "minipost" (methods.METHODS)
    mini_num_layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    # step 2's cost, totals over all processes
    train_steps: int | None = None
    train_tokens: int | None = None
    train_flops: float | None = None
    train_seconds: float | None = None
    train_device: str | None = None
    train_final_loss: float | None = None
    # step 2's settings
    init: str | None = None  # one of initialisation.INITS
    init_rows_copied: int | None = None
    init_report: dict | None = None  # initialisation.InitReport: rows per origin, norms, step-0 measurements
    start_rows_learning_rate: float | None = None  # the rate of rows the init took from the source, if their own
    step2_num_layers: int | None = None
    max_seq_length: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    # the share of tokens step 2 masked (None: not recorded; packs made before it was, all masked 15%)
    mlm_probability: float | None = None
    license: str | None = None  # a Hub licence id; the card says "unknown" when None
    created_with: str | None = None
    evaluations: list | None = None  # LanguagePack.add_evaluation's entries, for the card's model-index
    extra: dict = field(default_factory=dict)  # any other JSON values
    format_version: int = FORMAT_VERSION

    # The mapping view: the typed fields, then the extra keys.
    def __getitem__(self, key):
        if key in _FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key, value):
        if key in _FIELDS:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __delitem__(self, key):
        if key in _FIELDS:
            raise KeyError(f"{key!r} is a field of PackMetadata: set it to None instead")
        del self.extra[key]

    def __iter__(self):
        yield from _FIELDS
        yield from self.extra

    def __len__(self):
        return len(_FIELDS) + len(self.extra)

    def __or__(self, other) -> "PackMetadata":
        return PackMetadata.from_dict(dict(self) | dict(other))

    def __ror__(self, other) -> "PackMetadata":
        return PackMetadata.from_dict(dict(other) | dict(self))

    def __eq__(self, other) -> bool:  # as a dict compares: the same keys and values, whatever the mapping's type
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self) == dict(other)

    def clear(self) -> None:
        for name in _FIELDS:
            setattr(self, name, None)
        self.extra.clear()

    def copy(self) -> "PackMetadata":
        """A copy that shares nothing mutable with this one (a dict's `copy` would share the lists inside)."""
        return copy.deepcopy(self)

    __copy__ = copy

    def to_dict(self) -> dict:
        """The JSON object saved as `language_pack.json`."""
        return {"format_version": self.format_version, **dict(self)}

    @classmethod
    def from_dict(cls, values) -> "PackMetadata":
        """From a mapping of fields and extra keys, checked (`check`); a saved file's `format_version` is read by
        `load`, and a record in memory is always of this version."""
        record = cls._unchecked(values)
        record.check()
        return record

    @classmethod
    def _unchecked(cls, values) -> "PackMetadata":
        values = copy.deepcopy(dict(values))
        values.pop("format_version", None)
        known = {key: values.pop(key) for key in list(values) if key in _FIELDS}
        return cls(**known, extra=values)

    def check(self, path: Path | None = None) -> None:
        """Raise `InputError` naming the field whose value is not of its type, and the file it came from if any:
        a pack whose metadata would not load back is refused when it is made, not when it is next read."""
        for key, expected in _TYPES.items():
            value = getattr(self, key)
            if value is None or any(_CHECKS[kind](value) for kind in expected):
                continue
            wanted = " or ".join(_NAMES[kind] for kind in expected)
            if path is None:
                raise InputError(f"language pack metadata {key}={value!r} is not {wanted}: pass {wanted} or None")
            raise InputError(f"{path}: {key} is {value!r}, not {wanted}: restore the file, or save the pack again")

    @classmethod
    def load(cls, path: Path) -> "PackMetadata":
        """Read and check `language_pack.json`; every problem is an `InputError` naming the file and the fix."""
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"{path} is not valid JSON ({error}): restore it, or save the pack again") from None
        if not isinstance(values, dict):
            raise InputError(f"{path} holds no JSON object: restore it, or save the pack again")
        version = values.get("format_version", 1)
        if not _is_whole(version) or version < 1:
            raise InputError(f"{path}: format_version {version!r} is not a version number: restore the file, or save the pack again")
        if version > FORMAT_VERSION:
            raise InputError(f"{path} is a version-{version} language pack, from a newer hf-minimodel (this one reads up to "
                             f"version {FORMAT_VERSION}): upgrade hf-minimodel (pip install -U hf-minimodel)")
        missing = [key for key in REQUIRED if key not in values]
        if missing:
            raise InputError(f"{path} has no {', '.join(missing)} field{'s' if len(missing) > 1 else ''}: not a complete "
                             "language pack's metadata; restore the file, or save the pack again")
        record = cls._unchecked(values)
        record.format_version = version
        record.check(path)
        return record


_FIELDS = tuple(f.name for f in dataclasses.fields(PackMetadata) if f.name not in ("extra", "format_version"))


def _is_whole(value) -> bool:
    if isinstance(value, bool):
        return False
    # 100.0 counts: JSON writers and arithmetic (steps x processes) turn whole numbers into floats
    return isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())


# What each field holds, from its annotation ("int | None" -> int): checked when a saved file is read.
_CHECKS = {
    "int": _is_whole,
    "float": lambda value: isinstance(value, numbers.Real) and not isinstance(value, bool),
    "str": lambda value: isinstance(value, str),
    "list": lambda value: isinstance(value, list),
    "dict": lambda value: isinstance(value, dict),
}
_NAMES = {"int": "a whole number", "float": "a number", "str": "a string", "list": "a list", "dict": "a JSON object"}
# "str | list | None" -> ("str", "list"): what a field may hold besides None.
_TYPES = {f.name: tuple(kind.strip() for kind in str(f.type).split("|") if kind.strip() != "None")
          for f in dataclasses.fields(PackMetadata) if f.name in _FIELDS}
