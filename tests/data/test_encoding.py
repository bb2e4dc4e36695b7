"""Label masking and truncation, checked against hand-built expectations."""

from loralab.data.encoding import IGNORE_INDEX, encode_example, pad_right


def test_labels_cover_exactly_the_answer_and_eos(tokenizer):
    prompt, target = "Question: Which is a fish?\n", "Answer: The answer is B."
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    item = encode_example(tokenizer, prompt, target, max_length=256)
    assert item.input_ids == prompt_ids + target_ids + [tokenizer.eos_token_id]
    assert item.labels == [IGNORE_INDEX] * len(prompt_ids) + target_ids + [tokenizer.eos_token_id]
    answer = [t for t in item.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(answer[:-1]) == target
    assert answer[-1] == tokenizer.eos_token_id
    assert tokenizer.bos_token_id not in answer


class CharTokenizer:
    """One id per character; adds BOS (1) with special tokens, like Llama 3's tokenizer."""

    bos_token_id, eos_token_id = 1, 2

    def __call__(self, text, add_special_tokens=True):
        ids = [ord(c) for c in text]
        return {"input_ids": ([1] if add_special_tokens else []) + ids}


def test_hand_checked_example():
    """A tokenizer that adds BOS: the BOS stays in the prompt, never in the labels."""
    item = encode_example(CharTokenizer(), "ab", "C", max_length=16)
    assert item.input_ids == [1, 97, 98, 67, 2]
    assert item.labels == [-100, -100, -100, 67, 2]
    cut = encode_example(CharTokenizer(), "abcdef", "XY", max_length=6)
    # 3 answer ids (X, Y, EOS) leave 3 for the prompt: BOS + the last two context characters.
    assert cut.input_ids == [1, 101, 102, 88, 89, 2]
    assert cut.labels == [-100, -100, -100, 88, 89, 2]
    assert cut.truncated
    assert encode_example(CharTokenizer(), "abcdef", "XY", max_length=6, overflow="drop") is None


def test_reference_layout_hand_checked():
    """The paper code's labels: the answer tokenised on its own (BOS included, no EOS),
    aligned with the end of the sequence; over-long examples cut on the right."""
    item = encode_example(CharTokenizer(), "ab", "C", max_length=16, layout="reference")
    # ids: BOS a b C (no EOS); labels: the answer "BOS C" under the last two positions, so
    # BOS is predicted after "a" and C after "b".
    assert item.input_ids == [1, 97, 98, 67]
    assert item.labels == [-100, -100, 1, 67]
    assert not item.truncated
    cut = encode_example(CharTokenizer(), "abcdef", "XY", max_length=6, layout="reference")
    # BOS a b c d e | f X Y cut away; the labels (BOS X Y) now sit on prompt positions.
    assert cut.input_ids == [1, 97, 98, 99, 100, 101]
    assert cut.labels == [-100, -100, -100, 1, 88, 89]
    assert cut.truncated
    dropped = encode_example(
        CharTokenizer(), "abcdef", "XY", max_length=6, overflow="drop", layout="reference"
    )
    assert dropped is None


SIZES = {"train": 0, "validation": 0, "test": 8}


def test_reference_layout_scores_the_same_option_token(tokenizer):
    """Score mode reads the option letter in both layouts (the reference's BOS shifts it)."""
    from loralab.data.datamodule import TaskDataModule
    from loralab.tasks import build_task

    task = build_task(
        {"name": "demo", "source": "bundled", "seed": 0, "max_examples": SIZES},
        splits=("test",),
    )
    picked = {}
    for layout in ("loralab", "reference"):
        cfg = {"max_length": 256, "overflow": "truncate", "batch_size": 4, "eval_batch_size": 4}
        data = TaskDataModule(task, CharTokenizer(), dict(cfg, seed=0, target_layout=layout))
        data.setup()
        example, offset, options, gold = data.encoded["test"][0][:4]
        answer = [t for t in example.labels if t != IGNORE_INDEX]
        picked[layout] = answer[offset]
        assert answer[offset] == options[gold]
    assert picked["loralab"] == picked["reference"]


def test_answer_is_never_truncated(tokenizer):
    prompt = "Context: " + "very long context " * 200
    item = encode_example(tokenizer, prompt, "Answer: The answer is A.", max_length=64)
    assert len(item.input_ids) == 64
    answer = [t for t in item.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(answer[:-1]) == "Answer: The answer is A."


def test_padding(tokenizer):
    a = encode_example(tokenizer, "x", "Answer: The answer is A.", 64)
    b = encode_example(tokenizer, "a much longer prompt", "Answer: The answer is B.", 64)
    batch = pad_right([a, b], pad_id=tokenizer.pad_token_id)
    assert batch["attention_mask"][0].sum() == len(a.input_ids)
    assert (batch["labels"][0, len(a.input_ids) :] == IGNORE_INDEX).all()
