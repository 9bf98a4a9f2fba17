"""A real ``LlavaProcessor`` for the world: word-level tokenizer, chat template and CLIP image processor.

The tokenizer's vocabulary is the world's language (:func:`study.world.language.vocabulary`) plus the
special tokens; words are split on whitespace, so decoding returns exactly the world's text format.
The chat template is LLaVA-1.5's ``USER: <image> … ASSISTANT: … </s>`` form; rendering a prompt with
``add_generation_prompt=True`` is a prefix of rendering the full conversation, which TRL's
prompt-completion collators rely on.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlavaProcessor, PreTrainedTokenizerFast
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<image>")
ROLE_TOKENS = ("USER:", "ASSISTANT:")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }} "
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image> {% elif part['type'] == 'text' %}{{ part['text'] }} {% endif %}"
    "{% endfor %}{% endif %}"
    "{% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %} </s> "
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    vocab: dict[str, int] = {}
    for tok in (*SPECIAL_TOKENS, *ROLE_TOKENS, *words):
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        padding_side="left",
    )


def build_processor(words: list[str], image_size: int, patch_size: int) -> LlavaProcessor:
    """Processor expanding ``<image>`` into ``(image_size // patch_size) ** 2`` image tokens."""
    if image_size % patch_size:
        raise ValueError(f"model.patch_size ({patch_size}) must divide the world's image_size ({image_size})")
    tokenizer = build_tokenizer(words)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=True,
        do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
