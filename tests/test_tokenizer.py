import pytest
from transformers import AutoTokenizer

from hf_minimodel.sample import read_sample
from hf_minimodel.tokenizer import check_mlm_tokenizer, train_target_tokenizer

VOCAB_SIZE = 1000


@pytest.fixture(scope="module")
def corpus():
    return read_sample("ru-synodal.train")[:2000]


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_target_tokenizer(corpus, VOCAB_SIZE, show_progress=False)


def tiny_tokenizer():
    return train_target_tokenizer(["один два три", "три два один"], 100, show_progress=False)


def test_special_tokens_have_xlmr_ids_with_mask_last(tokenizer):
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, VOCAB_SIZE - 1]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    ids = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert ids == (0, 1, 2, 3)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id) == (0, 2, VOCAB_SIZE - 1)


def test_single_sequence_is_wrapped_like_xlmr(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("И сказал Бог")["input_ids"])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    assert "".join(tokens[1:-1]) == "▁И▁сказал▁Бог"


def test_pair_is_joined_with_a_double_separator(tokenizer):
    first = tokenizer("И сказал", add_special_tokens=False)["input_ids"]
    second = tokenizer("Бог", add_special_tokens=False)["input_ids"]
    assert tokenizer("И сказал", "Бог")["input_ids"] == [0, *first, 2, 2, *second, 2]


def test_mask_token_is_one_piece_and_takes_its_space(tokenizer):
    ids = tokenizer("И сказал <mask> Моисею")["input_ids"]
    assert ids.count(tokenizer.mask_token_id) == 1
    assert tokenizer.convert_ids_to_tokens(ids[ids.index(tokenizer.mask_token_id) - 1]) == "▁сказал"


def test_text_is_nfkc_normalized(tokenizer):
    # A full-width comma (U+FF0C) is the same token as ",".
    assert tokenizer("землю，")["input_ids"] == tokenizer("землю,")["input_ids"]


def test_save_and_autotokenizer_load_give_identical_ids(tokenizer, corpus, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    texts = [*corpus[:20], "землю， ﬁ <mask> ω"]
    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert reloaded("А", "Б")["input_ids"] == tokenizer("А", "Б")["input_ids"]
    assert (reloaded.mask_token_id, reloaded.pad_token_id, reloaded.model_max_length) == (VOCAB_SIZE - 1, 1, 512)


def test_training_is_reproducible(tokenizer, corpus):
    again = train_target_tokenizer(corpus, VOCAB_SIZE, show_progress=False)
    assert again.get_vocab() == tokenizer.get_vocab()


def test_small_corpus_gives_a_smaller_vocab_with_mask_still_last():
    tokenizer = tiny_tokenizer()
    assert len(tokenizer) < 100
    assert tokenizer.mask_token_id == len(tokenizer) - 1


def test_vocab_too_small_for_the_alphabet_says_so(corpus):
    with pytest.raises(ValueError, match="vocab_size=20 cannot hold .* distinct characters"):
        train_target_tokenizer(corpus[:50], 20, show_progress=False)


def test_no_text_is_an_error():
    with pytest.raises(ValueError, match="no text to train"):
        train_target_tokenizer(["", "  "], 100, show_progress=False)


def test_check_mlm_tokenizer_accepts_a_trained_tokenizer(tokenizer):
    check_mlm_tokenizer(tokenizer)


@pytest.mark.parametrize("missing", ["mask", "pad"])
def test_check_mlm_tokenizer_names_the_missing_token(missing):
    tokenizer = tiny_tokenizer()
    setattr(tokenizer, f"{missing}_token", None)
    with pytest.raises(ValueError, match=f"target tokenizer has no {missing} token"):
        check_mlm_tokenizer(tokenizer)
