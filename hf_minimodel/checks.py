"""Bad input, told apart from our bugs: the error a user's mistake raises, and the checks that raise it early.

`minimodel` prints an `InputError` (and any `ValueError` or `OSError`, which the library raises for bad values and
files) as one line and exits with status 2; any other exception is a bug of ours and shows its traceback. The
checks run at the boundary, before any work: a step that trains for an hour must not fail at the end because of a
number or a path it was given at the start.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path


class InputError(ValueError):
    """Bad input: a value, a file or a folder the caller gave. The message says what is wrong and how to fix it."""


class WrongModelError(InputError, TypeError):
    """A model of the wrong kind for the operation: a `TypeError` to Python callers, bad input to the command line."""


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line, for one-line errors that quote a cause (Hub errors run long)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_positive(**values) -> None:
    """Raise `InputError` unless every value is a whole number >= 1 (`None` passes: "not set")."""
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise InputError(f"{name}={value!r}: must be a whole number of at least 1")


def check_positive_float(**values) -> None:
    """Raise `InputError` unless every value is a finite number > 0."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
            raise InputError(f"{name}={value!r}: must be a number greater than 0")


def _offline() -> bool:
    from huggingface_hub import constants

    # constants is read when huggingface_hub is imported; the variable may have been set after that.
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _looks_like_a_path(text: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything else the user typed is a path on this machine.
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or os.sep in text.replace("/", "")


def check_pretrained(source: str | os.PathLike, what: str = "model", filename: str = "config.json", token=None) -> None:
    """Fail fast, with one line, on a `from_pretrained` source that cannot load: a local path that does not exist,
    a Hub id that is neither cached nor reachable, or a local folder whose safetensors weights are damaged.

    Why: for a name that is not a local folder, transformers asks the Hub and retries for about a minute before
    saying it could not connect; one request here answers at once. `filename` is a file the source must have (to
    find it in the Hub cache, where offline machines keep what they downloaded).
    """
    text = os.fspath(source)
    local = Path(text).expanduser()
    if local.is_dir():
        check_weights(local)
        return
    if local.exists():
        raise InputError(f"{what} {text} is a file: pass the folder that holds it")
    if _looks_like_a_path(text):
        raise InputError(f"no {what} folder {text}: check the path")
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError

    try:
        if isinstance(try_to_load_from_cache(text, filename), str):
            return  # downloaded before: transformers loads it from the cache, online or not
    except HFValidationError:
        raise InputError(f"no {what} folder {text}, and it is not a valid Hugging Face Hub id either: check the path") from None
    if _offline():
        raise InputError(f"no {what} folder {text}, and HF_HUB_OFFLINE is set so the Hub cannot be asked for it: check the path")
    try:
        HfApi(token=token).model_info(text)
    except RepositoryNotFoundError:
        raise InputError(f"no {what} folder {text}, and no such repository on the Hugging Face Hub: check the path or the id") from None
    except HfHubHTTPError:
        return  # gated, private, rate-limited: the loader's own error explains these best
    except Exception as error:  # noqa: BLE001 - DNS, proxy, TLS and timeout errors all mean "cannot reach the Hub"
        raise InputError(
            f"no {what} folder {text}, and the Hugging Face Hub cannot be reached to look it up ({type(error).__name__}: "
            f"{first_line(error)}): check the path, or connect and retry"
        ) from None


def check_weights(folder: str | os.PathLike) -> None:
    """Raise `InputError` if a `.safetensors` file in `folder` is damaged or incomplete (a copy cut short, a full
    disk): its header is read, which is cheap, so the error names the file instead of surfacing mid-load."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as error:
            raise InputError(
                f"{path} is damaged or incomplete ({first_line(error)}): save it again, or copy or download it again"
            ) from None


__all__ = ["InputError", "WrongModelError", "check_positive", "check_positive_float", "check_pretrained", "check_weights", "first_line"]
