"""Bad input, told apart from our bugs: the error a user's mistake raises, and the checks that raise it early.

`minimodel` prints an `InputError` (and any `ValueError` or `OSError`, which the library raises for bad values and
files) as one line and exits with status 2; any other exception is a bug of ours and shows its traceback. The
checks run at the boundary, before any work: a step that trains for an hour must not fail at the end because of a
number or a path it was given at the start. They read only what is cheap to read (a config.json, a safetensors
header, a tokenizer.json), so that a refused command has printed nothing but its error.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import json
import math
import numbers
import os
import re
from pathlib import Path

# The bounds of a run that can produce a meaningful number, for the library's checks and the CLI's options alike.
# A block of fewer than 8 tokens is <s>, </s> and at most 5 text tokens, of which masked LM masks none in most
# blocks (15%): a block of 1 token trained to a loss of exactly 0.0. And a step count past 10 million (XLM-R's
# pretraining took 1.5 million) is a typo: its warm-up alone (5%) would outlast the machine.
MIN_SEQ_LENGTH = 8
MAX_STEPS = 10_000_000

# A model's word-embedding matrix may have a few rows more than its tokenizer has tokens (multilingual-e5 has
# 250,037 rows for 250,002 tokens: padding to a round size). More than this, or any row fewer, is another
# vocabulary: its ids would pick the wrong rows.
PADDING_ROWS = (128, 0.01)  # fewer than 128 rows, and under 1% of the matrix


# The model types whose masked LM is an XLM-R layout hf-minimodel adapts (a `.roberta` body); the last is the type
# that folders saved by hf-minimodel 0.1 declared.
XLMR_MODEL_TYPES = ("xlm-roberta", "roberta", "camembert", "xlm-roberta-minimodel")


class InputError(ValueError):
    """Bad input: a value, a file or a folder the caller gave. The message says what is wrong and how to fix it."""


class WrongModelError(InputError, TypeError):
    """A model of the wrong kind for the operation: a `TypeError` to Python callers, bad input to the command line."""


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line, for one-line errors that quote a cause (Hub errors run long)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Who reads the error messages: Python callers (the default) or `minimodel`'s users, who set options as flags.
_COMMAND_LINE = contextvars.ContextVar("hf_minimodel_command_line", default=False)


@contextlib.contextmanager
def speaking_to_the_command_line():
    """While this holds (the CLI runs a command inside it), `fix` words advice as command-line flags."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def fix(python: str, cli: str) -> str:
    """Advice in its reader's terms: `python` (e.g. "pass max_seq_length=32 or less") to a library caller, `cli`
    (e.g. "pass --max-seq-length 32 or less") inside `minimodel`, whose users have no keyword arguments to pass."""
    return cli if _COMMAND_LINE.get() else python


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


def check_step_budget(max_steps) -> None:
    """Raise `InputError` unless `max_steps` is a whole number from 1 to `MAX_STEPS`."""
    check_positive(max_steps=max_steps)
    if max_steps > MAX_STEPS:
        raise InputError(f"max_steps={max_steps} is more than any run needs (at most {MAX_STEPS:,}; XLM-R pretrained "
                         f"for 1.5 million): {fix('pass a smaller max_steps', 'pass a smaller --steps')}")


def check_sequence_length(max_seq_length) -> None:
    """Raise `InputError` unless sequences of `max_seq_length` tokens leave room for text (`MIN_SEQ_LENGTH`)."""
    check_positive(max_seq_length=max_seq_length)
    if max_seq_length < MIN_SEQ_LENGTH:
        raise InputError(f"max_seq_length={max_seq_length}: sequences of fewer than {MIN_SEQ_LENGTH} tokens leave almost no "
                         "text beside <s> and </s> (masked LM masks nothing, a task sees no words), so no result would mean "
                         f"anything: {fix(f'pass max_seq_length={MIN_SEQ_LENGTH} or more', f'pass --max-seq-length {MIN_SEQ_LENGTH} or more')}")


def local_folder(source: str | os.PathLike) -> Path | None:
    """`source` as a folder on this machine, or None if it names none (a Hub id, or a path that is not there)."""
    local = Path(os.fspath(source)).expanduser()
    return local if local.is_dir() else None


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


def read_json(path: Path, what: str) -> dict:
    """A JSON object from `path`, or `InputError` naming the file, the line and the fix."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: {what}") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}): {what}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} holds a JSON {type(value).__name__}, not an object: {what}")
    return value


# The fields of an XLM-R config.json that size the model, with their smallest sensible value; any other type than
# a whole number (a string "32", a float 2.5, true) fails deep inside torch, far from the file that is wrong.
CONFIG_SIZES = {"vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 1, "num_attention_heads": 1,
                "intermediate_size": 1, "max_position_embeddings": 1, "type_vocab_size": 1}
CONFIG_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "mini_num_layers", "mini_num_new_layers", "full_num_hidden_layers")
WEIGHTS_NAME, WEIGHTS_INDEX_NAME = "model.safetensors", "model.safetensors.index.json"
_SAVE_AGAIN = "save the model again with save_pretrained, or download it again"


def check_model_files(folder: Path, what: str = "model") -> None:
    """Raise `InputError` unless `folder` holds a model that loads as it says: config.json whose sizes are whole
    numbers, safetensors weights (never a pickle: hf-minimodel loads nothing that can run code), undamaged, and of
    the shapes the config gives (a config that disagrees with its weights loads with random layers, or fails
    mid-load with a table of every tensor)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InputError(f"{what} folder {folder} has no config.json: pass the folder that save_pretrained wrote")
    config = read_json(config_path, _SAVE_AGAIN)
    for key, minimum in CONFIG_SIZES.items():
        _check_whole_number(config, key, minimum, config_path, required=key != "type_vocab_size")
    for key in CONFIG_IDS:
        _check_whole_number(config, key, 0, config_path, required=False)
    if config["hidden_size"] % config["num_attention_heads"]:
        raise InputError(f"{config_path}: hidden_size={config['hidden_size']} is not a multiple of num_attention_heads="
                         f"{config['num_attention_heads']}: {_SAVE_AGAIN}")
    shapes = weight_shapes(folder, what)
    _check_shapes(config, shapes, folder)


def _check_whole_number(config: dict, key: str, minimum: int, path: Path, required: bool) -> None:
    if key not in config or (config[key] is None and not required):
        if required:
            raise InputError(f"{path} has no {key}: {_SAVE_AGAIN}")
        return
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{path}: {key} is {json.dumps(value)}, not a whole number: write a whole number there, or {_SAVE_AGAIN}")
    if value < minimum:
        raise InputError(f"{path}: {key}={value} must be at least {minimum}: {_SAVE_AGAIN}")


def weight_shapes(folder: Path, what: str = "model") -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, from the safetensors headers (no tensor is read)."""
    from safetensors import safe_open

    shapes = {}
    for path in weight_files(folder, what):
        with safe_open(path, framework="pt") as weights:
            for key in weights.keys():
                shapes[key] = tuple(weights.get_slice(key).get_shape())
    return shapes


def weight_files(folder: Path, what: str = "model") -> list[Path]:
    """The safetensors files of a saved model (one, or the shards its index lists), checked undamaged; an
    `InputError` for a folder without any (a pickled `.bin` is refused: hf-minimodel loads nothing that can run
    code as it loads)."""
    if (folder / WEIGHTS_INDEX_NAME).is_file():
        index = read_json(folder / WEIGHTS_INDEX_NAME, _SAVE_AGAIN)
        files = sorted(set((index.get("weight_map") or {}).values()))
        for name in files:
            if not (folder / name).is_file():
                raise InputError(f"{what} folder {folder} lacks {name}, a part its {WEIGHTS_INDEX_NAME} lists: copy or download it again")
    elif (folder / WEIGHTS_NAME).is_file():
        files = [WEIGHTS_NAME]
    else:
        pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
        if pickles:
            raise InputError(f"{what} folder {folder} has {pickles[0]} but no {WEIGHTS_NAME}: hf-minimodel loads safetensors "
                             "only (a pickle can run code as it loads); convert it with save_pretrained, which writes safetensors")
        raise InputError(f"{what} folder {folder} has no {WEIGHTS_NAME}: pass the folder that save_pretrained wrote")
    check_weights(folder)
    return [folder / name for name in files]


def _find(shapes: dict, suffix: str):
    """The shape of the tensor whose name ends with `suffix` (as "roberta." or no prefix leads it), else None."""
    for name, shape in shapes.items():
        if name == suffix or name.endswith("." + suffix):
            return name, shape
    return None, None


def _check_shapes(config: dict, shapes: dict, folder: Path) -> None:
    expected = {
        "embeddings.word_embeddings.weight": (("vocab_size", "hidden_size"), "the word embeddings"),
        "embeddings.position_embeddings.weight": (("max_position_embeddings", "hidden_size"), "the position embeddings"),
        "encoder.layer.0.intermediate.dense.weight": (("intermediate_size", "hidden_size"), "the first layer's feed-forward"),
    }
    for suffix, (keys, what) in expected.items():
        name, shape = _find(shapes, suffix)
        if shape is None:
            continue
        said = tuple(config[key] for key in keys)
        if shape != said:
            wrong = next(key for key, a, b in zip(keys, said, shape) if a != b)
            raise InputError(f"{folder}: config.json says {wrong}={config[wrong]} but the weights hold {what} of shape "
                             f"{list(shape)}: the config and the weights are not of one model; {_SAVE_AGAIN}")
    layers = {int(match.group(1)) for name in shapes if (match := re.search(r"(?:^|\.)encoder\.layer\.(\d+)\.", name))}
    if layers and len(layers) != config["num_hidden_layers"]:
        raise InputError(f"{folder}: config.json says num_hidden_layers={config['num_hidden_layers']} but the weights hold "
                         f"{len(layers)} layers: the config and the weights are not of one model; {_SAVE_AGAIN}")


# What a tokenizer folder needs: tokenizer.json (the fast tokenizer's whole pipeline), or a SentencePiece model
# with the sentencepiece package to read it. Without either, transformers makes a tokenizer of 5 special tokens
# from tokenizer_config.json alone, or fails asking for sentencepiece or tiktoken.
TOKENIZER_FILE = "tokenizer.json"


def check_tokenizer_files(folder: Path, what: str = "tokenizer", remedy: str | None = None) -> None:
    """Raise `InputError` unless `folder` holds a tokenizer with a vocabulary. `remedy` says what to pass instead of
    a folder without one (a model folder saved without its tokenizer: the command line's --tokenizer)."""
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        pieces = sorted(p.name for p in folder.glob("*.model"))
        if pieces and importlib.util.find_spec("sentencepiece") is not None:
            return
        if pieces:
            raise InputError(f"{what} folder {folder} has {pieces[0]} but no {TOKENIZER_FILE}, and reading it needs the "
                             "sentencepiece package: pip install sentencepiece")
        raise InputError(f"{what} folder {folder} has no tokenizer ({TOKENIZER_FILE}): "
                         f"{remedy or fix('pass the folder the tokenizer was saved to (save_pretrained)', 'pass the folder that `minimodel tokenizer` wrote')}")
    pipeline = read_json(path, "save the tokenizer again with save_pretrained")
    vocabulary = (pipeline.get("model") or {}).get("vocab")
    if not vocabulary:
        raise InputError(f"{path} has an empty vocabulary: copy the tokenizer again, or train it again "
                         f"({fix('train_target_tokenizer', 'minimodel tokenizer')})")


def check_vocabulary(tokenizer, vocab_size: int, tokenizer_name, model_name, remedy: str | None = None) -> None:
    """Raise `InputError` unless `tokenizer` numbers the rows of a word-embedding matrix of `vocab_size` rows: the
    same size, or a few padding rows fewer (`PADDING_ROWS`). A tokenizer of another vocabulary would read ids past
    the matrix, or the right ids of the wrong rows. `remedy` says which tokenizer to pass instead."""
    size = len(tokenizer)
    spare = vocab_size - size
    most, share = PADDING_ROWS
    if size > vocab_size or spare >= most or spare > share * vocab_size:
        relation = "more" if size > vocab_size else "fewer"
        raise InputError(f"the tokenizer {tokenizer_name} has {size} tokens, {relation} than the {vocab_size} rows of word "
                         f"embeddings of {model_name}: it is not the model's vocabulary; "
                         f"{remedy or 'pass the tokenizer the model was trained with'}")


__all__ = ["InputError", "WrongModelError", "check_model_files", "check_positive",
           "check_positive_float", "check_sequence_length", "check_step_budget", "check_tokenizer_files", "check_vocabulary",
           "check_weights", "first_line", "local_folder", "weight_files", "weight_shapes", "fix", "read_json", "speaking_to_the_command_line"]
