"""One place that creates TFLite interpreters (for the emotion model and the face detector).

TensorFlow 2.21's `tf.lite.Interpreter` works but announces its move to `ai-edge-litert` with a
Python warning, and its C++ side prints an XNNPACK notice on stderr; both are noise for users of
the CLI and the app, so they are silenced here, once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings


@contextlib.contextmanager
def native_stderr_silenced():
    """Redirect file descriptor 2 to /dev/null for the duration (C++ logs bypass Python's stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def make_interpreter(model_path: str | os.PathLike, num_threads: int = 1):
    """A `tf.lite.Interpreter` with its tensors allocated, created without console noise."""
    import tensorflow as tf

    with warnings.catch_warnings(), native_stderr_silenced():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(model_path), num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter
