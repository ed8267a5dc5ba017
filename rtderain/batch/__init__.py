"""Batch de-raining of video archives: many files, resumable, on one machine or a Ray cluster.

::

    plan (inputs.py)  ->  skip what the journal says is complete (journal.py)
                      ->  run the rest: in this process, a pool of processes (local.py)
                          or one Ray task per file (cluster.py); a file is run by worker.py
                      ->  journal each result as it arrives, write the JSON report (driver.py)

Only the driver writes the journal and the report; workers write outputs, each under a
hidden temporary name renamed into place when complete (the file pipeline's guarantee), so
a worker that dies leaves no partial file under an output's final name.
"""

from __future__ import annotations

from rtderain.batch.driver import BatchOptions, BatchResult, run_batch
from rtderain.batch.inputs import BatchItem, plan_batch

__all__ = ["BatchItem", "BatchOptions", "BatchResult", "plan_batch", "run_batch"]
