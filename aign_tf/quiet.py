"""Imports TensorFlow without its start-up noise on stderr.

On a CPU-only machine TensorFlow 2.21 prints, on import and on the first device query:

* ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`` and
  ``I... cudart_stub.cc:...] Could not find cuda drivers on your machine, GPU will not be used.`` (twice):
  logged from C++ static initialisers through absl's logging *before* TensorFlow reads
  ``TF_CPP_MIN_LOG_LEVEL``, so no level hides them (tensorflow/tensorflow#100442);
* ``E... cuda_platform.cc:...] failed call to cuInit: INTERNAL: CUDA error ...``: an ERROR-level line, which
  only ``TF_CPP_MIN_LOG_LEVEL=3`` would hide, and that would hide TensorFlow's real errors too;
* ``I... cpu_feature_guard.cc:...] This TensorFlow binary is optimized to use available CPU instructions ...``
  and its second line ``To enable the following instructions: ...``: INFO, hidden by ``TF_CPP_MIN_LOG_LEVEL=2``.

So :func:`import_tensorflow` sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it, points file descriptor 2 at
a temporary file while it imports TensorFlow and lists its devices (the moment every line above is printed),
then writes back every captured line that is not one of these (a Python warning, a real error); if the import
fails, everything captured is written back before the exception propagates. With ``show_log=True`` (the
``--tf_log`` flag) nothing is captured or filtered and ``TF_CPP_MIN_LOG_LEVEL`` is left as the user set it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# The start-up lines filtered out (one regular expression per line, matched anywhere in the line).
NOISE = tuple(re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
    r"cuda_platform\.cc:\d+\] failed call to cuInit",
    r"cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register cu\w+ factory",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
    r"TF-TRT Warning: Could not find TensorRT",
))


def filter_noise(text: str) -> str:
    """``text`` without the lines :data:`NOISE` matches (the others kept, in order, with their line ends)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not any(p.search(line.rstrip("\r\n")) for p in NOISE))


def _start_tensorflow():
    import tensorflow as tf

    tf.config.list_physical_devices()  # the CUDA probe (cuInit) happens here, not at import
    return tf


def import_tensorflow(show_log: bool = False):
    """Imports TensorFlow and initialises its devices; returns the module. Unless ``show_log``, TensorFlow's
    start-up noise (see the module docstring) is kept off stderr; anything else it prints is shown."""
    if show_log:
        return _start_tensorflow()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:  # imported already: its start-up lines are behind us
        return _start_tensorflow()
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        return _start_tensorflow()
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            tf = _start_tensorflow()
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            shown = text if failed else filter_noise(text)
            if shown:
                sys.stderr.write(shown)
                sys.stderr.flush()
    return tf
