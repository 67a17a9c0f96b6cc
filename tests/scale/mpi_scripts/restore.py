"""MPI job: qa_restore on the servers; the client writes the result as JSON.

Usage (by the tests): mpirun -n 3 python restore.py config.json, with the
config naming ``member``, ``outdir``, ``result`` and extra ``params``.
"""
import json
import os
import sys

from almaqa_casa import qa_restore  # first: the servers start serving here and never return

cfg = json.load(open(sys.argv[1]))
r = qa_restore(deliverydir=cfg["member"], outdir=cfg["outdir"], dosplit=True,
               **cfg.get("params", {}))
with open(cfg["result"] + ".tmp", "w") as fh:
    json.dump(r, fh, default=str)
os.replace(cfg["result"] + ".tmp", cfg["result"])
