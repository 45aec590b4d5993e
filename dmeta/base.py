"""One base for estimators, correctors, diagnostics and workflows (as scikit-learn's
``BaseEstimator``, which nilearn and NiMARE follow).

Constructors only store their arguments, so the constructor's signature is the list of
parameters: ``get_params``, ``set_params``, the ``repr`` and the provenance results record
are all read from it, and no class keeps its own list.
"""

from __future__ import annotations

import inspect
from typing import Any, Self

from dmeta.errors import InputError


def param_defaults(cls: type) -> dict[str, Any]:
    """Constructor parameters of ``cls`` and their defaults, in signature order.

    A function rather than only a method so that workflows can read the defaults of
    user-written diagnostics that do not derive from :class:`DmetaBase`.
    """
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


class DmetaBase:
    """Parameters, printing, provenance and the fitted check shared by dmeta's classes.

    Subclasses store each constructor argument under its own name and do nothing else in
    ``__init__``; what is learnt by ``fit`` goes in attributes ending in ``_``.
    """

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters and their current values.

        Returns
        -------
        dict
            ``{name: value}`` in signature order; ``type(self)(**obj.get_params())``
            builds an unfitted copy.
        """
        return {name: getattr(self, name) for name in param_defaults(type(self))}

    def set_params(self, **params: Any) -> Self:
        """Change parameters (not fitted state), so a configured object can be reused.

        Raises
        ------
        dmeta.errors.InputError
            For a name that is not a constructor parameter: a typo would otherwise set an
            attribute nothing reads.

        Returns
        -------
        self
        """
        valid = param_defaults(type(self))
        unknown = [name for name in params if name not in valid]
        if unknown:
            raise InputError(f"{type(self).__name__} has no parameter {', '.join(unknown)}; "
                             f"valid parameters: {', '.join(valid)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        """``Name(param=value, ...)`` with the parameters that differ from their defaults."""
        defaults = param_defaults(type(self))
        shown = [f"{name}={_short_repr(value)}" for name, value in self.get_params().items()
                 if not _is_default(value, defaults[name])]
        return f"{type(self).__name__}({', '.join(shown)})"

    def provenance(self, **extra: Any) -> dict[str, int | float | str | bool | None]:
        """``get_params()`` (updated with ``extra``) with non-JSON values as strings.

        What results keep in ``attrs["params"]``: JSON-safe so it survives a Zarr store.
        """
        params = {**self.get_params(), **extra}
        simple = (int, float, str, bool, type(None))
        return {k: v if isinstance(v, simple) else str(v) for k, v in params.items()}

    def check_fitted(self, *attributes: str) -> None:
        """Raise a clear InputError unless ``fit`` has set every one of ``attributes``.

        Without it an unfitted object fails later with an AttributeError naming an internal
        attribute the user never set.
        """
        if not all(hasattr(self, name) for name in attributes):
            name = type(self).__name__
            raise InputError(f"{name} is not fitted: call {name}.fit first")


def _is_default(value, default):
    """Whether ``value`` is its default; arrays and images compare by identity only."""
    return value is default or (type(value) is type(default) and value == default)


def _short_repr(value):
    """``repr(value)``, or ``<TypeName>`` where that would print a memory address (images)
    or many lines (arrays), so the repr stays short and the same from run to run."""
    text = repr(value)
    plain = type(value).__repr__ is object.__repr__
    return f"<{type(value).__name__}>" if plain or "\n" in text else text
