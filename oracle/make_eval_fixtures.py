"""Generate the committed tokenizer fixtures of the eval tests (deterministic; run by hand, not by tests).

    .venv/bin/python oracle/make_eval_fixtures.py

Writes fixtures/eval/:
  bytelevel-tokenizer/{tokenizer.json, tokenizer_config.json}: a GPT-2-style byte-level BPE (vocab 400) trained
      on Emma; made with add_bos_token=true, which transformers 5 folds into tokenizer.json's post-processor;
  bytelevel-eos-tokenizer/: the same tokenizer.json with add_bos_token=false, add_eos_token=true stated in
      tokenizer_config.json (those flags override the post-processor in transformers);
  tokenizer-expected.json: Austen excerpts (Pride and Prejudice, Sense and Sensibility) with the ids that
      Python `tokenizers` gives for them: raw tokenizer.json with and without its post-processor, "ids" under
      the project's special-token rule (rule_ids below), and "auto_ids" from transformers 5.18's AutoTokenizer
      (which ignores the tokenizer_config flags; it agrees with "ids" whenever the config states no flags), for the metaspace tokenizer of fixtures/models/mixtral and the byte-level one above.
The JS tests (src/eval/tokenizer.test.ts) read these files and need no Python.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AUSTEN = REPO / "fixtures" / "austen"
OUT = REPO / "fixtures" / "eval"


def excerpt(name: str, start: int, length: int) -> str:
    return (AUSTEN / name).read_text(encoding="utf-8")[start : start + length]


def build_bytelevel(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|bos|>", "<|eos|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator([excerpt("emma.txt", 0, 200_000)], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>", add_bos_token=True)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    for extra in ("special_tokens_map.json", "chat_template.jinja"):
        (out / extra).unlink(missing_ok=True)


def rule_ids(raw, flags: dict, text: str) -> list[int]:
    """The project's special-token rule: explicit add_bos_token / add_eos_token in tokenizer_config.json win
    (as in transformers 4 fast Llama-style and all slow tokenizers); otherwise tokenizer.json's post-processor."""
    if "add_bos_token" not in flags and "add_eos_token" not in flags:
        return raw.encode(text).ids
    ids = raw.encode(text, add_special_tokens=False).ids
    bos = [raw.token_to_id(flags["bos_token"])] if flags.get("add_bos_token") else []
    eos = [raw.token_to_id(flags["eos_token"])] if flags.get("add_eos_token") else []
    return bos + ids + eos


def main() -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    build_bytelevel(OUT / "bytelevel-tokenizer")
    # Same tokenizer, but tokenizer_config.json states the special-token rule explicitly (no BOS, append EOS):
    # transformers then rebuilds the post-processor from these flags instead of using tokenizer.json's.
    flags = OUT / "bytelevel-eos-tokenizer"
    flags.mkdir(exist_ok=True)
    (flags / "tokenizer.json").write_text((OUT / "bytelevel-tokenizer" / "tokenizer.json").read_text())
    cfg = json.loads((OUT / "bytelevel-tokenizer" / "tokenizer_config.json").read_text())
    (flags / "tokenizer_config.json").write_text(json.dumps({**cfg, "add_bos_token": False, "add_eos_token": True}, indent=2) + "\n")
    texts = {
        "pride-opening": excerpt("prideprejudice.txt", 0, 2500),
        "sense-middle": excerpt("sensesensibility.txt", 300_000, 2000),
        "short": 'It is a truth universally acknowledged.\n"My dear Mr. Bennet," said his lady.',
    }
    cases = []
    for tdir in ("fixtures/models/mixtral", "fixtures/eval/bytelevel-tokenizer", "fixtures/eval/bytelevel-eos-tokenizer"):
        raw = Tokenizer.from_file(str(REPO / tdir / "tokenizer.json"))
        auto = AutoTokenizer.from_pretrained(str(REPO / tdir))
        flags = json.loads((REPO / tdir / "tokenizer_config.json").read_text())
        for key, text in texts.items():
            cases.append(
                {
                    "tokenizer": tdir,
                    "text_key": key,
                    "raw_ids": raw.encode(text).ids,
                    "raw_ids_no_special": raw.encode(text, add_special_tokens=False).ids,
                    "auto_ids": auto(text)["input_ids"],
                    "ids": rule_ids(raw, flags, text),
                }
            )
    (OUT / "tokenizer-expected.json").write_text(json.dumps({"texts": texts, "cases": cases}) + "\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
