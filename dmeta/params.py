"""Estimator parameters, read back from the constructor's signature (as scikit-learn does).

Constructors only store their arguments; the parameters are what results record as
provenance, in JSON-safe form.
"""

import inspect


class Parameters:
    """Mixin giving ``get_params()`` and its JSON-safe form to estimators."""

    def get_params(self):
        """Constructor parameters and their current values."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def provenance(self, **extra):
        """``get_params()`` (updated with ``extra``) with non-JSON values as strings."""
        params = {**self.get_params(), **extra}
        simple = (int, float, str, bool, type(None))
        return {k: v if isinstance(v, simple) else str(v) for k, v in params.items()}
