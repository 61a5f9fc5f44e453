"""The masking collator of every MLM step (blocks.BlockMasking), checked directly on fixed seeds: which tokens it
masks, how many, what the labels hold, and BERT's 80/10/10 split of what becomes of a masked token."""

import pytest
import torch

from hf_minimodel.tokenizer import train_target_tokenizer
from hf_minimodel.sample import read_sample
from hf_minimodel.blocks import BlockMasking, mlm_blocks, mlm_collator

LENGTH, BLOCKS = 64, 400  # 25,600 tokens: the shares below are known to about half a percent


@pytest.fixture(scope="module")
def tokenizer():
    return train_target_tokenizer(read_sample("en-kjv.train")[:300], vocab_size=300, show_progress=False)


@pytest.fixture(scope="module")
def blocks(tokenizer):
    """Blocks as mlm_blocks gives them, each line's <s> ... </s> inside."""
    texts = read_sample("en-kjv.train")[:2000]
    packed = mlm_blocks(texts, tokenizer, LENGTH)
    assert len(packed) >= BLOCKS
    return [packed[i] for i in range(BLOCKS)]


def _masked(collator, blocks):
    batch = collator(blocks)
    original = torch.tensor([block["input_ids"] for block in blocks])
    return original, batch


def test_labels_hold_the_original_token_where_masked_and_minus_100_elsewhere(tokenizer, blocks):
    original, batch = _masked(mlm_collator(tokenizer, seed=0), blocks)
    masked = batch["labels"] != -100
    assert torch.equal(batch["labels"][masked], original[masked])
    assert torch.equal(batch["input_ids"][~masked], original[~masked])  # what is not masked is not touched
    assert torch.equal(batch["attention_mask"], torch.ones_like(original))


def test_fifteen_percent_of_the_text_tokens_and_never_a_special_one(tokenizer, blocks):
    original, batch = _masked(mlm_collator(tokenizer, seed=0), blocks)
    masked = batch["labels"] != -100
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    assert special.sum() > BLOCKS  # <s> and </s> of every line: there is something to leave alone
    assert not (masked & special).any()
    assert masked.sum() / (~special).sum() == pytest.approx(0.15, abs=0.006)
    doubled = BlockMasking(tokenizer, mlm_probability=0.3, seed=0)(blocks)
    assert (doubled["labels"] != -100).sum() / (~special).sum() == pytest.approx(0.30, abs=0.008)


def test_of_the_masked_tokens_80_percent_become_mask_10_random_and_10_stay(tokenizer, blocks):
    original, batch = _masked(mlm_collator(tokenizer, seed=0), blocks)
    masked = batch["labels"] != -100
    inputs, count = batch["input_ids"][masked], int(masked.sum())
    to_mask = inputs == tokenizer.mask_token_id
    kept = inputs == original[masked]
    random = ~to_mask & ~kept
    assert to_mask.sum() / count == pytest.approx(0.8, abs=0.015)
    assert random.sum() / count == pytest.approx(0.1, abs=0.012)
    assert kept.sum() / count == pytest.approx(0.1, abs=0.012)  # (a random draw can land on the same token: 1 in 300)
    assert len(set(inputs[random].tolist())) > 50 and inputs[random].max() < len(tokenizer)  # drawn from the vocabulary


def test_a_block_is_masked_by_its_number_seed_and_epoch_alone(tokenizer, blocks):
    collator = mlm_collator(tokenizer, seed=0)
    first, second = collator(blocks[:8]), collator(blocks[8:16][::-1] + blocks[:8][::-1])
    # The same blocks masked the same way in another batch, in another order (another process, a resumed run).
    assert torch.equal(second["input_ids"][8:].flip(0), first["input_ids"])
    assert torch.equal(second["labels"][8:].flip(0), first["labels"])
    collator.epoch = 1  # each epoch masks again
    assert not torch.equal(collator(blocks[:8])["labels"], first["labels"])
    assert not torch.equal(mlm_collator(tokenizer, seed=1)(blocks[:8])["labels"], first["labels"])
    renumbered = [{**block, "block": block["block"] + 1000} for block in blocks[:8]]
    assert not torch.equal(mlm_collator(tokenizer, seed=0)(renumbered)["labels"], first["labels"])


def test_blocks_without_a_number_fall_back_to_the_stock_collator(tokenizer, blocks):
    plain = [{"input_ids": block["input_ids"]} for block in blocks[:50]]
    original, batch = _masked(mlm_collator(tokenizer, seed=0), plain)
    masked = batch["labels"] != -100
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    assert masked.any() and not (masked & special).any() and torch.equal(batch["labels"][masked], original[masked])
