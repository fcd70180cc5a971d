"""Where in the pipeline a piece of work runs, for what depends on its surroundings: the values of the loops
around it, and the working directory its group shares. Set by the scheduler around an iteration or a
group; context variables, so each thread of a parallel group sees its own (the scheduler copies them)."""

from __future__ import annotations

from contextvars import ContextVar

from runner.model import Mount

# the values of the loops (ForEach) around what runs now, the outermost first
LOOP_VALUES: ContextVar[tuple[str, ...]] = ContextVar("loop_values", default=())

# the volume and path a group's containers share as their working directory (Kestra's WorkingDirectory)
WORKING_DIR: ContextVar[Mount | None] = ContextVar("working_dir", default=None)
