"""Masked-LM data, as every MLM step reads it (1, 1b, 2 and held-out evaluation): text packed into blocks of
`max_seq_length` tokens, each block numbered, and BERT masking drawn per block from its own generator, so that a
block is masked the same way in any process and after any resume.
"""

import contextlib
import hashlib
import math
from array import array

import torch
from datasets import Dataset, IterableDataset
from transformers import DataCollatorForLanguageModeling, TrainerCallback

from .checks import InputError, check_sequence_length, fix
from .corpus import split_long_text
from .defaults import MAX_SEQ_LENGTH, MLM_PROBABILITY


# Characters of text tokenised in one call while packing blocks: enough for the Rust tokenizer's batching to pay,
# few enough that its per-token objects (ids, offsets, token strings) stay a few tens of megabytes.
TOKENIZE_CHARS = 2**18


def mlm_blocks(data, tokenizer, max_seq_length: int = MAX_SEQ_LENGTH):
    """Tokenize text (a list of strings or a dataset with a "text" column) and pack it into blocks of
    `max_seq_length` tokens, each line keeping its own `<s> ... </s>`, as RoBERTa's FULL-SENTENCES input does.

    Packing instead of padding one short line per row matters here: Bible verses average ~40 tokens, so padded
    rows would spend most of each step's compute on `<pad>`.

    Each block carries its position in the stream (`"block"`), from which `BlockMasking` draws its masks: a block
    is masked the same way however the batches are split across processes and wherever a run is resumed.

    Memory stays bounded whatever the lines: a text longer than `corpus.MAX_EXAMPLE_CHARS` is cut into pieces
    (each its own `<s> ... </s>`), and a batch's tokens wait for packing in one flat array of machine integers
    rather than as Python ints.
    """
    check_sequence_length(max_seq_length)
    in_memory = isinstance(data, (list, tuple))
    if in_memory:
        data = Dataset.from_dict({"text": list(data)})
    streaming = isinstance(data, IterableDataset)

    def tokenize(pieces, ids):
        if not pieces:
            return
        for row in tokenizer(pieces, add_special_tokens=True, return_attention_mask=False)["input_ids"]:
            ids.extend(row)

    def pack(batch):
        ids, pieces, size = array("q"), [], 0
        for text in batch["text"]:
            for piece in split_long_text(text):
                pieces.append(piece)
                size += len(piece)
                if size >= TOKENIZE_CHARS:  # the tokenizer's own objects for this much text at a time, no more
                    tokenize(pieces, ids)
                    pieces, size = [], 0
        tokenize(pieces, ids)
        blocks = [ids[i : i + max_seq_length].tolist() for i in range(0, len(ids) - max_seq_length + 1, max_seq_length)]
        return {"input_ids": blocks, "attention_mask": [[1] * max_seq_length for _ in blocks]}

    # A streamed dataset may not know its columns up front; every dataset here has "text" (load_text_dataset).
    columns = data.column_names or ["text"]
    kwargs = {} if streaming else {"desc": "Tokenizing and packing"}
    with _no_datasets_bars(in_memory):
        blocks = data.map(pack, batched=True, batch_size=1000, remove_columns=columns, **kwargs)
        blocks = blocks.map(lambda batch, indices: {"block": indices}, batched=True, batch_size=1000, with_indices=True,
                            **({} if streaming else {"desc": "Numbering blocks"}))
    if not streaming and len(blocks) == 0:  # a streamed one is checked when training starts (run_mlm_training)
        raise InputError(too_short(max_seq_length))
    return blocks


@contextlib.contextmanager
def _no_datasets_bars(quiet: bool):
    """datasets' progress bars off, with `quiet`, for text handed over as a list: it is in memory already and packs
    in moments, so its two bars only flashed by (in every held-out evaluation too), and they came before the
    checks of the training that follows."""
    import datasets

    hide = quiet and not datasets.are_progress_bars_disabled()
    if hide:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if hide:
            datasets.enable_progress_bars()


def check_one_block(data, tokenizer, max_seq_length: int) -> None:
    """Raise `InputError` if the text (as `mlm_blocks` takes it) cannot fill one block of `max_seq_length` tokens,
    reading only as far as it needs: so that a corpus too short is refused before a model is loaded or anything is
    tokenised in full. (`mlm_blocks` packs a batch of 1000 examples at a time and drops what is left of each, so a
    corpus that passes here can still, rarely, give no block there; it says so too.)"""
    check_sequence_length(max_seq_length)
    texts = data if isinstance(data, (list, tuple)) else (row["text"] for row in data)
    tokens = 0
    for text in texts:
        for piece in split_long_text(text):
            tokens += len(tokenizer(piece, add_special_tokens=True, return_attention_mask=False)["input_ids"])
            if tokens >= max_seq_length:
                return
    raise InputError(too_short(max_seq_length))


def too_short(max_seq_length) -> str:
    return (f"the text is shorter than one block of {max_seq_length} tokens: pass more text, or a lower "
            f"{fix('max_seq_length', '--max-seq-length')}")


class BlockMasking:
    """BERT masking (`mlm_probability` of the tokens, 15% by default; of those 80% `<mask>`, 10% random, 10% kept)
    in which every block's masks are drawn from its own generator, seeded by `(seed, block number, epoch)`.

    A block is therefore masked the same way whichever process collates it and whenever: a run split over N
    processes sees exactly the masks of the same run in one process, and a run resumed from a checkpoint (killed in
    between, its collator's state lost) the masks of the run that never stopped. One generator for the whole stream
    cannot promise either: its state depends on what else it collated, and the data loader collates one batch ahead.
    Each epoch masks again (RoBERTa's dynamic masking), as `MaskingEpoch` tells the collator the epoch. Blocks
    without a number (not from `mlm_blocks`) fall back to the stock collator, one generator seeded by `seed`.
    """

    def __init__(self, tokenizer, mlm_probability: float = MLM_PROBABILITY, seed: int = 0):
        self.fallback = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
        self.mlm_probability, self.seed, self.epoch = mlm_probability, seed, 0
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)

    def __call__(self, examples):
        numbers = [example.get("block") for example in examples]
        if any(number is None for number in numbers):
            return self.fallback([{k: v for k, v in example.items() if k != "block"} for example in examples])
        input_ids = torch.tensor([example["input_ids"] for example in examples])
        # Per block: three uniform draws per position (masked? <mask>? random?) and a random token, from its own
        # generator; the rest is vectorised (the stock collator's per-row Python made collation a third of a GPU step).
        draws, words = [], []
        for number in numbers:
            generator = torch.Generator().manual_seed(_block_seed(self.seed, int(number), self.epoch))
            draws.append(torch.rand(3, input_ids.shape[1], generator=generator))
            words.append(torch.randint(self.vocab_size, (input_ids.shape[1],), generator=generator))
        draws, words = torch.stack(draws), torch.stack(words)
        masked = (draws[:, 0] < self.mlm_probability) & ~torch.isin(input_ids, self.special_ids)
        labels = input_ids.masked_fill(~masked, -100)
        to_mask = masked & (draws[:, 1] < 0.8)
        to_random = masked & ~to_mask & (draws[:, 2] < 0.5)  # half of the other 20%; the rest keep their token
        input_ids = input_ids.masked_fill(to_mask, self.mask_id).where(~to_random, words)
        batch = {"input_ids": input_ids, "labels": labels}
        if "attention_mask" in examples[0]:
            batch["attention_mask"] = torch.tensor([example["attention_mask"] for example in examples])
        return batch


def _block_seed(seed: int, block: int, epoch: int) -> int:
    """A generator seed for one block in one epoch: the same numbers in every process and every run."""
    digest = hashlib.sha256(f"{seed}/{block}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class MaskingEpoch(TrainerCallback):
    """Tells `BlockMasking` which epoch the Trainer is in (also after a resume, which re-enters the epoch)."""

    def __init__(self, collator: BlockMasking):
        self.collator, self.epochs_begun = collator, 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch: where a resumed run re-enters; the count: a stream of unknown length, whose state.epoch the
        # Trainer measures in max_steps and which may run out (and start again) before reaching 1.
        resumed_at = math.floor(state.epoch + 1e-6) if state.epoch else 0
        self.collator.epoch = max(resumed_at, self.epochs_begun)
        self.epochs_begun += 1


def mlm_collator(tokenizer, mlm_probability: float = MLM_PROBABILITY, seed: int = 0) -> BlockMasking:
    """The masking collator of every MLM step (`BlockMasking`): with one `seed`, the same masks on every run, which
    is what makes held-out losses of different methods comparable and resumed runs exact."""
    return BlockMasking(tokenizer, mlm_probability=mlm_probability, seed=seed)
