"""Import plumbing for the parity reference (tools/make_parity_fixtures.py): stand-ins for packages that
diffusers / transformers import at module level but never use when a model is built from a config and run
on CPU tensors (hub downloads, safetensors file I/O, fast tokenizers). No model maths lives here.

stub_package(name) makes `name` and every `name.X.Y` importable; each attribute is a placeholder:
  *Error / *Exception / *Warning -> a fresh Exception subclass (so `except X:` clauses compile)
  decorators (validate_hf_hub_args, _deprecate_*) -> identity
  UPPER_CASE constants -> a path ($PARITY_STUB_CACHE) / regex / False
  CamelCase names -> an empty class; other names -> a function returning None
"""
import importlib.abc
import os
import importlib.machinery
import sys
import types


def make_getattr(modname):
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name.endswith(("Error", "Exception", "Warning")):
            return type(name, (Exception,), {})
        if name == "validate_hf_hub_args" or name.startswith("_deprecate"):
            def deco(*a, **k):
                if len(a) == 1 and callable(a[0]) and not k:
                    return a[0]
                return lambda f: f
            return deco
        if name.isupper():
            if any(s in name for s in ("HOME", "CACHE", "PATH")):
                # transformers/diffusers write a cache-version marker there at import time
                return os.environ.get("PARITY_STUB_CACHE", "/tmp/parity_stub_cache")
            return r"^[0-9a-f]{40}$" if "REGEX" in name else False
        if name[:1].isupper():
            return type(name, (), {"__init__": lambda self, *a, **k: None})

        def _placeholder(*a, **k):
            return None

        _placeholder.__name__ = name
        return _placeholder
    return __getattr__


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, root):
        self.root = root

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(self.root + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__getattr__ = make_getattr(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


def stub_package(module_globals, version):
    name = module_globals["__name__"]
    module_globals["__version__"] = version
    module_globals["__getattr__"] = make_getattr(name)
    sys.meta_path.insert(0, _Finder(name))
