"""Settings shared by the Hypothesis property tests: bounded example counts,
no deadline (shared CI cores), no example database in the repository."""

from __future__ import annotations

import contextlib
import warnings

from hypothesis import HealthCheck, Phase, settings

# On a failure Hypothesis writes a patch with libcst, whose import warns
# (DeprecationWarning from mypy_extensions) where libcst is installed; under
# filterwarnings=error that turned the failure into an INTERNALERROR hiding
# the example. Imported once here, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        import hypothesis.extra._patching  # noqa: F401


def bounded(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
