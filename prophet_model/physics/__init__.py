"""The physics of a decode step, one module per mechanism: pure functions over numpy arrays that import
nothing else of the package. `step.evaluate` composes them."""

from prophet_model.physics.step import *  # noqa: F403 (split into one module per mechanism next)
from prophet_model.physics.step import _LAST, _once  # noqa: F401
