"""Differential fuzzing of treeprune's model readers against the native libraries.

Every format treeprune reads is mutated (byte flips, truncation, deleted / swapped / repeated
lines, spliced chunks, extreme numbers written over numbers). Each mutant is read by treeprune
and by the native library, each in its own child process (a native library can crash or hang on
a damaged file; so, in principle, could anything), and classified:

* treeprune: ``loaded`` (and predicts), ``typed`` (a ``TreePruneError`` on loading),
  ``typed-predict`` (loaded, but the fixed rows no longer fit, e.g. a damaged feature count: a
  ``TreePruneError`` from ``predict``), or a bug: ``error`` (any other exception),
  ``predict-error``, ``crash``, ``hang``;
* native: ``loaded``, ``refused`` (its own exception), ``crash``, ``hang``, ``n/a``;
* when both loaded: ``same`` (leaf ids equal, margins within 1e-5) or the bug ``differ``.

Bugs are saved under ``benchmarks/results/fuzz_bugs/`` for reproduction; counts are printed and
written to ``benchmarks/results/fuzz_readers.csv``. The exit code is 1 when any bug was found.

Seeds: the legacy fixtures in ``tests/fixtures/legacy`` (XGBoost 0.90-2.0.3 binary/JSON/UBJ,
LightGBM 2.x/3.x text) and models trained here by the installed XGBoost / LightGBM (JSON, UBJ,
text, with categorical splits). Today's XGBoost cannot read binary files at all; pass
``--legacy-python`` (an interpreter with an old XGBoost, for example 1.2.1, and numpy) to compare
binary mutants too. Files whose scores treeprune deliberately takes from an older release than
the native one (``summary()`` lists a "version rule") are compared on leaf ids only.

Usage::

    nice python benchmarks/fuzz_readers.py --mutants 10000 --minutes 60 \\
        [--legacy-python /path/to/py37-xgboost-1.2.1/bin/python]
    python benchmarks/fuzz_readers.py --mutants 200          # a quick look
"""

from __future__ import annotations

import argparse
import csv
import os
import pickle
import random
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "legacy"
RESULTS = ROOT / "benchmarks" / "results"
TIMEOUT_S = 60.0
NATIVE_TIMEOUT_S = 5.0
ATOL = 1e-5

# =================================================================================================
# child processes (this part must also run under the old Python of --legacy-python: keep it plain)
# =================================================================================================


def _send(stream, obj) -> None:
    blob = pickle.dumps(obj, protocol=4)
    stream.write(struct.pack("<Q", len(blob)) + blob)
    stream.flush()


def _recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _arrays(margin, leaf):
    import numpy as np

    m = np.ascontiguousarray(margin, dtype=np.float64)
    lf = np.ascontiguousarray(leaf, dtype=np.int64)
    return {"margin": m.tobytes(), "mshape": list(m.shape), "leaf": lf.tobytes(),
            "lshape": list(lf.shape)}


def _treeprune_task(data, X, fmt):
    import treeprune as tp
    from treeprune.errors import TreePruneError

    try:
        ens = tp.load(bytes(data))
    except TreePruneError as exc:
        return {"status": "typed", "msg": type(exc).__name__ + ": " + str(exc)[:300]}
    except Exception as exc:  # a bug: report it
        return {"status": "error", "msg": type(exc).__name__ + ": " + str(exc)[:300]}
    try:
        margin = ens.predict(X, output="margin")
        leaf = ens.predict(X, output="leaf")
    except TreePruneError as exc:  # e.g. a damaged num_feature: the rows no longer fit the model
        return {"status": "typed-predict", "msg": type(exc).__name__ + ": " + str(exc)[:300]}
    except Exception as exc:
        return {"status": "predict-error", "msg": type(exc).__name__ + ": " + str(exc)[:300]}
    out = _arrays(margin, leaf)
    out["status"] = "loaded"
    out["notes"] = list(ens.source_meta.get("semantic_notes") or ())
    return out


def _native_task(data, X, fmt):
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model")
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            if fmt.startswith("lightgbm"):
                import lightgbm as lgb

                booster = lgb.Booster(model_file=path)
                margin = booster.predict(X, raw_score=True)
                leaf = booster.predict(X, pred_leaf=True)
            else:
                import xgboost as xgb

                booster = xgb.Booster()
                booster.load_model(path)
                dm = xgb.DMatrix(X, missing=np.nan)
                margin = booster.predict(dm, output_margin=True)
                leaf = booster.predict(dm, pred_leaf=True)
        except Exception as exc:
            return {"status": "refused", "msg": type(exc).__name__ + ": " + str(exc)[:200]}
    out = _arrays(np.asarray(margin).reshape(len(X), -1), np.asarray(leaf).reshape(len(X), -1))
    out["status"] = "loaded"
    return out


def worker_main(kind):
    import warnings

    import numpy as np

    warnings.simplefilter("ignore")
    # results go through a private copy of fd 1; fd 1 itself (where C libraries print) goes to
    # stderr, so that no library chatter can corrupt the result pipe
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    init = _recv(stdin)
    X = np.frombuffer(init["X"], dtype=np.float64).reshape(init["shape"]).copy()
    task = _treeprune_task if kind == "treeprune" else _native_task
    if kind == "treeprune":
        for model in init.get("warmup", ()):
            task(model, X, "")  # compile every kernel (both decision rules) before timed tasks
    _send(stdout, {"ready": True})
    if kind != "treeprune":
        # import the library once; each task then runs in a forked child, so that a crash of
        # the library costs a fork, not a new interpreter
        # and use it once, so that what it sets up lazily is set up before the forks
        for fmt, model in init.get("native_warmup", ()):
            _native_task(model, X, fmt)
    while True:
        try:
            data, fmt = _recv(stdin)
        except EOFError:
            return
        if kind == "treeprune":
            _send(stdout, task(data, X, fmt))
        else:
            _send(stdout, _forked(task, data, X, fmt, init.get("timeout", 10.0)))


def _forked(task, data, X, fmt, timeout):
    """Run ``task`` in a forked child; report its crash or hang instead of suffering it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        try:
            blob = pickle.dumps(task(data, X, fmt), protocol=4)
            with os.fdopen(w, "wb") as fh:
                fh.write(blob)
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.time() + timeout
    with os.fdopen(r, "rb") as fh:
        while True:
            left = deadline - time.time()
            ready, _, _ = select.select([fh], [], [], max(0.0, left))
            if not ready:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return {"status": "hang"}
            chunk = os.read(fh.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks or os.WIFSIGNALED(status):
        return {"status": "crash", "msg": f"signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status) else "no answer"}
    return pickle.loads(b"".join(chunks))


# =================================================================================================
# the parent: seeds, mutators, workers, comparison
# =================================================================================================

class Worker:
    """A child process answering one task at a time; restarted after a crash or a hang."""

    def __init__(self, kind: str, python: str, X) -> None:
        self.kind, self.python, self.X = kind, python, X
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ)
        # one thread: polite on a shared machine, and safe to fork (no OpenMP pool to inherit)
        env["OMP_NUM_THREADS"] = "1"
        if self.kind == "treeprune":
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        else:
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([self.python, str(Path(__file__).resolve()), "--worker",
                                      self.kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, cwd=tempfile.gettempdir())
        warmup = [(FIXTURES / name).read_bytes() for name in (
            "xgb-1.2.1-multi_softprob.json", "xgb-2.0.3-binary_logistic.json",
            "lgb-3.3.5-multiclass.txt", "lgb-3.3.5-binary_categorical.txt",
            "lgb-2.3.1-regression_zero_missing.txt")]
        _send(self.proc.stdin, {"X": self.X.tobytes(), "shape": list(self.X.shape),
                                "warmup": warmup, "timeout": NATIVE_TIMEOUT_S,
                                "native_warmup": self._native_warmup()})
        reply = self._read(900.0)
        if not (isinstance(reply, dict) and reply.get("ready")):
            raise RuntimeError(f"{self.kind} worker did not start ({reply})")

    def _native_warmup(self) -> list[tuple[str, bytes]]:
        if self.kind == "treeprune":
            return []
        if self.python != sys.executable:  # an old XGBoost: its binary format
            return [("xgboost-binary", (FIXTURES / "xgb-1.2.1-binary_logistic.model").read_bytes())]
        return [("xgboost-json", (FIXTURES / "xgb-2.0.3-binary_logistic.json").read_bytes()),
                ("lightgbm-text", (FIXTURES / "lgb-3.3.5-binary.txt").read_bytes())]

    def _read(self, timeout: float):
        assert self.proc is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return "hang"
        try:
            return _recv(self.proc.stdout)
        except (EOFError, pickle.UnpicklingError):
            return "crash"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def call(self, data: bytes, fmt: str, timeout: float = TIMEOUT_S) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None
        try:
            _send(self.proc.stdin, (data, fmt))
        except (BrokenPipeError, OSError):
            self.stop()
            return {"status": "crash"}
        reply = self._read(timeout)
        if reply in ("hang", "crash"):
            self.stop()
            return {"status": reply}
        return reply


def _train_seeds() -> list[tuple[str, str, bytes]]:
    """Models of today's libraries: JSON and UBJ (XGBoost, with categories), text (LightGBM)."""
    import lightgbm as lgb
    import numpy as np
    import pandas as pd
    import xgboost as xgb

    rs = np.random.RandomState(3)
    n = 300
    X = rs.normal(size=(n, 5))  # + one categorical column: the 6 columns of the fixture rows
    X[rs.uniform(size=n) < 0.1, 1] = np.nan
    cat = rs.randint(0, 6, size=n)
    y = ((X[:, 0] + (cat % 3) - 1 + rs.normal(size=n)) > 0).astype(float)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    frame["k"] = pd.Categorical(cat)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        dm = xgb.DMatrix(frame, y, enable_categorical=True)
        for obj, extra in (("binary:logistic", {}), ("multi:softprob", {"num_class": 3})):
            label = y if obj == "binary:logistic" else (X[:, 0] > 0).astype(int) + (cat > 2)
            dm.set_label(label)
            b = xgb.train({"objective": obj, "max_depth": 3, "nthread": 1, "max_cat_to_onehot": 1,
                           "tree_method": "hist", **extra}, dm, num_boost_round=4)
            for suffix, fmt in ((".json", "xgboost-json"), (".ubj", "xgboost-ubj")):
                p = os.path.join(tmp, "m" + suffix)
                b.save_model(p)
                out.append((fmt, f"xgboost-{xgb.__version__}-{obj}{suffix}", Path(p).read_bytes()))
        ds = lgb.Dataset(frame, y, categorical_feature=["k"], free_raw_data=False)
        b = lgb.train({"objective": "binary", "num_leaves": 6, "verbose": -1, "num_threads": 1,
                       "min_data_per_group": 5, "cat_smooth": 1.0}, ds, num_boost_round=4)
        out.append(("lightgbm-text", f"lightgbm-{lgb.__version__}-binary-categorical.txt",
                    b.model_to_string().encode()))
    return out


def seed_files() -> list[tuple[str, str, bytes]]:
    import json

    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    fmts = {"binary": "xgboost-binary", "json": "xgboost-json", "ubj": "xgboost-ubj",
            "text": "lightgbm-text"}
    out = []
    for entry in manifest.values():
        for kind, name in entry["files"].items():
            out.append((fmts[kind], name, (FIXTURES / name).read_bytes()))
    return out + _train_seeds()


_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_EXTREME_TEXT = [b"1e308", b"-1e308", b"1e39", b"-1e39", b"nan", b"inf", b"-inf", b"0", b"-0",
                 b"1e-320", b"2147483647", b"2147483648", b"-2147483649", b"4294967296", b"-1",
                 b"99999999999999999999999", b"3.4028235e38", b"1.0000001", b"", b"1e"]
_EXTREME_WORDS = [struct.pack("<I", v) for v in (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                                                 0x7F800000, 0xFF800000, 0x7FC00000, 1 << 24)]


def _flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
    return bytes(b)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def _chunk(data: bytes, rng: random.Random) -> bytes:
    n = len(data)
    i, k = rng.randrange(n), rng.randint(1, 64)
    op = rng.randrange(3)
    if op == 0:  # delete
        return data[:i] + data[i + k:]
    if op == 1:  # repeat
        return data[:i] + data[i:i + k] + data[i:]
    j = rng.randrange(n)  # splice a chunk from elsewhere over this one
    return data[:i] + data[j:j + k] + data[i + k:]


def _lines(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    if len(lines) < 3:
        return _chunk(data, rng)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(3)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines.insert(j, lines[i])
    return b"\n".join(lines)


def _extreme_text(data: bytes, rng: random.Random) -> bytes:
    spans = [m.span() for m in _NUMBER.finditer(data[:200_000])]
    if not spans:
        return _flip(data, rng)
    out = data
    for _ in range(rng.choice((1, 1, 3))):
        a, b = spans[rng.randrange(len(spans))]
        if b > len(out):
            continue
        out = out[:a] + rng.choice(_EXTREME_TEXT) + out[b:]
    return out


def _extreme_binary(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 3))):
        i = rng.randrange(max(1, len(b) - 4)) & ~3
        b[i:i + 4] = rng.choice(_EXTREME_WORDS)
    return bytes(b)


def mutate(fmt: str, data: bytes, rng: random.Random) -> tuple[str, bytes]:
    text = fmt in ("xgboost-json", "lightgbm-text")
    ops = [("flip", _flip), ("truncate", _truncate), ("chunk", _chunk)]
    if text:
        ops += [("lines", _lines), ("lines", _lines), ("extreme", _extreme_text),
                ("extreme", _extreme_text)]
    else:
        ops += [("extreme", _extreme_binary), ("extreme", _extreme_binary)]
    name, op = rng.choice(ops)
    out = op(data, rng)
    if rng.random() < 0.15:  # a second, different damage now and then
        name2, op2 = rng.choice(ops)
        out, name = op2(out, rng) if out else out, f"{name}+{name2}"
    return name, out


def _binary_version(data: bytes) -> tuple[int, int]:
    off = 4 if data[:4] == b"binf" else 0
    if len(data) < off + 28:
        return (0, 0)
    return struct.unpack_from("<2I", data, off + 20)


#: The release of the old XGBoost given by --legacy-python is expected to score files written
#: by releases up to this one as they were written (base_score rules).
LEGACY_NATIVE_SAME_RULES = (1, 2)


def _version_field(fmt: str, data: bytes) -> bytes:
    """The bytes of a binary file that carry its version (major, minor) and base_score."""
    if fmt != "xgboost-binary":
        return b""
    off = 4 if data[:4] == b"binf" else 0
    return data[off:off + 4] + data[off + 20:off + 28]


def compare(tp_res: dict, nat: dict, margin_too: bool) -> str:
    import numpy as np

    tm = np.frombuffer(tp_res["margin"], dtype=np.float64)
    nm = np.frombuffer(nat["margin"], dtype=np.float64)
    tl = np.frombuffer(tp_res["leaf"], dtype=np.int64)
    nl = np.frombuffer(nat["leaf"], dtype=np.int64)
    if tl.shape != nl.shape or not np.array_equal(tl, nl):
        return "differ"
    if not margin_too:
        return "same-leaf"
    if tm.shape != nm.shape:
        return "differ"
    both_nan = np.isnan(tm) & np.isnan(nm)
    with np.errstate(invalid="ignore"):
        close = np.isclose(tm, nm, atol=ATOL, rtol=1e-6) | both_nan | (tm == nm)
    return "same" if bool(np.all(close)) else "differ"


def run(args) -> int:
    import numpy as np

    X = np.load(FIXTURES / "X.npz")["X"]
    rng = random.Random(args.seed)
    seeds = seed_files()
    if args.formats:
        seeds = [s for s in seeds if s[0] in args.formats]
    tp_worker = Worker("treeprune", sys.executable, X)
    native = {"today": Worker("native", sys.executable, X)}
    if args.legacy_python:
        native["legacy"] = Worker("native", args.legacy_python, X)
    counts: Counter = Counter()
    bug_dir = Path(args.results) / "fuzz_bugs"
    t0 = time.time()
    done = 0
    try:
        # unmutated seeds first: they must load and agree (sanity of the harness itself)
        plan = [] if args.skip_seed_check else [(s, None) for s in seeds]
        while True:
            if plan:
                (fmt, name, data), _ = plan.pop(0)
                op, mutant = "none", data
            else:
                if done >= args.mutants or time.time() - t0 > args.minutes * 60:
                    break
                fmt, name, data = rng.choice(seeds)
                op, mutant = mutate(fmt, data, rng)
            res = tp_worker.call(mutant, fmt)
            nat_worker = native["legacy" if fmt == "xgboost-binary" else "today"] \
                if (fmt != "xgboost-binary" or "legacy" in native) else None
            if args.lazy_native and res["status"] != "loaded" and op != "none":
                nat_worker = None  # nothing to compare: save the native call
            nat = nat_worker.call(mutant, fmt) if nat_worker else {"status": "n/a"}
            verdict = "-"
            if res["status"] == "loaded" and nat["status"] == "loaded":
                margin_too = not res.get("notes") and \
                    _version_field(fmt, mutant) == _version_field(fmt, data) and \
                    (fmt != "xgboost-binary" or _binary_version(data) <= LEGACY_NATIVE_SAME_RULES)
                verdict = compare(res, nat, margin_too)
            tp_bug = res["status"] in ("error", "predict-error", "crash", "hang")
            bug = tp_bug or verdict == "differ" or (op == "none" and res["status"] != "loaded")
            counts[(fmt, "mutants" if op != "none" else "seeds")] += 1
            counts[(fmt, "tp:" + res["status"])] += op != "none"
            counts[(fmt, "native:" + nat["status"])] += op != "none"
            if verdict != "-":
                counts[(fmt, "both:" + verdict)] += op != "none"
            if res["status"] == "typed" and nat["status"] == "loaded":
                counts[(fmt, "typed,native-loaded")] += op != "none"  # stricter than native
            if bug:
                counts[(fmt, "BUG")] += 1
                bug_dir.mkdir(parents=True, exist_ok=True)
                stem = f"{fmt}-{done:06d}-{op}"
                (bug_dir / (stem + ".bin")).write_bytes(mutant)
                (bug_dir / (stem + ".txt")).write_text(
                    f"seed {name}\nop {op}\ntreeprune {res['status']}: {res.get('msg', '')}\n"
                    f"native {nat['status']}: {nat.get('msg', '')}\nverdict {verdict}\n")
                print(f"BUG {stem}: seed {name} op {op} treeprune={res['status']} "
                      f"{res.get('msg', '')[:160]} native={nat['status']} verdict={verdict}",
                      flush=True)
            if op != "none":
                done += 1
                if args.progress and done % args.progress == 0:
                    print(f"{done} mutants, {time.time() - t0:.0f} s", flush=True)
    finally:
        tp_worker.stop()
        for w in native.values():
            w.stop()
    return report(counts, done, time.time() - t0, args)


def report(counts: Counter, done: int, seconds: float, args) -> int:
    fmts = sorted({f for f, _ in counts})
    cols = ["seeds", "mutants", "tp:loaded", "tp:typed", "tp:typed-predict", "tp:error",
            "tp:predict-error",
            "tp:crash", "tp:hang", "native:loaded", "native:refused", "native:crash",
            "native:hang", "native:n/a", "both:same", "both:same-leaf", "both:differ",
            "typed,native-loaded", "BUG"]
    rows = [[f] + [counts.get((f, c), 0) for c in cols] for f in fmts]
    total = ["all"] + [sum(r[i + 1] for r in rows) for i in range(len(cols))]
    widths = [max(len(str(x)) for x in col) for col in zip(["format"] + cols, *rows, total,
                                                            strict=True)]
    for line in (["format"] + cols, *rows, total):
        print("  ".join(str(x).rjust(w) for x, w in zip(line, widths, strict=True)))
    print(f"{done} mutants in {seconds:.0f} s (seed {args.seed}); bugs: {total[-1]}")
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "fuzz_readers.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["format"] + cols)
        w.writerows(rows + [total])
    return 1 if total[-1] else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mutants", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=30.0, help="stop after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--formats", nargs="*", help="xgboost-json xgboost-ubj xgboost-binary "
                   "lightgbm-text (default: all)")
    p.add_argument("--legacy-python", help="a Python with an old XGBoost (e.g. 1.2.1) that "
                   "reads binary models, to compare binary mutants")
    p.add_argument("--progress", type=int, default=500, help="print a line every N mutants")
    p.add_argument("--skip-seed-check", action="store_true",
                   help="do not first check that every unmutated seed loads and agrees")
    p.add_argument("--results", default=str(RESULTS), help="folder for the CSV and the bugs")
    p.add_argument("--lazy-native", action="store_true",
                   help="ask the native library only about mutants treeprune loaded (faster; "
                   "the native columns then count those mutants only)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
