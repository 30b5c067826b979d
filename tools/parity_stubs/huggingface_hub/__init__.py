"""Stub of huggingface_hub (import plumbing only); see ../_stubpkg.py."""
from _stubpkg import stub_package

__path__ = []
stub_package(globals(), "0.24.0")
