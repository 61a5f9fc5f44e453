"""The Hugging Face Hub, asked in one place: whether a name is a Hub id or a path, whether the Hub can be reached, and
its failures told as one line that names the Hub, the cause (its first line) and what to do.

Offline, the HTTP client's own errors name neither the Hub nor the fix, and transformers and datasets retry for a
minute before failing; one request here answers at once. Every module that reaches the Hub (a model or tokenizer
source, a corpus, a task's dataset, a language pack's download and upload) goes through these functions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .checks import InputError, check_model_files, check_tokenizer_files, first_line


def offline() -> bool:
    from huggingface_hub import constants

    # constants is read when huggingface_hub is imported; the variable may have been set after that.
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def looks_like_a_path(text: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything else the user typed is a path on this machine.
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or os.sep in text.replace("/", "")


def reason(error: BaseException) -> str:
    """What went wrong, in one line: the error's type and the first line of its message."""
    return f"{type(error).__name__}: {first_line(error)}"


@contextlib.contextmanager
def failures(what: str, advice: str, error: type[Exception] = InputError, *, repo_id: str | None = None):
    """The Hub calls inside, their failure (network, authentication, a missing repository or split) raised as one
    `error`: "{what} ({reason}): {advice}". With `repo_id`, an id the Hub refuses as no id at all is said so, as an
    `InputError`."""
    from huggingface_hub.errors import HFValidationError

    try:
        yield
    except HFValidationError as cause:
        if repo_id is None:
            raise error(f"{what} ({reason(cause)}): {advice}") from cause
        raise InputError(f"{repo_id!r} is not a Hub repository id ({first_line(cause)}): use \"owner/name\"") from None
    except Exception as cause:  # noqa: BLE001 - DNS, TLS, proxy, 401/403, not found: all mean "the Hub did not give it"
        raise error(f"{what} ({reason(cause)}): {advice}") from cause


def unreachable(repo_id: str, repo_type: str = "model", token=None) -> str | None:
    """Why the Hub cannot be asked about `repo_id` (DNS, proxy, TLS, timeout), "not found" if it has no such
    repository, or None if it answered otherwise (there, gated, private, rate-limited: the loader's own error
    explains these best)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = HfApi(token=token)
    try:
        if repo_type == "dataset":
            api.dataset_info(repo_id, timeout=10)
        else:
            api.model_info(repo_id)
    except RepositoryNotFoundError:
        return "not found"
    except HfHubHTTPError:
        return None
    except Exception as error:  # noqa: BLE001 - every other failure means no answer
        return reason(error)
    return None


def in_datasets_cache(name: str) -> bool:
    """Whether `datasets` has kept a copy of the Hub dataset `name` (it then loads offline, after its retries)."""
    import datasets

    return (Path(datasets.config.HF_DATASETS_CACHE) / name.replace("/", "___")).is_dir()


def load_dataset(name: str, config: str | None, split: str, *, what: str, advice: str, error: type[Exception], **kwargs):
    """`datasets.load_dataset` of a Hub dataset, its failure raised as one `error` (see `failures`)."""
    import datasets

    with failures(what, advice, error):
        return datasets.load_dataset(name, config, split=split, **kwargs)


def check_pretrained(source: str | os.PathLike, what: str = "model", filename: str | None = None, token=None, *,
                     needs: tuple[str, ...] = ("model",), remedy: str | None = None) -> None:
    """Fail fast, with one line, on a `from_pretrained` source that cannot load: a local path that does not exist,
    a Hub id that is neither cached nor reachable, or a local folder that lacks a part (`needs`: "model" for
    config.json and safetensors weights that agree with it, "tokenizer" for a tokenizer file with a vocabulary).

    Why: for a name that is not a local folder, transformers asks the Hub and retries for about a minute before
    saying it could not connect; one request here answers at once. And a local folder without tokenizer files
    loads, silently, as a tokenizer of 5 special tokens. `filename` is a file the source must have (to find it in
    the Hub cache, where offline machines keep what they downloaded); by default the first part's. `remedy` is the
    advice for a folder without a tokenizer (see `checks.check_tokenizer_files`).
    """
    text = os.fspath(source)
    local = Path(text).expanduser()
    if local.is_dir():
        if "model" in needs:
            check_model_files(local, what)
        if "tokenizer" in needs:
            check_tokenizer_files(local, what, remedy)
        return
    if local.exists():
        raise InputError(f"{what} {text} is a file: pass the folder that holds it")
    if looks_like_a_path(text):
        raise InputError(f"no {what} folder {text}: check the path")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    filename = filename or ("config.json" if "model" in needs else "tokenizer_config.json")
    try:
        if isinstance(try_to_load_from_cache(text, filename), str):
            return  # downloaded before: transformers loads it from the cache, online or not
    except HFValidationError:
        raise InputError(f"no {what} folder {text}, and it is not a valid Hugging Face Hub id either: check the path") from None
    if offline():
        raise InputError(f"no {what} folder {text}, and HF_HUB_OFFLINE is set so the Hub cannot be asked for it: check the path")
    answer = unreachable(text, token=token)
    if answer == "not found":
        raise InputError(f"no {what} folder {text}, and no such repository on the Hugging Face Hub: check the path or the id")
    if answer is not None:
        raise InputError(f"no {what} folder {text}, and the Hugging Face Hub cannot be reached to look it up ({answer}): "
                         "check the path, or connect and retry")


__all__ = ["check_pretrained", "failures", "in_datasets_cache", "load_dataset", "looks_like_a_path", "offline", "reason",
           "unreachable"]
