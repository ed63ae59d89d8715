"""The encoder and where model artifacts live."""

from __future__ import annotations

from triage.conf.fields import Parser, Setting, SettingError, as_int, as_path, as_stripped, as_text


def _one_of(*choices: str) -> Parser[str]:
    def parse(name: str, text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise SettingError(f"{name}={text!r}: choose one of {', '.join(choices)}")
        return value

    return Parser(parse, "blank")


ENCODER_PATH = Setting(
    "TRIAGE_ENCODER_PATH",
    "",
    as_text,
    "path",
    "A local transformers directory (safetensors weights) to embed texts with.",
    shown="unset (the packaged all-MiniLM-L6-v2)",
)
ENCODER_FAMILY = Setting(
    "TRIAGE_ENCODER_FAMILY",
    "minilm",
    _one_of("minilm", "mpnet", "bge", "e5"),
    "`minilm`/`mpnet`/`bge`/`e5`",
    "The encoder's family: its pooling and prefix; `minilm` and `mpnet` have packaged models "
    '(README, "Choosing the encoder").',
)
ENCODER_DEVICE = Setting(
    "TRIAGE_ENCODER_DEVICE",
    "cpu",
    as_stripped,
    "`cpu`/`cuda`/`cuda:N`",
    "Where the torch encoder runs; part of the embedding space, so vectors are not shared.",
)


def _threads(name: str, text: str) -> int | None:
    value = text.strip().lower()
    if value == "auto":
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise SettingError(f"{name}={text!r}: use auto or a whole number of threads, 1 or more")
    return threads


ENCODER_THREADS = Setting(
    "TRIAGE_ENCODER_THREADS",
    "auto",
    Parser(_threads, "blank"),
    "`auto` or threads",
    "CPU threads each process's encoder computes with. `auto`: in a Celery worker's prefork "
    "pool, the cores shared evenly among its processes (at least 1 each), so classify tasks "
    "running at once do not fight over the cores; elsewhere the runtime's default, every core.",
)
HEAD = Setting(
    "TRIAGE_HEAD",
    "ensemble",
    _one_of("ensemble", "embedding"),
    "`ensemble`/`embedding`",
    "New models' head: the embedding head averaged with a TF-IDF head, plus a vote of the "
    "nearest labelled examples, or the embedding head alone (benchmarks/model_quality.py "
    "chose the default).",
)
ENCODER_RUNTIME = Setting(
    "TRIAGE_ENCODER_RUNTIME",
    "torch",
    as_text,
    "`torch`/`onnx-int8`",
    "How new models' encoder runs: `torch` (fp32) or `onnx-int8` (ONNX, quantised: faster).",
)
ENCODER_CLASS = Setting(
    "TRIAGE_ENCODER_CLASS",
    "",
    as_text,
    "dotted path",
    "An encoder class used instead of the runtime's (the tests use a small fake).",
    shown="unset (the runtime's)",
)
MAX_LENGTH = Setting(
    "TRIAGE_MAX_LENGTH",
    "256",
    as_int,
    "tokens",
    "Tokens of each text the model reads; analysts see the whole text.",
)
BATCH_SIZE = Setting("TRIAGE_BATCH_SIZE", "64", as_int, "rows", "Rows per encoder batch.")
BATCH_TOKENS = Setting(
    "TRIAGE_BATCH_TOKENS",
    "1024",
    as_int,
    "tokens",
    "Padded tokens per encoder batch (rows × longest row): long texts go in smaller batches.",
)
ARTIFACT_DIR = Setting(
    "TRIAGE_ARTIFACT_DIR",
    lambda c: str(c.base_dir / "var" / "models"),
    as_path,
    "path",
    "Where model versions and exported encoders are kept; shared by web and workers.",
    shown="`var/models` in the checkout",
)
