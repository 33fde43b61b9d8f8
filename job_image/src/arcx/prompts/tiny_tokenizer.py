"""A tiny Qwen2-style tokenizer, built locally, for tests and the embedded demo.

Nothing is downloaded: a byte-level BPE is trained with the ``tokenizers`` library on a
small corpus made of the prompt's own words and grid texts, then saved in the layout
``transformers.AutoTokenizer.from_pretrained`` reads (no custom code). Properties the rest
of arcx relies on:

- byte-level, so any text encodes and decodes back unchanged;
- every digit is a token on its own and so is every newline, as in Qwen2, so a grid's
  tokens line up with its cells and rows;
- ChatML special tokens as in Qwen2: ``<|endoftext|>`` (padding), ``<|im_start|>`` and
  ``<|im_end|>`` (end of turn and end of sequence), and a ChatML chat template.
"""

from __future__ import annotations

import random
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from arcx.prompts import templates

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)
VOCAB_SIZE = 640

# Pieces the BPE may merge within, never across: a single digit, a single newline, an
# optional space and a word, an optional space and a run of punctuation, other whitespace.
_PRETOKENIZE = r"\p{N}|\n| ?\p{L}+| ?[^\s\p{L}\p{N}]+|[^\S\n]+"

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_REPLACEMENT_SYMBOLS = "ñò÷ûąćďęĚĞ"


def _random_grid(rng: random.Random) -> list[list[int]]:
    rows, cols = rng.randint(1, 12), rng.randint(1, 12)
    return [[rng.randint(0, 9) for _ in range(cols)] for _ in range(rows)]


def _grid_texts(grid: list[list[int]]) -> list[str]:
    minimal = "\n".join("".join(str(v) for v in row) for row in grid)
    numbered = "\n".join(f"{i + 1} {line}" for i, line in enumerate(minimal.splitlines()))
    separated = "\n".join("|".join(str(v) for v in row) for row in grid)
    shape = f"```grid shape: {len(grid)}x{len(grid[0])}\n{numbered}\n```"
    replaced = minimal.translate({ord(str(d)): s for d, s in enumerate(_REPLACEMENT_SYMBOLS)})
    return [minimal, numbered, separated, shape, f"```grid\n{minimal}\n```", replaced]


def training_corpus(seed: int = 0, n_grids: int = 60) -> list[str]:
    """The texts the tiny tokenizer is trained on: the prompt words and encoded grids."""
    rng = random.Random(seed)
    # The fixed texts appear in every prompt: repeat them so their words become tokens.
    fixed = [
        templates.SYSTEM_PROMPT,
        templates.TASK_STATEMENT,
        templates.ASSISTANT_PREFIX,
        "system\nuser\nassistant\n",
    ]
    corpus = fixed * 3
    for n in range(1, 11):
        corpus.append(templates.EXAMPLE_TEMPLATE.format(number=n, input="", output=""))
    corpus.append(templates.TEST_TEMPLATE.format(input=""))
    for _ in range(n_grids):
        corpus.extend(_grid_texts(_random_grid(rng)))
    return corpus


def build_tokenizer_object(vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Train the byte-level BPE in memory (deterministic for a given corpus)."""
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


def build_tiny_tokenizer(out_dir: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and the special-tokens map into ``out_dir``."""
    from transformers import PreTrainedTokenizerFast  # heavy import, only when building

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer_object(),
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
