"""The target-language tokenizer (paper step 2: a new vocabulary learned on target-language text only).

It mirrors XLM-R's: a SentencePiece-style Unigram model over "▁"-marked words, with XLM-R's special-token ids
(`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` last) and templates (`<s> A </s>`, `<s> A </s></s> B </s>`),
so the new embedding matrix slots into an XLM-R body with no other change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .checks import InputError, fix
from .corpus import split_long_text
from .defaults import TARGET_VOCAB_SIZE

BOS, PAD, EOS, UNK, MASK = "<s>", "<pad>", "</s>", "<unk>", "<mask>"


def _pipeline(tokenizer: Tokenizer) -> Tokenizer:
    # NFKC stands in for XLM-R's SentencePiece "nmt_nfkc" rules: full-width forms, ligatures and decomposed accents
    # become the characters the vocabulary was trained on.
    tokenizer.normalizer = normalizers.NFKC()
    # The same word splitting as transformers' XLMRobertaTokenizer.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tokenizer


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, one example each, not a single string")
    if hasattr(texts, "column_names") and hasattr(texts, "iter"):  # a datasets (Iterable)Dataset with a "text" column
        # Read in batches, never as one column list: the corpus may be larger than memory.
        texts = (text for batch in texts.iter(batch_size=1000) for text in batch["text"])
    for text in texts:
        if text and not text.isspace():
            yield from split_long_text(text)  # one huge example would cost the trainer memory in proportion


def train_target_tokenizer(
    texts: Iterable[str],
    vocab_size: int = TARGET_VOCAB_SIZE,
    *,
    model_max_length: int = 512,
    show_progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train an XLM-R compatible Unigram tokenizer on target-language text: strings, or a dataset with a "text"
    column (`load_text_dataset`), read in batches.

    `vocab_size` counts the special tokens. The result can be smaller: the Unigram trainer stops when the corpus
    has no more pieces worth keeping, which happens on small corpora; `<mask>` is then still the last id, and
    `len(tokenizer)` gives the real size for the embedding matrix.
    """
    if vocab_size < 6:
        raise InputError(f"vocab_size must leave room beyond the 5 special tokens, got {vocab_size}")
    seen, alphabet = 0, set()

    def counted() -> Iterator[str]:
        nonlocal seen
        for text in _non_empty(texts):
            seen += 1
            alphabet.update(text)
            yield text

    # The trainer places its special tokens first, in this order, which gives XLM-R's ids 0-3; <mask> is appended
    # after training because XLM-R keeps it last (id 250001), after all the learned pieces.
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size - 1,
        special_tokens=[BOS, PAD, EOS, UNK],
        unk_token=UNK,
        show_progress=show_progress,
    )
    trained = _pipeline(Tokenizer(models.Unigram()))
    try:
        trained.train_from_iterator(counted(), trainer=trainer)
    except Exception as err:  # the Rust trainer raises a bare Exception
        if "not large enough to contain all chars" not in str(err):
            raise
        raise InputError(
            f"vocab_size={vocab_size} cannot hold the corpus's {len(alphabet)} distinct characters: raise vocab_size"
        ) from None
    if seen == 0:
        raise InputError("no text to train the target tokenizer on: pass non-empty target-language examples")

    pieces = _pieces(trained)
    tokenizer = _pipeline(Tokenizer(models.Unigram([*pieces, (MASK, 0.0)], unk_id=3, byte_fallback=False)))
    # As in XLM-R's own tokenizer.json: <mask> takes the space before it, so "a <mask>" has no stray "▁" piece.
    return xlmr_special_tokens(tokenizer, model_max_length=model_max_length, mask_lstrip=True)


def xlmr_special_tokens(tokenizer: Tokenizer, *, model_max_length: int = 512, mask_lstrip: bool = True,
                        **kwargs) -> PreTrainedTokenizerFast:
    """A `tokenizers` pipeline whose vocabulary starts `<s> <pad> </s> <unk>` and ends `<mask>`, with XLM-R's
    `<s> A </s></s> B </s>` framing, as a transformers tokenizer that knows its special tokens.

    The generic class, not `XLMRobertaTokenizer`: transformers v5 reloads a saved XLMRobertaTokenizer by rebuilding
    its pipeline from the vocabulary alone, which drops any normalizer but SentencePiece's precompiled one; the
    generic class reloads tokenizer.json as saved, so ids survive save_pretrained / AutoTokenizer.from_pretrained.
    """
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
        special_tokens=[(BOS, 0), (EOS, 2)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        sep_token=EOS,
        cls_token=BOS,
        unk_token=UNK,
        pad_token=PAD,
        mask_token=AddedToken(MASK, lstrip=mask_lstrip, special=True),
        model_max_length=model_max_length,
        **kwargs,
    )


def _pieces(tokenizer: Tokenizer) -> list[tuple[str, float]]:
    """The trained pieces with their scores, made reproducible: the same corpus gives the same ids on every run.

    The `tokenizers` Unigram trainer is not: it sums scores in parallel threads (noise in the last digits, which
    reorders pieces of equal frequency), and the characters it keeps only so that every character is covered get
    made-up scores, each a little lower than the last, in hash-set order. Rounding the scores, giving those
    characters one score and ordering ties by the piece itself removes both.
    """
    # The Unigram model does not expose its scores in Python; the JSON serialization does.
    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    specials, learned = vocab[:4], [(piece, round(score, 6)) for piece, score in vocab[4:]]
    floor = min((score for piece, score in learned if len(piece) > 1), default=max(s for _, s in learned))
    learned = [(piece, floor if len(piece) == 1 and score < floor else score) for piece, score in learned]
    learned.sort(key=lambda item: (-item[1], item[0]))
    return [(piece, score) for piece, score in specials] + learned


def check_mlm_tokenizer(tokenizer) -> None:
    """Raise `InputError` unless the tokenizer can feed masked-language-model training (mask and pad tokens)."""
    for role in ("mask", "pad"):
        if getattr(tokenizer, f"{role}_token") is None or getattr(tokenizer, f"{role}_token_id") is None:
            how = fix(f"train it with train_target_tokenizer or set tokenizer.{role}_token", "train it with minimodel tokenizer")
            raise InputError(f"target tokenizer has no {role} token: {how}")
