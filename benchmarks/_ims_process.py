"""Process-level imzML measurements for ``bench_ims_scale.py`` (parts fresh, calls, million).

* ``fresh``: a fresh Python process that reads a file (``read_imzml``)
  against a fresh process running pyimzML's parser and ``getspectrum`` loop,
  wall time of the whole process (interpreter start and imports included),
  and whether reading imported torch;
* ``calls``: 10 consecutive calls in one process, ours and pyimzML's loop
  in turn, the ratio of every call;
* ``million``: the metadata of a processed file of 10^6 spectra, written
  here in pyimzML's writer's format (:func:`write_processed_fast`), parsed
  in a fresh process; time and peak ``RssAnon`` above the process's level
  before the parse, against pyimzML's ``ImzMLParser`` on the same file.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

_OURS = "from sklearn_relevance.ims import read_imzml\nX = read_imzml({path!r}).X\n"
_PEER = (
    "import warnings\nimport numpy as np\nfrom pyimzml.ImzMLParser import ImzMLParser\n"
    "with warnings.catch_warnings():\n    warnings.simplefilter('ignore')\n"
    "    p = ImzMLParser({path!r})\n"
    "X = np.stack([p.getspectrum(i)[1] for i in range(len(p.coordinates))])\n"
)
_START = "import time\nimport numpy\nt0, c0 = time.perf_counter(), time.process_time()\n"
_REPORT = ("import sys\nprint('torch' in sys.modules, time.perf_counter() - t0, "
           "time.process_time() - c0)\n")


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


def _cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(code):
    """(wall seconds, CPU seconds, stdout) of a fresh ``python -c code``."""
    start, cpu = time.perf_counter(), _cpu_children()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(), check=True)
    return time.perf_counter() - start, _cpu_children() - cpu, out.stdout.strip()


def fresh(path, rounds):
    """Wall and CPU seconds of fresh processes, ours and pyimzML's; did ours import torch?

    Returns
    -------
    dict
        ``ours`` and ``peer``: lists of (wall, cpu, wall after numpy's import,
        cpu after numpy's import) per run; ``no_torch``.
    """
    ours, peer, torch_seen = [], [], set()
    for _ in range(rounds):  # in turn, so that both see the same load
        for code, runs in ((_OURS, ours), (_PEER, peer)):
            wall, cpu, out = _run(_START + code.format(path=path) + _REPORT)
            seen, after_wall, after_cpu = out.split()
            runs.append((wall, cpu, float(after_wall), float(after_cpu)))
            if code is _OURS:
                torch_seen.add(seen)
    return {"ours": ours, "peer": peer, "no_torch": torch_seen == {"False"}}


_CALLS = """
import json, time, warnings
import numpy as np
from pyimzml.ImzMLParser import ImzMLParser
from sklearn_relevance.ims import read_imzml
warnings.simplefilter("ignore")
path, ours, peer = {path!r}, [], []
for _ in range({n}):
    t, c = time.perf_counter(), time.process_time()
    X = read_imzml(path).X
    ours.append((time.perf_counter() - t, time.process_time() - c))
    del X
    t, c = time.perf_counter(), time.process_time()
    p = ImzMLParser(path)
    Y = np.stack([p.getspectrum(i)[1] for i in range(len(p.coordinates))])
    p.m.close()
    peer.append((time.perf_counter() - t, time.process_time() - c))
    del Y
print(json.dumps([ours, peer]))
"""


def calls(path, n=10):
    """(wall, CPU) seconds of ``n`` consecutive calls in one fresh process: ours, peer."""
    *_, out = _run(_CALLS.format(path=path, n=n))
    return json.loads(out.splitlines()[-1])


_CALLS_ALONE = """
import json, time, warnings
import numpy as np
if {which!r} == "ours":
    from sklearn_relevance.ims import read_imzml
    def run():
        return read_imzml({path!r}).X
else:
    from pyimzml.ImzMLParser import ImzMLParser
    warnings.simplefilter("ignore")
    def run():
        p = ImzMLParser({path!r})
        Y = np.stack([p.getspectrum(i)[1] for i in range(len(p.coordinates))])
        p.m.close()
        return Y
out = []
for _ in range({n}):
    t, c = time.perf_counter(), time.process_time()
    X = run()
    out.append((time.perf_counter() - t, time.process_time() - c))
    del X
print(json.dumps(out))
"""


def calls_alone(path, n=10, rounds=3):
    """(wall, CPU) seconds of ``n`` consecutive calls, each side alone in its own
    fresh process (``rounds`` processes per side, the side that starts a round
    alternating): arrays of shape (rounds, n, 2) for ours and the peer."""
    got = {"ours": [], "peer": []}
    for r in range(rounds):
        for which in (("ours", "peer") if r % 2 == 0 else ("peer", "ours")):
            *_, out = _run(_CALLS_ALONE.format(which=which, path=path, n=n))
            got[which].append(json.loads(out.splitlines()[-1]))
    return np.array(got["ours"]), np.array(got["peer"])


_PARSE = """
import json, sys, threading, time
sys.path.insert(0, {here!r})
from bench_ims_scale import _peak_during
which, path = {which!r}, {path!r}
if which == "ours":
    from sklearn_relevance.ims import parse_imzml_metadata
    run = lambda: parse_imzml_metadata(path)  # the XML, the UUID and every number checked
else:
    import warnings
    from pyimzml.ImzMLParser import ImzMLParser
    warnings.simplefilter("ignore")
    run = lambda: ImzMLParser(path).m.close()
cpu = time.process_time()
_, sec, peak = _peak_during(run)
cpu = time.process_time() - cpu  # the sampling thread's share included (small)
print(json.dumps({{"seconds": sec, "cpu": cpu, "peak": peak,
                  "threads": threading.active_count()}}))
"""


def parse(path, which):
    """Seconds and peak RssAnon of one metadata parse in a fresh process."""
    *_, out = _run(_PARSE.format(here=HERE, which=which, path=path))
    return json.loads(out.splitlines()[-1])


def write_processed_fast(path, n, k, rng, chunk=100_000):
    """A processed file of ``n`` spectra x ``k`` peaks, in pyimzML's writer's format.

    pyimzML's writer takes minutes for 10^6 spectra; this writes its XML
    (header and spectrum element of a 2-spectrum file from pyimzML's writer,
    the numbers of every spectrum substituted; no checksum declared) and the
    .ibd (UUID header, then sorted float64 m/z and float32 intensities per
    spectrum) with numpy, in chunks of ``chunk`` spectra.
    """
    from pyimzml.ImzMLWriter import ImzMLWriter

    with ImzMLWriter(path, mode="processed", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for i in range(2):
            w.addSpectrum(np.arange(1.0, k + 1), np.ones(k, np.float32), (i + 1, 1, 1))
    ibd = path[:-6] + ".ibd"
    with open(ibd, "rb") as f:
        uuid = f.read(16)
    with open(path) as f:
        xml = re.sub(r"\s*<cvParam[^>]*IMS:100009[01][^>]*/>", "", f.read())
    start = xml.rindex("\n", 0, xml.index("<spectrum ")) + 1
    stop = xml.index("</spectrum>") + len("</spectrum>\n")
    head = xml[:start].replace('spectrumList count="2"', f'spectrumList count="{n}"')
    tail = xml[xml.index("    </spectrumList>"):]
    spec = xml[start:stop].replace("{", "{{").replace("}", "}}")
    for old, new in (('id="spectrum=1" index="1"', 'id="spectrum={i}" index="{i}"'),
                     ('name="position x" value="1"', 'name="position x" value="{x}"'),
                     ('name="position y" value="1"', 'name="position y" value="{y}"')):
        assert spec.count(old) == 1, old
        spec = spec.replace(old, new)
    parts = re.split(r'name="external offset" value="\d+"', spec)
    assert len(parts) == 3
    spec = (parts[0] + 'name="external offset" value="{mo}"' + parts[1]
            + 'name="external offset" value="{io}"' + parts[2]).format
    side, per = int(np.ceil(np.sqrt(n))), k * 12
    with open(path, "w") as fx, open(ibd, "wb") as fb:
        fx.write(head)
        fb.write(uuid)
        for first in range(0, n, chunk):
            m = min(chunk, n - first)
            block = np.empty((m, per), np.uint8)
            block[:, :8 * k] = np.sort(rng.uniform(100, 1000, (m, k)), axis=1).view(np.uint8)
            block[:, 8 * k:] = rng.random((m, k), dtype=np.float32).view(np.uint8)
            fb.write(block.tobytes())
            fx.write("".join([spec(i=i + 1, x=i % side + 1, y=i // side + 1,
                                   mo=16 + i * per, io=16 + i * per + 8 * k)
                              for i in range(first, first + m)]))
        fx.write(tail)
