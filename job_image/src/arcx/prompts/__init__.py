"""Grid encoders, the prompt builder, augmentations and answer parsing."""

from arcx.prompts.answers import ParsedAnswer, parse_answer
from arcx.prompts.augment import Augmentation, choose_augmentation
from arcx.prompts.builder import Prompt, build_prompt, prompt_messages
from arcx.prompts.encoder_spec import EncoderSpecError, parse_encoder
from arcx.prompts.encoders import EncodingError, GridEncoder

__all__ = [
    "Augmentation",
    "EncoderSpecError",
    "EncodingError",
    "GridEncoder",
    "ParsedAnswer",
    "Prompt",
    "build_prompt",
    "choose_augmentation",
    "parse_answer",
    "parse_encoder",
    "prompt_messages",
]
