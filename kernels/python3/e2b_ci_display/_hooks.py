"""Run a callback right after a module is first imported.

The rich-output additions must not import pandas, matplotlib or PIL at kernel
start (half a second and ~60 MB nobody may need). Where a formatter
registered by type name is not enough (patching PIL's save/show, matplotlib's
boxplot and rc), a meta-path finder wraps the loader of just the modules
named here; every other import is untouched, and the finder leaves
sys.meta_path once all its hooks have fired.
"""

import sys

_hooks = {}  # module name -> [callback(module)]


def _fire(name, module):
    for cb in _hooks.pop(name, ()):
        try:
            cb(module)
        except Exception:  # a hook must never break the user's import
            pass
    if not _hooks and _Finder.instance in sys.meta_path:
        sys.meta_path.remove(_Finder.instance)


class _Loader:
    """Runs the real loader, then the hooks. The module only ever sees the
    real loader: spec.loader is put back before its code runs."""

    def __init__(self, real, spec):
        self.real = real
        self.spec = spec

    def create_module(self, spec):
        create = getattr(self.real, "create_module", None)
        return create(spec) if create else None

    def exec_module(self, module):
        self.spec.loader = self.real
        try:
            module.__loader__ = self.real
        except AttributeError:
            pass
        self.real.exec_module(module)
        _fire(self.spec.name, module)


class _Finder:
    instance = None

    def find_spec(self, name, path=None, target=None):
        if name not in _hooks:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, spec)
        return spec

    def invalidate_caches(self):
        pass


_Finder.instance = _Finder()


def after_import(name, callback):
    """callback(module) once module `name` has been imported: now if it
    already is, else right after its code has run."""
    module = sys.modules.get(name)
    if module is not None:
        try:
            callback(module)
        except Exception:
            pass
        return
    _hooks.setdefault(name, []).append(callback)
    if _Finder.instance not in sys.meta_path:
        sys.meta_path.insert(0, _Finder.instance)
