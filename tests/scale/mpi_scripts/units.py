"""MPI job: almaqa_casa.scale's casampi route, then qa_validate and qa_polmaps on the servers.

The client writes what it saw as JSON to ``config['result']``.
"""
import json
import os
import sys

from almaqa_casa import qa_polmaps, qa_validate, scale  # first: the servers start serving here
from tests.scale import mpiunits as mu

cfg = json.load(open(sys.argv[1]))
os.chdir(cfg["workdir"])
out = {"engine": scale.engine_name(), "choice": scale.choice().reason,
       "servers": {str(k): v for k, v in scale.servers().items()}, "client_pid": os.getpid()}


def outcome(o):
    return {"key": o.key, "ok": o.ok, "value": o.value, "error": o.error, "died": o.died,
            "engine": o.engine, "server": o.server, "host": o.host}


res = scale.run_units([scale.Unit(f"w{i}", mu.where) for i in range(4)], nprocs=0)
out["where"] = [outcome(o) for o in res.values()]
out["fail"] = outcome(scale.run_units([scale.Unit("f", mu.fail, ("caltable x.tbl is missing",))])["f"])
# a worker killed mid-unit: that unit fails; the next unit on that server gets a fresh worker
died = scale.run_units([scale.Unit("d", mu.die)])["d"]
out["die"] = outcome(died)
after = scale.run_units([scale.Unit(f"a{i}", mu.where) for i in range(2)], nprocs=0)
out["after_die"] = [outcome(o) for o in after.values()]
out["say"] = [outcome(o) for o in scale.run_units(
    [scale.Unit(f"s{i}", mu.say, (f"hello from the servers {i}",)) for i in range(2)],
    nprocs=0).values()]


def member(i):
    return outcome(scale.run_units([scale.Unit(f"m{i}", mu.span, (4.0,))])[f"m{i}"])


out["members"] = scale.map_members(member, [0, 1])
pol = qa_polmaps(imagename=cfg["pol_project"], outdir=os.path.join(cfg["workdir"], "pol"),
                 polithresh="5sigma", fractional=True)
out["polmaps"] = pol
val = qa_validate(deliverydir=cfg["pol_project"], outdir=os.path.join(cfg["workdir"], "val"))
out["validate"] = val
with open(cfg["result"] + ".tmp", "w") as fh:
    json.dump(out, fh, default=str)
os.replace(cfg["result"] + ".tmp", cfg["result"])
