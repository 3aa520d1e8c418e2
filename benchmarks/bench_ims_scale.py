"""IMS at scale: metadata parse, whole reads, out-of-core fit, processed binning.

Run ``python benchmarks/bench_ims_scale.py`` (``--small`` for a quick check).
Prints four tables, each measured in one run against its peer:

1. metadata parse: our byte-scan parser against pyimzML's ``ImzMLParser``
   on continuous files of 2,000 x 20,000 and 100,000 x 200 spectra (equal
   results asserted), with the peak anonymous memory (``RssAnon`` of
   ``/proc/self/status``, sampled every millisecond in a fresh subprocess,
   above the subprocess's baseline after imports). Ours is
   ``parse_imzml_metadata``: the XML, then the layout checked against the
   .ibd file (its UUID header, its size for every offset);
2. whole continuous read, parse included: ``read_imzml`` against a pyimzML
   ``getspectrum`` loop ("loop") on the same two files, results asserted equal;
3. out-of-core fit: ``RelevanceNetClassifier.fit`` on ``read_imzml(lazy=True).X``
   of a continuous file at least 4x larger than the anonymous memory the
   fit is allowed, against the in-memory fit of the same file (epoch time
   from skorch's history, peak ``RssAnon`` above baseline);
4. processed mode at size: binning 100,000 processed spectra onto a common
   axis with ``iter_imzml`` (chunks bounded by a memory budget) and with
   ``read_imzml``, time and peak ``RssAnon``;
5. process level (:mod:`_ims_process`): a fresh process reading the
   2,000 x 20,000 file against a fresh process running pyimzML's parser and
   ``getspectrum`` loop (``fresh``, and whether reading imported torch);
   10 consecutive calls in one process, each against pyimzML's loop
   (``calls``); the metadata of a processed file of 10^6 spectra in a fresh
   process, with its peak memory, against pyimzML's ``ImzMLParser``
   (``million``; ``--no-million-peer`` skips pyimzML there, about a minute).

Files are generated in a temporary folder (seed 0) and deleted afterwards.
Tables 1 and 2 time ours and the peer in ``--repeat`` rounds, each side
taking a turn per round (so that both see the same load) in which it is
called back to back as ``timeit`` does (for half a second, at least twice
unless one call takes that long). Two figures per side: *warm*, the best
call after the first of a turn, and *cold*, the best first call, made right
after the other side's calls (short calls are slower right after another
program ran on this machine: see ``docs/benchmarks.md``). ``--parts`` runs
some of the tables only (e.g. ``--parts parse,read``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench_imzml import _parser as _pyimzml_parser  # noqa: E402
from bench_imzml import _pyimzml_loop, _write_processed  # noqa: E402

import _ims_process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # measure the checkout this script lies in


# ------------------------------------------------------------------ child process side

def _rss_anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_during(fn):
    """(result, seconds, peak RssAnon above the level before ``fn``), sampled every ms."""
    import threading

    base = _rss_anon()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_anon())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    done.set()
    thread.join()
    peak[0] = max(peak[0], _rss_anon())
    return out, seconds, peak[0] - base


def _child(task, args):
    """One measurement in a fresh process; prints a JSON line."""
    import torch

    torch.set_num_threads(1)
    from sklearn_relevance import RelevanceNetClassifier
    from sklearn_relevance.ims import iter_imzml, parse_imzml_metadata, read_imzml

    path = args["path"]
    if task == "parse_ours":
        _, sec, peak = _peak_during(lambda: parse_imzml_metadata(path))
    elif task == "parse_pyimzml":
        _, sec, peak = _peak_during(lambda: _pyimzml_parser(path).m.close())
    elif task in ("fit_lazy", "fit_memory"):
        y = np.load(args["y"])

        def make():
            return RelevanceNetClassifier(max_epochs=args["epochs"], batch_size=args["batch"],
                                          random_state=0, module__hidden_units=(64,))

        # one-time costs (lazy imports, allocator pools) before the baseline
        make().set_params(max_epochs=1).fit(np.ones((args["batch"], 8), np.float32),
                                            np.arange(args["batch"]) % 2)
        est = make()

        def run():
            X = read_imzml(path, lazy=task == "fit_lazy").X
            return est.fit(X, y)

        _, sec, peak = _peak_during(run)
        epoch = float(np.median([h["dur"] for h in est.history]))
        print(json.dumps({"seconds": sec, "peak": peak, "epoch": epoch}))
        return
    elif task == "bin_iter":
        def run():
            total = 0.0
            for chunk in iter_imzml(path, n_bins=args["n_bins"],
                                    memory_budget=args["budget"]):
                total += float(chunk.X.sum())
            return total
        _, sec, peak = _peak_during(run)
    elif task == "bin_read":
        _, sec, peak = _peak_during(lambda: read_imzml(path, n_bins=args["n_bins"]))
    else:  # pragma: no cover
        raise ValueError(task)
    print(json.dumps({"seconds": sec, "peak": peak}))


def _measure(task, **args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", task,
                          json.dumps(args)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ parent side

def _write_continuous(path, n, L, rng, chunk=20_000):
    """A continuous file written by pyimzML's writer, in row chunks (bounded memory)."""
    from pyimzml.ImzMLWriter import ImzMLWriter

    side = int(np.ceil(np.sqrt(n)))
    mz = np.linspace(2000, 10000, L)
    with ImzMLWriter(path, mode="continuous", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as w:
        for start in range(0, n, chunk):
            X = rng.random((min(chunk, n - start), L), dtype=np.float32)
            for i, row in enumerate(X, start):
                w.addSpectrum(mz, row, (i % side + 1, i // side + 1))


def _check_parse_equal(path):
    from sklearn_relevance.ims import parse_imzml_metadata

    ours = parse_imzml_metadata(path)
    ref = _pyimzml_parser(path)
    ref.m.close()
    for name, theirs in (("mz_offsets", "mzOffsets"), ("mz_lengths", "mzLengths"),
                         ("intensity_offsets", "intensityOffsets"),
                         ("intensity_lengths", "intensityLengths"),
                         ("coords", "coordinates")):
        assert np.array_equal(getattr(ours, name), np.asarray(getattr(ref, theirs))), name
    pretty = ref.metadata.pretty()
    assert {k: ours.metadata[k] for k in pretty} == pretty
    assert ours.metadata["imzml"] == ref.imzmldict


def _mib(b):
    return b / 2**20


def _timed(ours, peer, rounds, turn=0.5):
    """Warm and cold best seconds of ``ours`` and of ``peer``, and their last results.

    Round by round, ours and then the peer take a turn (so that both see the
    same load). A turn calls its side back to back, as ``timeit`` does: until
    ``turn`` seconds have passed, and at least twice unless its first call
    alone took that long. The first call of a turn comes right after the other
    side's calls: the best of these is the *cold* figure; the best of the
    other calls of the turns is the *warm* one (a side whose every call took
    ``turn`` seconds or more is called once per turn: its warm figure is its
    cold one). The previous result is dropped before each timed call, so that
    freeing it is not timed.
    """
    warm, cold, out = [float("inf")] * 2, [float("inf")] * 2, [None, None]
    for _ in range(max(int(rounds), 1)):
        for i, fn in enumerate((ours, peer)):
            spent, calls = 0.0, 0
            while spent < turn:  # at least twice, unless the first call takes a turn
                out[i] = None
                start = time.perf_counter()
                out[i] = fn()
                seconds = time.perf_counter() - start
                if calls == 0:
                    cold[i] = min(cold[i], seconds)
                    if seconds >= turn:
                        warm[i] = min(warm[i], seconds)
                else:
                    warm[i] = min(warm[i], seconds)
                spent, calls = spent + seconds, calls + 1
    return warm, cold, out


def _row(label, warm, cold, width=34):
    """A table row: warm ours, peer, ratio, then the same cold."""
    return (f"{label:<{width}} {warm[0]:>10.3f} {warm[1]:>9.3f} {warm[1] / warm[0]:>6.1f}x  "
            f"{cold[0]:>10.3f} {cold[1]:>9.3f} {cold[1] / cold[0]:>6.1f}x")


def _header(title, peer, width=34):
    return (f"{title:<{width}} {'warm: ours':>10} {peer:>9} {'ratio':>7}  "
            f"{'cold: ours':>10} {peer:>9} {'ratio':>7}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small files, quick check")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="parse,read,fit,processed,fresh,calls,million",
                        help="comma-separated tables to run (default: all)")
    parser.add_argument("--million", type=int, default=None,
                        help="spectra of the processed file of part million (10^6)")
    parser.add_argument("--no-million-peer", action="store_true",
                        help="do not run pyimzML's parser on the file of part million")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], json.loads(args.child[1]))
    from sklearn_relevance.ims import parse_imzml_metadata, read_imzml

    parts = set(args.parts.split(","))
    if args.small:
        shapes = [(200, 2000), (5000, 50)]
        fit_shape, budget, n_proc, k_proc = (2000, 2000), 2**20, 5000, 50
    else:
        shapes = [(2000, 20000), (100_000, 200)]
        fit_shape, budget, n_proc, k_proc = (16_000, 5000), 64 * 2**20, 100_000, 100
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        print(_header("parse (s)", "pyimzML") + f"  {'ours peak':>10} {'pyimzML peak':>13}")
        print("-" * 114)
        files = []
        for n, L in shapes:
            path = os.path.join(tmp, f"c{n}x{L}.imzML")
            _write_continuous(path, n, L, rng)
            files.append((n, L, path))
            _check_parse_equal(path)
            if "parse" not in parts:
                continue
            warm, cold, _ = _timed(lambda p=path: parse_imzml_metadata(p),
                                   lambda p=path: _pyimzml_parser(p).m.close(), args.repeat)
            m_ours = _measure("parse_ours", path=path)["peak"]
            m_peer = _measure("parse_pyimzml", path=path)["peak"]
            xml = os.path.getsize(path) / 2**20
            print(_row(f"{n:,} x {L:,} (XML {xml:.0f} MiB)", warm, cold)
                  + f"  {_mib(m_ours):>6.1f} MiB {_mib(m_peer):>9.1f} MiB")

        print("\n" + _header("whole continuous read (s)", "loop"))
        print("-" * 89)
        for n, L, path in files if "read" in parts else ():
            warm, cold, (data, ref) = _timed(lambda p=path: read_imzml(p),
                                             lambda p=path: _pyimzml_loop(p), args.repeat)
            assert np.array_equal(data.X, ref)
            del data, ref
            print(_row(f"{n:,} x {L:,}", warm, cold))
        _process_level(files[0][:2], files[0][2], parts, args)
        for _n, _L, path in files:
            os.remove(path)
            os.remove(path[:-6] + ".ibd")

        if "fit" in parts:
            n, L = fit_shape
            path = os.path.join(tmp, "fit.imzML")
            _write_continuous(path, n, L, rng, chunk=2000)
            ynp = os.path.join(tmp, "y.npy")
            np.save(ynp, (np.arange(n) % 2).astype(np.int64))
            size = os.path.getsize(path[:-6] + ".ibd")
            common = dict(path=path, y=ynp, epochs=3, batch=256)
            lazy = _measure("fit_lazy", **common)
            memory = _measure("fit_memory", **common)
            print(f"\nout-of-core fit: {n:,} x {L:,} float32, .ibd {_mib(size):.0f} MiB "
                  f"= {size / budget:.1f}x the {_mib(budget):.0f} MiB of anonymous memory "
                  "allowed; MLP (64,), batch 256, 3 epochs (median epoch)")
            print(f"{'':<22} {'epoch (s)':>10} {'peak RssAnon':>14}")
            print("-" * 50)
            print(f"{'lazy (streamed)':<22} {lazy['epoch']:>10.2f} "
                  f"{_mib(lazy['peak']):>10.1f} MiB"
                  f"  {'within' if lazy['peak'] < budget else 'ABOVE'} budget")
            print(f"{'in memory':<22} {memory['epoch']:>10.2f} {_mib(memory['peak']):>10.1f} MiB")
            print(f"epoch time lazy / in memory: {lazy['epoch'] / memory['epoch']:.2f}x")
            os.remove(path)
            os.remove(path[:-6] + ".ibd")

        if "processed" in parts:
            path = os.path.join(tmp, "proc.imzML")
            t = time.perf_counter()
            _write_processed(path, n_proc, k_proc, rng)
            print(f"\nprocessed: {n_proc:,} spectra x {k_proc} peaks (written in "
                  f"{time.perf_counter() - t:.0f} s), binned onto 200 bins")
            chunk_budget = 16 * 2**20
            it = _measure("bin_iter", path=path, n_bins=200, budget=chunk_budget)
            rd = _measure("bin_read", path=path, n_bins=200, budget=chunk_budget)
            print(f"{'':<34} {'time (s)':>9} {'peak RssAnon':>14} {'output':>10}")
            print("-" * 72)
            print(f"{'iter_imzml (16 MiB chunks)':<34} {it['seconds']:>9.2f} "
                  f"{_mib(it['peak']):>10.1f} MiB {'streamed':>10}")
            print(f"{'read_imzml (whole array)':<34} {rd['seconds']:>9.2f} "
                  f"{_mib(rd['peak']):>10.1f} MiB {_mib(n_proc * 200 * 4):>6.1f} MiB")
            os.remove(path)
            os.remove(path[:-6] + ".ibd")

        if "million" in parts:
            n = args.million or (20_000 if args.small else 10**6)
            path = os.path.join(tmp, "million.imzML")
            t = time.perf_counter()
            _ims_process.write_processed_fast(path, n, 20, rng)
            xml = os.path.getsize(path)
            print(f"\nmetadata of a processed file: {n:,} spectra x 20 peaks, pyimzML's "
                  f"writer's format, XML {_mib(xml):,.0f} MiB (written in "
                  f"{time.perf_counter() - t:.0f} s); fresh process, time of the parse "
                  "(XML, UUID, every number checked) and peak RssAnon above the level "
                  "before it")
            print(f"{'':<34} {'wall (s)':>9} {'CPU (s)':>8} {'peak RssAnon':>14} "
                  f"{'threads':>8}")
            print("-" * 77)
            rows = [("ours (parse)", "ours")]
            if not args.no_million_peer:
                rows.append(("pyimzML ImzMLParser", "pyimzml"))
            got = {}
            for label, which in rows:
                got[which] = r = _ims_process.parse(path, which)
                print(f"{label:<34} {r['seconds']:>9.2f} {r['cpu']:>8.2f} "
                      f"{_mib(r['peak']):>10.1f} MiB {r['threads']:>8}")
            if "pyimzml" in got:
                o, p = got["ours"], got["pyimzml"]
                print(f"pyimzML / ours: wall {p['seconds'] / o['seconds']:.1f}x, CPU "
                      f"{p['cpu'] / o['cpu']:.1f}x")


def _process_level(shape, path, parts, args):
    """Parts fresh and calls on the continuous file ``path`` of ``shape``.

    Wall seconds are what a user waits; CPU seconds (user + system) are
    printed beside them, since on a machine shared with other jobs a
    process waits for a core for much of its wall time.
    """
    n, L = shape
    if "fresh" in parts:
        got = _ims_process.fresh(path, max(args.repeat, 3))
        print(f"\nfresh process reading the {n:,} x {L:,} file (whole process: interpreter, "
              f"imports, read; {len(got['ours'])} runs each, in turn)")
        print(f"{'':<26} {'wall best':>10} {'median':>8} {'CPU best':>9} {'median':>8}")
        print("-" * 65)
        runs = {k: np.array(got[k]) for k in ("ours", "peer")}
        for what, cols in (("whole process", (0, 1)), ("after numpy's import", (2, 3))):
            print(what)
            for label, key in (("  ours: read_imzml", "ours"),
                               ("  pyimzML: parser + loop", "peer")):
                w, c = runs[key][:, cols[0]], runs[key][:, cols[1]]
                print(f"{label:<26} {w.min():>10.3f} {np.median(w):>8.3f} {c.min():>9.3f} "
                      f"{np.median(c):>8.3f}")
            r = [runs["peer"][:, j] / runs["ours"][:, j] for j in cols]
            print(f"  pyimzML / ours, run by run: wall {r[0].min():.1f}x to "
                  f"{r[0].max():.1f}x (median {np.median(r[0]):.1f}x), CPU {r[1].min():.1f}x "
                  f"to {r[1].max():.1f}x (median {np.median(r[1]):.1f}x)")
        print(f"torch imported by reading: {'no' if got['no_torch'] else 'YES'}")
    if "calls" in parts:
        ours, peer = (np.array(v) for v in _ims_process.calls(path, 10))
        print(f"\n10 consecutive calls in one process, {n:,} x {L:,} (ours, then "
              "pyimzML's parser + loop, in turn)")
        for k, kind in enumerate(("wall", "CPU")):
            ratio = peer[:, k] / ours[:, k]
            print(f"ours {kind} (s):    " + " ".join(f"{t:6.3f}" for t in ours[:, k]))
            print(f"pyimzML {kind} (s): " + " ".join(f"{t:6.3f}" for t in peer[:, k]))
            print(f"ratio {kind}:       " + " ".join(f"{r:5.1f}x" for r in ratio))
            print(f"{kind}: every call at least {ratio.min():.1f}x, median "
                  f"{np.median(ratio):.1f}x (slowest of ours against fastest of pyimzML: "
                  f"{peer[:, k].min() / ours[:, k].max():.1f}x)")
        # each side alone in its own process: call i against call i, so that
        # neither side's first call pays for the other's (the first large
        # allocation of a process is the slowest: transparent huge pages)
        ours, peer = _ims_process.calls_alone(path, 10, rounds=max(args.repeat, 2))
        print(f"\n10 consecutive calls, each side alone in a fresh process ({max(args.repeat, 2)} "
              "processes per side, median per call)")
        for k, kind in enumerate(("wall", "CPU")):
            o, q = np.median(ours[:, :, k], 0), np.median(peer[:, :, k], 0)
            ratio = q / o
            print(f"ours {kind} (s):    " + " ".join(f"{t:6.3f}" for t in o))
            print(f"pyimzML {kind} (s): " + " ".join(f"{t:6.3f}" for t in q))
            print(f"ratio {kind}:       " + " ".join(f"{r:5.1f}x" for r in ratio))
            print(f"{kind}: every call at least {ratio.min():.1f}x, median "
                  f"{np.median(ratio):.1f}x")


if __name__ == "__main__":
    main()
