"""`DataOrder`: which training rows the model actually consumed, so that a resumed run's input pipeline starts
exactly where the unbroken run's was, even when corrupt images were skipped on the way."""

from __future__ import annotations

import threading

import numpy as np

# Extra "target" column carrying each training row's index through the input pipeline.
ROW_COLUMN = "_deepfl_row"
# Row indices travel as float32 targets, which hold integers exactly below 2**24.
MAX_ROWS = 2**24


class DataOrder:
    """Follows the training stream at the consumer side: which table rows the model actually trained on.

    The training table carries its row index as an extra target column (`ROW_COLUMN`); `attach` strips it from
    each batch as the batch is taken and records it. After an epoch of `n` images, `advance(n)` lines the first
    `n` recorded rows up with the shuffled order of the table (the same seeded `tf.data` shuffle + repeat that
    `deepfl.data.make_dataset` applies to the paths), which gives the exact position reached in the stream and
    the rows that were skipped on the way (corrupt images dropped by `on_error="skip"`). A resumed job passes
    `position` as `make_dataset(skip=...)` and sees exactly the images an unbroken run would see next. Batches
    prefetched beyond the epoch stay queued for the next one, so the pipeline's look-ahead does not matter.
    """

    def __init__(self, num_rows: int, seed: int, position: int = 0, chunk: int = 65536):
        if num_rows < 1 or num_rows >= MAX_ROWS:
            raise ValueError(f"num_rows: must be in [1, 2**24), got {num_rows}")
        self.num_rows, self.seed, self.position, self.chunk = int(num_rows), int(seed), int(position), int(chunk)
        self._lock = threading.Lock()
        self._delivered: list[np.ndarray] = []
        self._generation = 0
        self._order = None
        self._pending = np.empty(0, np.int64)

    def attach(self, dataset):
        """`dataset` (batches whose target dict has `ROW_COLUMN`) without that column, recording it per batch.

        Call once per fresh input pipeline (each `fit`); rows recorded by an earlier pipeline are discarded.
        """
        import tensorflow as tf

        with self._lock:
            self._generation += 1
            self._delivered = []
            generation = self._generation

        def record_rows(rows):
            with self._lock:
                if generation == self._generation:
                    self._delivered.append(np.rint(rows.numpy()).astype(np.int64))
            return np.int64(0)

        @tf.autograph.experimental.do_not_convert
        def strip(images, values):
            values = dict(values)
            rows = values.pop(ROW_COLUMN)
            done = tf.py_function(record_rows, [rows], tf.int64)
            with tf.control_dependencies([done]):
                images = tf.identity(images)
            return images, values

        return dataset.map(strip)  # synchronous: runs as the batch is taken, in stream order

    def _stream(self):
        import tensorflow as tf

        order = (
            tf.data.Dataset.range(self.num_rows)
            .shuffle(self.num_rows, seed=self.seed, reshuffle_each_iteration=True)
            .repeat()
            .skip(self.position)
            .batch(self.chunk)
        )
        yield from order.as_numpy_iterator()

    def _pull(self, count: int) -> None:
        if self._order is None:
            self._order = self._stream()
        while len(self._pending) < count:
            self._pending = np.concatenate([self._pending, next(self._order)])

    def advance(self, images: int) -> np.ndarray:
        """Consumes the next `images` recorded rows; returns the rows skipped before them (one entry per skip)."""
        with self._lock:
            delivered = np.concatenate(self._delivered) if self._delivered else np.empty(0, np.int64)
            if len(delivered) < images:
                raise RuntimeError(
                    f"DataOrder: {len(delivered)} rows recorded, {images} expected (is the dataset attached?)"
                )
            taken, rest = delivered[:images], delivered[images:]
            self._delivered = [rest] if len(rest) else []
        self._pull(images)
        if np.array_equal(self._pending[:images], taken):  # nothing skipped: the common case
            self.position += images
            self._pending = self._pending[images:]
            return np.empty(0, np.int64)
        skipped, i, j = [], 0, 0
        while i < images:
            if j >= len(self._pending):
                self._pull(j + self.chunk)
            if self._pending[j] == taken[i]:
                i += 1
            else:
                skipped.append(self._pending[j])
                if len(skipped) > self.num_rows + images:  # would mean the orders disagree: a bug, not bad data
                    raise RuntimeError("DataOrder: the recorded rows do not follow the shuffled table order")
            j += 1
        self.position += j
        self._pending = self._pending[j:]
        return np.asarray(skipped, np.int64)
