"""Step 2's start: the first values of the target vocabulary's embedding rows and MLM output bias.

The paper starts every new row at random (Marchisio et al., 2023, after Artetxe et al., 2020). A closer start costs
no training: rows of tokens the source vocabulary also has can be copied, rows of tokens the source tokenizer can
spell can be composed from the pieces' rows, and the rest can be drawn where the source rows live instead of around
zero. Mini-model adaptation makes the training that follows cheap; a close start makes it short. One function
decides every row (`initial_target_embeddings`); each init names which rules it applies, in order:

- `random-paper`: the paper's exact setting, N(0, initializer_range) rows and a zero bias, no row copied.
- `random`: N(mean, std) of the source rows, per dimension and per script where the source has that script
  (Downey et al., 2023); the bias at the source bias's mean. No row copied.
- `mean`: every row at its script's mean source row, with no spread (Hewitt, 2021); the bias as `random`. No row
  copied: the relearning control's start. Embedding rows need no noise to break symmetry (each row's gradient comes
  from its own token's contexts), and step 2 never shrinks a drawn row's noise (without weight decay only gradients
  move a row, and a rare token's row gets few), so noise drawn at the source's spread stays beside what is learned
  and outweighs it: from `random` rows the relearning control stays at chance retrieval, from `mean` rows it learns
  (README, Results, "Step 2 learns").
- `overlap`: rows of tokens both vocabularies hold (the same string, or the same special-token role) copied with
  their bias; the rest as `mean` (AdapterHub's `add_embeddings` copies the same way).
- `anchored`: `overlap`'s start; step 2 then holds the copied rows where they are (`target_embeddings.anchor_rows_`).
- `compose`: `overlap`, then FVT (Gee et al., 2022): a token the source tokenizer spells as pieces starts at the mean
  of their rows (and biases); the rest as `mean`.
- `focus`: `overlap`, then FOCUS (Dobler & de Melo, 2023): a new token starts at a sparsemax-weighted mix of copied
  rows, weighted by how alike the tokens are in fastText vectors trained on the target text (`hf_minimodel.focus`,
  optional: `pip install "hf-minimodel[focus]"`); the rest as `mean`.
- `focus-compose`: `focus`, then `compose` for the tokens FOCUS left (seen too rarely for a fastText vector; all of
  them where FOCUS finds nothing to mix); the rest as `mean`. `focus` leaves those rows at the mean (8,170 of
  Russian's 16,000 on e5), and Russian's `focus` curve fell back to its start during step 2 while `compose`'s rose.

What each init did is an `InitReport`: how many rows each rule set, and their norms against the source rows'.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field

import torch

from .checks import InputError, fix
from .methods import DEFAULT_INIT, INITS, NEEDS_CORPUS, NEEDS_SOURCE_TOKENIZER

# A script's own statistics are used for random rows only where the source vocabulary has this many rows of it;
# fewer give a noisy mean and std, and the rows are drawn at the statistics of the whole source vocabulary instead.
MIN_ROWS_PER_SCRIPT = 100
def own_noise(init: str) -> float | None:
    """The spread an init draws the rows no other rule sets at, in source standard deviations, when not told: 1 for
    `random`, 0 (the script's mean row) for the others, None for `random-paper` (its own N(0, initializer_range))."""
    return None if init == "random-paper" else 1.0 if init == "random" else 0.0


# Row origins (`focus-compose` sets "similar" rows before "composed" ones); InitReport counts rows by these names. A
# row no rule of the source vocabulary sets is "mean" when it starts at its script's mean row, "random" when drawn.
ORIGINS = ("copied", "composed", "similar", "mean", "random")


@dataclass
class InitReport:
    """What an init did, before any training: how many rows each rule set and how their norms compare with the
    source rows' (a row far smaller than the source's is nearly invisible beside the position embeddings).
    `step0` holds what was measured at the start (held-out MLM loss, retrieval), filled in by the caller."""

    init: str
    rows: dict  # origin -> count (ORIGINS)
    target_norm_mean: float
    source_norm_mean: float
    source_norm_std: float
    norm_by_origin: dict = field(default_factory=dict)  # origin -> mean row norm
    step0: dict = field(default_factory=dict)
    noise: float | None = None  # the spread the unset rows were drawn at (own_noise unless asked); None: random-paper

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for a person: rows per origin and the norms."""
        counts = ", ".join(f"{count:,} {origin}" for origin, count in self.rows.items() if count)
        measured = "".join(f", {name} {value:.4g}" for name, value in self.step0.items())
        return (f"init {self.init}: {counts}; mean row norm {self.target_norm_mean:.3f} (source rows "
                f"{self.source_norm_mean:.3f} +- {self.source_norm_std:.3f}){measured}")


@dataclass
class TargetStart:
    """Step 2's starting values: `embeddings` `(len(target_tokenizer), hidden)`, `output_bias`, `origin` (one of
    ORIGINS per row) and `copied_from` (target row -> source row, for the copied rows)."""

    embeddings: torch.Tensor
    output_bias: torch.Tensor
    origin: list
    copied_from: dict
    report: InitReport

    def rows(self, *origins: str) -> list[int]:
        """The target rows set by any of these rules."""
        return [i for i, origin in enumerate(self.origin) if origin in origins]


def script_of(token: str) -> str:
    """The Unicode script of a token's first letter ("LATIN", "CYRILLIC", "ARABIC", "CJK"...), "COMMON" for a token
    without letters (digits, punctuation, markers such as "▁" and "##")."""
    for character in token:
        if character.isalpha():
            name = unicodedata.name(character, "")
            return name.split(" ")[0] if name else "COMMON"
    return "COMMON"


def _source_rows(model):
    embeddings = model.get_input_embeddings().weight.detach().float().cpu()
    head = getattr(model, "lm_head", None)
    bias = head.bias.detach().float().cpu() if head is not None else torch.zeros(embeddings.shape[0])
    return embeddings, bias


def _check_init(init, source_tokenizer):
    if init not in INITS:
        raise InputError(f"init={init!r} is not one of {INITS}: " + fix("pass one of them as init=", "pass one of them to --init"))
    if init in NEEDS_SOURCE_TOKENIZER and source_tokenizer is None:
        raise InputError(f"init={init!r} reads the source vocabulary: " + fix(
            "pass source_tokenizer, or use init='mean'", "pass --source-tokenizer, or use --init mean"))


@torch.no_grad()
def initial_target_embeddings(model, target_tokenizer, source_tokenizer=None, init: str = DEFAULT_INIT, seed: int = 0,
                              *, corpus=None, noise: float | None = None) -> TargetStart:
    """Starting values for `target_tokenizer`'s rows over `model`'s body (its word embeddings and MLM head bias are
    the source rows). `corpus` (target-language text) is read by `init="focus"` and `"focus-compose"` only. Module
    docstring: the inits.

    `noise` scales the spread of the rows no other rule sets around their script's mean row, in source standard
    deviations: 1 draws them at the source's statistics, 0 starts every one at the mean. None (the default) takes
    the init's own: 1 for `random`, 0 for the others (the module docstring says why); `random-paper` ignores it."""
    _check_init(init, source_tokenizer)
    source, source_bias = _source_rows(model)
    vocab, hidden = len(target_tokenizer), source.shape[1]
    generator = torch.Generator().manual_seed(seed)
    noise = own_noise(init) if noise is None or init == "random-paper" else noise
    if init == "random-paper":
        embeddings = torch.randn(vocab, hidden, generator=generator) * model.config.initializer_range
        bias = torch.zeros(vocab)
    else:
        embeddings, bias = _draw_at_source_statistics(source, source_bias, target_tokenizer, source_tokenizer, generator,
                                                      noise)
    origin = ["mean" if noise == 0 else "random"] * vocab
    copied = {}
    if init in NEEDS_SOURCE_TOKENIZER:
        copied = shared_tokens(target_tokenizer, source_tokenizer, source.shape[0])
        for i, j in copied.items():
            embeddings[i], bias[i], origin[i] = source[j], source_bias[j], "copied"
    similar = {}
    if init in NEEDS_CORPUS:
        from .focus import focus_rows  # optional dependencies, imported only when asked for

        similar = focus_rows(target_tokenizer, copied, corpus, seed=seed)
        for i, (rows, weights) in similar.items():
            embeddings[i] = weights @ source[rows]
            bias[i], origin[i] = weights @ source_bias[rows], "similar"
    if init in ("compose", "focus-compose"):
        skip = set(copied) | set(similar)
        for i, pieces in composable_tokens(target_tokenizer, source_tokenizer, source.shape[0], skip=skip).items():
            embeddings[i], bias[i], origin[i] = source[pieces].mean(0), source_bias[pieces].mean(), "composed"
    return TargetStart(embeddings, bias, origin, copied, _report(init, embeddings, origin, source, noise))


def _draw_at_source_statistics(source, source_bias, target_tokenizer, source_tokenizer, generator, noise=1.0):
    """Rows drawn from N(mean, std) of the source rows per dimension, per script where the source vocabulary has
    MIN_ROWS_PER_SCRIPT rows of the target token's script (all source rows otherwise); the bias at the source
    bias's mean (a draw would give random tokens a head start)."""
    vocab, hidden = len(target_tokenizer), source.shape[1]
    statistics = {None: (source.mean(0), source.std(0))}
    if source_tokenizer is not None:
        by_script = {}
        for token, j in source_tokenizer.get_vocab().items():
            if j < source.shape[0]:
                by_script.setdefault(script_of(token), []).append(j)
        for script, rows in by_script.items():
            if len(rows) >= MIN_ROWS_PER_SCRIPT:
                statistics[script] = (source[rows].mean(0), source[rows].std(0))
    draws = torch.randn(vocab, hidden, generator=generator)
    mean, std = torch.empty(vocab, hidden), torch.empty(vocab, hidden)
    for token, i in target_tokenizer.get_vocab().items():
        if i < vocab:
            mean[i], std[i] = statistics.get(script_of(token), statistics[None])
    return mean + std * draws * noise, torch.full((vocab,), float(source_bias.mean()))


def _report(init, embeddings, origin, source, noise) -> InitReport:
    source_norms = source.norm(dim=1)
    norms = embeddings.norm(dim=1)
    by_origin = {}
    for name in ORIGINS:
        rows = [i for i, o in enumerate(origin) if o == name]
        if rows:
            by_origin[name] = round(float(norms[rows].mean()), 4)
    return InitReport(
        init=init,
        rows={name: origin.count(name) for name in ORIGINS},
        target_norm_mean=round(float(norms.mean()), 4),
        source_norm_mean=round(float(source_norms.mean()), 4),
        source_norm_std=round(float(source_norms.std()), 4),
        norm_by_origin=by_origin,
        noise=noise,
    )


# Special tokens by role: a target and a source vocabulary with different names for them (XLM-R's <s> and </s>,
# BERT's [CLS] and [SEP]) still share what they are for.
_SPECIAL_ROLES = ("cls_token", "sep_token", "pad_token", "mask_token", "unk_token", "bos_token", "eos_token")


def shared_tokens(target_tokenizer, source_tokenizer, source_vocab_size: int) -> dict[int, int]:
    """Target row -> source row for every token both vocabularies hold (rows the source model has): the same
    string, or the same special-token role (`<s>` and `[CLS]` both begin a sequence)."""
    source_vocab, vocab = source_tokenizer.get_vocab(), len(target_tokenizer)
    shared = {
        i: source_vocab[token]
        for token, i in target_tokenizer.get_vocab().items()
        if i < vocab and source_vocab.get(token, source_vocab_size) < source_vocab_size
    }
    for role in _SPECIAL_ROLES:
        target_token, source_token = getattr(target_tokenizer, role, None), getattr(source_tokenizer, role, None)
        if target_token is None or source_token is None:
            continue
        i, j = target_tokenizer.convert_tokens_to_ids(str(target_token)), source_vocab.get(str(source_token))
        if i is not None and j is not None and i < vocab and j < source_vocab_size:
            shared.setdefault(i, j)
    return shared


def _word_marks(tokenizer) -> tuple[str, str]:
    """How a tokenizer marks where words start: ("start", "▁") for SentencePiece-style vocabularies (Unigram, BPE
    with Metaspace: "▁word" begins a word, "ing" continues one), ("continue", "##") for WordPiece (BERT's "##ing"
    continues a word, "word" begins one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = getattr(backend, "model", None)
    if type(model).__name__ == "WordPiece":
        return "continue", model.continuing_subword_prefix
    return "start", "▁"


def _surface(token: str, marks) -> tuple[bool, str]:
    """(begins a word?, the token's text without the mark)."""
    kind, mark = marks
    if kind == "start":
        return token.startswith(mark), token.removeprefix(mark)
    return not token.startswith(mark), token.removeprefix(mark)


def composable_tokens(target_tokenizer, source_tokenizer, source_vocab_size: int, skip=()) -> dict[int, list[int]]:
    """FVT's spelling: target row -> the source rows of the pieces the source tokenizer spells it with.

    A word-initial target token ("▁house") is spelled as the source tokenizer spells the word ("house"), through its
    own normaliser (lower-casing and accent stripping for an uncased WordPiece). A word-continuing one ("ing") is
    spelled by the longest source pieces that continue a word, left to right (WordPiece's own rule), since the
    source tokenizer would read it as a new word. A token the source cannot spell without its unknown token is left
    out (its row falls back to the next rule), as are special tokens and the rows in `skip`.
    """
    target_marks, source_marks = _word_marks(target_tokenizer), _word_marks(source_tokenizer)
    source_vocab = source_tokenizer.get_vocab()
    continuing = {}
    for token, j in source_vocab.items():
        initial, text = _surface(token, source_marks)
        if not initial and text and j < source_vocab_size:
            continuing[text] = j
    longest = max(map(len, continuing), default=0)
    normalizer = getattr(getattr(source_tokenizer, "backend_tokenizer", None), "normalizer", None)
    normalize = normalizer.normalize_str if normalizer is not None else (lambda text: text)
    specials = set(target_tokenizer.all_special_ids)
    unknown = source_tokenizer.unk_token_id
    spelled = {}
    for token, i in target_tokenizer.get_vocab().items():
        if i >= len(target_tokenizer) or i in specials or i in skip:
            continue
        initial, text = _surface(token, target_marks)
        if not text.strip():
            continue
        if initial:
            ids = source_tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = _longest_match(normalize(text), continuing, longest)
        if ids and unknown not in ids and all(j < source_vocab_size for j in ids):
            spelled[i] = ids
    return spelled


def _longest_match(text: str, pieces: dict, longest: int) -> list[int] | None:
    ids, start = [], 0
    while start < len(text):
        for end in range(min(len(text), start + longest), start, -1):
            j = pieces.get(text[start:end])
            if j is not None:
                ids.append(j)
                start = end
                break
        else:
            return None
    return ids
