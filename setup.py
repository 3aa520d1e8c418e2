"""Build script for the optional C kernel; all metadata is in pyproject.toml.

The kernel (multi-scale Felzenszwalb segmentation for XRAI) is optional: where
no C compiler is available the package installs without it and XRAI falls
back to scikit-image's implementation, with the same regions, only slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sklearn_relevance.explainers._felzenszwalb",
            sources=["sklearn_relevance/explainers/_felzenszwalb.c"],
            extra_compile_args=["-O3"] if __import__("os").name != "nt" else [],
            optional=True,
        )
    ]
)
