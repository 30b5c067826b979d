#!/usr/bin/env python3
"""Reference fixtures for ImageReward (src/rewards/image_reward.h) and BERT's WordPiece tokenizer
(src/text/bert_tokenizer.h), computed with the reference code:

  /usr/bin/python3 tools/make_image_reward_fixtures.py --src /tmp/refsrc --imagereward /tmp/irsrc \
      --out tests/data/rewards

--src is the transformers source tree of tools/make_parity_fixtures.py (BertTokenizer, and the
transformers modules BLIP's med.py imports); --imagereward is the ImageReward package source at
github THUDM/ImageReward c1392c6dd0fd6ecd6d416c96959ab744a6d0a8fb:
`git archive c1392c6 ImageReward/models/BLIP | tar -x -C /tmp/irsrc`. Its med.py (BLIP's BERT)
and vit.py (BLIP's ViT) run unchanged. vit.py imports timm and fairscale, which are not installed:
placeholders stand in for the pieces it uses. PatchEmbed is the only one that computes: timm's
PatchEmbed without a norm layer is a Conv2d(kernel = stride = patch) whose output is flattened to
tokens, which the placeholder does; the others are init helpers and wrappers never called here.
The scoring path is ImageReward.score()'s (ImageReward/ImageReward.py), written out below, since
that file needs the released weights and PIL images.
"""
import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_parity_fixtures import perturb_, setup_paths  # noqa: E402
from make_reward_fixtures import clip_preprocess, save  # noqa: E402

MEAN, STD = 0.16717362830052426, 1.0333394966054072  # ImageReward.__init__
TEXT_LENGTH = 35

# A tiny WordPiece vocabulary: specials first as in bert-base-uncased's order of [PAD] ... [MASK] use.
VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "circle", "square", "##s",
         "un", "##aff", "##able", "cafe", ",", "!", ".", "'", "the", "of", "two", "left", "to", "##ly", "big", "的",
         "x", "##y", "##z", "photo", "-", "$", "%", "(", ")", "green", "and", "e", "##e"]
# Strings that exercise each step: case, accents, punctuation (ASCII symbols too), CJK spacing,
# control characters, tabs/newlines, unknown words, long words, special tokens in the text, truncation.
TOKENIZER_CASES = ["a red circle", "Two BLUE squares!", "Unaffable, café.", "the photo of a big-red circle",
                   "x xy xyz xyzz", "a\tred\ncircle\u0007", "左的右 a", "$5 (green) and 100%", "Ｅ ｅ é É",
                   "a" * 101 + " red", "a [SEP] red[MASK]blue", "don't", "\u00a0a\u2028red",
                   " ".join(["red circle"] * 20), ""]
PROMPTS = ["a red circle", "Two blue squares, left of the big circle!"]


def load_blip_modules(root):
    """med.py and vit.py from the ImageReward package, with placeholder timm/fairscale modules."""
    import transformers.modeling_utils  # noqa: F401  (before the placeholders: it probes for timm)
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    class PatchEmbed(nn.Module):  # timm's PatchEmbed with norm_layer=None, flatten=True
        def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768):
            super().__init__()
            self.num_patches = (img_size // patch_size) ** 2
            self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    def unused(*args, **kwargs):
        raise RuntimeError("placeholder called")

    module("timm")
    module("timm.models")
    module("timm.models.vision_transformer", _cfg=unused, PatchEmbed=PatchEmbed)
    module("timm.models.registry", register_model=lambda f: f)
    module("timm.models.layers", trunc_normal_=lambda t, std=1.0: nn.init.normal_(t, std=std), DropPath=unused)
    module("timm.models.helpers", named_apply=unused, adapt_input_conv=unused)
    module("fairscale")
    module("fairscale.nn")
    module("fairscale.nn.checkpoint")
    module("fairscale.nn.checkpoint.checkpoint_activations", checkpoint_wrapper=unused)
    loaded = {}
    for name in ("med", "vit"):
        spec = importlib.util.spec_from_file_location(f"blip_{name}", Path(root) / "ImageReward/models/BLIP" / f"{name}.py")
        loaded[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded[name])
    return loaded["med"], loaded["vit"]


def blip_tokenizer(vocab_file):
    from transformers import BertTokenizer, tokenization_utils_base
    # Without the tokenizers package, transformers falls back to a dataclass AddedToken with eq=True
    # and so no __hash__, which its own dict lookups need.
    # It also lacks the __setstate__ add_special_tokens calls. Both as in tokenizers' AddedToken.
    tokenization_utils_base.AddedToken.__hash__ = lambda self: hash(self.content)
    tokenization_utils_base.AddedToken.__setstate__ = lambda self, state: self.__dict__.update(state)
    tokenizer = BertTokenizer(vocab_file)  # do_lower_case=True, as bert-base-uncased
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})  # BLIP's init_tokenizer
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="transformers source tree (see make_parity_fixtures.py)")
    p.add_argument("--imagereward", required=True, help="folder holding ImageReward/models/BLIP/ at c1392c6")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    setup_paths(args.src)
    torch.set_num_threads(1)
    med, vit = load_blip_modules(args.imagereward)
    out = Path(args.out)
    folder = out / "image_reward"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tokenizer = blip_tokenizer(str(folder / "vocab.txt"))

    cases = []
    for text in TOKENIZER_CASES:
        enc = tokenizer(text, padding="max_length", truncation=True, max_length=TEXT_LENGTH)
        cases.append({"text": text, "tokens": tokenizer.tokenize(text), "input_ids": enc["input_ids"],
                      "attention_mask": enc["attention_mask"]})
    (out / "bert_tokens.json").write_text(json.dumps({"vocab_size": len(tokenizer), "max_length": TEXT_LENGTH,
                                                      "cases": cases}, ensure_ascii=False, indent=1) + "\n",
                                          encoding="utf-8")

    # A tiny ImageReward: ViT 32² patch 8 (16 patches), width 64, 4 heads (so vision_config.json is
    # needed: 64 / 64 = 1 head otherwise); BERT width 48, 2 layers; head 48 -> 32 -> 16 -> 8 -> 4 -> 1.
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    visual = vit.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4)
    config = {"architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": 48, "initializer_range": 0.02, "intermediate_size": 96,
              "layer_norm_eps": 1e-12, "max_position_embeddings": 40, "model_type": "bert", "num_attention_heads": 4,
              "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": len(tokenizer),
              "encoder_width": 64, "add_cross_attention": True}
    (folder / "med_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "vision_config.json").write_text(json.dumps({"num_attention_heads": 4}) + "\n")
    bert_config = med.BertConfig.from_json_file(str(folder / "med_config.json"))
    bert_config.encoder_width = 64
    text = med.BertModel(config=bert_config, add_pooling_layer=False)
    mlp = nn.Sequential(nn.Linear(48, 32), nn.Dropout(0.2), nn.Linear(32, 16), nn.Dropout(0.2), nn.Linear(16, 8),
                        nn.Dropout(0.1), nn.Linear(8, 4), nn.Linear(4, 1))
    vision_proj, text_proj = nn.Linear(64, 16), nn.Linear(48, 16)  # in the release's state dict, unused by score()
    for m in (visual, text, mlp, vision_proj, text_proj):
        perturb_(m, gen)
        m.eval()
    with torch.no_grad():  # default inits shrink the spread ~√3 a layer: widen, so that scores differ clearly
        for layer in mlp:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(3.0)

    state = {}
    for prefix, m in (("blip.visual_encoder.", visual), ("blip.text_encoder.", text), ("blip.vision_proj.", vision_proj),
                      ("blip.text_proj.", text_proj), ("mlp.layers.", mlp)):
        state.update({prefix + k: v.clone() for k, v in m.state_dict().items()})
    assert "blip.text_encoder.embeddings.position_ids" in state  # a persistent buffer in med.py
    torch.save(state, folder / "ImageReward.pt")

    # ImageReward.score(): preprocess, visual_encoder, text_encoder cross-attending, mlp on [CLS], normalise;
    # in double from the float32 weights just saved (exact), so that the C++ side can compare to 1e-9.
    for m in (visual, text, mlp):
        m.double()
    images = torch.rand(2, 3, 40, 48, generator=gen, dtype=torch.float64) * 2 - 1
    pixels = clip_preprocess(images, 32, torchvision_crop=True)
    enc = tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt")
    with torch.no_grad():
        image_embeds = visual(pixels)
        image_atts = torch.ones(image_embeds.size()[:-1], dtype=torch.long)
        hidden = text(enc.input_ids, attention_mask=enc.attention_mask, encoder_hidden_states=image_embeds,
                      encoder_attention_mask=image_atts, return_dict=True).last_hidden_state
        scores = (mlp(hidden[:, 0, :]) - MEAN) / STD
    save(out / "image_reward_expected.safetensors",
         {"images": images, "pixels": pixels, "input_ids": enc.input_ids, "attention_mask": enc.attention_mask,
          "image_tokens": image_embeds, "text_hidden": hidden, "scores": scores.squeeze(-1)})
    (out / "image_reward_prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    print("scores", scores.squeeze(-1).tolist())


if __name__ == "__main__":
    main()
