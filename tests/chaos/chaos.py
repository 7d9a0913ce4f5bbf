#!/usr/bin/env python3
"""chaos.py: the s3shard chaos harness (python3 standard library only).

One invocation starts, on loopback, a real s3rver behind s3shard-faultproxy,
uploads a dataset of log-normal object sizes in two channels (`a`: Dynamic,
`b`: ShardedByS3Key), then runs one whole job per seed: a real
s3shard-coordinator (--state DIR, mirrored to S3 with --state-uri), two
"nodes" of two ranks each, every rank one `s3shard consume` process per
channel (real processes, real signals), and a seeded random schedule of

  kill_rank    SIGKILL of one consume process, restarted
  term_rank    SIGTERM of one consume process (a drain: must exit 0), restarted
  kill_node    SIGKILL of every process of a node, restarted with its cache
               folder kept or wiped
  kill_coord   SIGKILL of the coordinator, restarted from its journal
  s3_fault     503 SlowDown / 500 / resets / short bodies through the proxy
  cluster_loss (--cluster-loss) every process killed and the state dir
               deleted: a new coordinator resumes from --state-uri alone;
               with --stale-mirror-seeds, those seeds lose the cluster while
               the mirror is behind (progress committed after its last upload)

After each run the verifier checks, per channel and epoch, from the saved
coverage ledgers and the ranks' own lines (epoch TAB key TAB start TAB end TAB
sha256): every byte of every object committed exactly once; every line's
sha256 right against the uploaded bytes; the lines cover every byte; bytes
read twice and bytes downloaded twice (the proxy's per-key byte counts)
within the budget of the events (one in-flight window per killed or drained
process: its leases' uncommitted bytes, and for downloads also the consumed
part of each lease's block in flight, which never reached the cache; one piece
per live process at a coordinator kill; half a GET per cut S3 response; zero
for a kept cache); every epoch completed. Violations are printed and
make the exit status 1.

Modes: the default chaos runs; --ddp drop|pad: the equal-steps contract with
ranks of very different speeds and a rank restart; --cluster-loss.
Prints one JSON line per run and a summary (runs, events by kind, bytes
re-downloaded, violations)."""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

EPOCHS = 3
WORLD = 4
STALE_MIRROR_MS = 4000  # --stale-mirror-seeds: the mirror interval of those runs
STALE_STEP_MS = 100  # and their ranks' --step-ms at least (a slower job)
LOSS_STEP_MS = 25  # a cluster loss's ranks: an epoch must outlast the wait for mid-object
NODES = {"A": (0, 1), "B": (2, 3)}
CHANNELS = ("a", "b")


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def log(*a):
    print("chaos:", *a, file=sys.stderr, flush=True)


class Env:
    """s3rver + faultproxy + the uploaded dataset, shared by every run."""

    def __init__(self, args):
        self.args = args
        self.build = args.build
        self.bin = os.path.join(self.build, "s3shard")
        self.coordbin = os.path.join(self.build, "s3shard-coordinator")
        self.proxybin = os.path.join(self.build, "s3shard-faultproxy")
        self.tmp = tempfile.mkdtemp(prefix="s3s-chaos-")
        self.procs = []
        self.env = dict(os.environ)
        for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "S3SHARD_SECRET"):
            self.env.pop(k, None)
        self.env.update(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                        AWS_REGION="us-east-1")
        # ASan: leak reports of processes we SIGKILL never come; keep exit codes honest
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        help_text = subprocess.run([self.bin, "consume", "--help"], capture_output=True,
                                   text=True, env=self.env)
        self.has_cache = "--cache-dir" in (help_text.stdout + help_text.stderr)

    def start(self):
        a = self.args
        self.s3port = freeport()
        os.makedirs(os.path.join(self.tmp, "s3data"))
        p = subprocess.Popen(["node", "--openssl-legacy-provider", a.s3rver, "-d",
                              os.path.join(self.tmp, "s3data"), "-a", "127.0.0.1", "-p",
                              str(self.s3port), "--silent", "--configure-bucket", "data",
                              "--configure-bucket", "state"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.direct = "http://127.0.0.1:%d" % self.s3port
        for _ in range(200):
            try:
                urllib.request.urlopen(self.direct + "/", timeout=1).read()
                break
            except Exception:
                time.sleep(0.1)
        pp = subprocess.Popen([self.proxybin, "--upstream", "127.0.0.1:%d" % self.s3port,
                               "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
        self.procs.append(pp)
        self.proxyport = int(pp.stdout.readline().strip())
        self.ep = "http://127.0.0.1:%d" % self.proxyport
        self.make_data()

    def make_data(self):
        a = self.args
        rnd = random.Random(a.data_seed)
        lo, hi = 1024, int(a.max_mb * 1e6)
        # log-normal sizes, scaled so that the total is about --total-mb
        raw = [math.exp(rnd.gauss(0.0, a.sigma)) for _ in range(a.objects)]
        target = a.total_mb * 1e6
        scale = target / sum(raw)
        for _ in range(30):
            sizes = [min(hi, max(lo, int(r * scale))) for r in raw]
            tot = sum(sizes)
            if abs(tot - target) < target * 0.02:
                break
            scale *= target / tot
        # the whole range is exercised: the largest object is --max-mb, the smallest 1 KB
        sizes[max(range(len(sizes)), key=lambda i: sizes[i])] = hi
        sizes[min(range(len(sizes)), key=lambda i: sizes[i])] = lo
        src = os.path.join(self.tmp, "src")
        self.sizes = {}  # channel -> {key: size}
        for ch in CHANNELS:
            os.makedirs(os.path.join(src, ch))
            self.sizes[ch] = {}
        block = os.urandom(1 << 20)
        for i, n in enumerate(sizes):
            ch = CHANNELS[i % 2]
            name = "obj%05d.bin" % i
            with open(os.path.join(src, ch, name), "wb") as f:
                # distinct bytes per object: a rotating slice of random data + the index
                left, off = n, (i * 7919) % len(block)
                head = ("%08d" % i).encode()
                f.write(head[:left])
                left -= min(left, len(head))
                while left > 0:
                    m = min(left, len(block) - off)
                    f.write(block[off:off + m])
                    left -= m
                    off = 0
            self.sizes[ch]["ds/%s/%s" % (ch, name)] = n
        self.src = src
        self.largest = max(sizes)
        r = subprocess.run([self.bin, "--endpoint", self.direct, "cp", "--recursive", "--jobs",
                            "8", src, "s3://data/ds"], env=self.env, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise SystemExit("chaos: upload failed: " + r.stderr[-2000:])
        total = sum(sum(v.values()) for v in self.sizes.values())
        log("dataset: %d objects, %.1f MB, largest %.1f MB" %
            (len(sizes), total / 1e6, max(sizes) / 1e6))

    def read(self, key, a, b):
        with open(os.path.join(self.src, key[3:]), "rb") as f:
            f.seek(a)
            return f.read(b - a)

    def proxy(self, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/__faultproxy/%s" %
                                     (self.proxyport, path), data=body,
                                     method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def stop(self):
        for p in self.procs:
            try:
                p.kill()
                p.wait()
            except Exception:
                pass
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept", self.tmp)


class Run:
    """One job under one seed."""

    def __init__(self, env, seed, mode):
        self.E, self.seed, self.mode = env, seed, mode
        self.rnd = random.Random(seed)
        a = env.args
        self.cb = a.commit_bytes
        self.dir = os.path.join(env.tmp, "run-%d-%s" % (seed, mode))
        os.makedirs(self.dir)
        self.state = os.path.join(self.dir, "state")
        self.saved = os.path.join(self.dir, "ledgers")  # ledgers copied aside
        os.makedirs(self.saved)
        self.uri = "s3://state/%s-%d-%d" % (mode, seed, int(time.time() * 1000))
        self.url = "tcp://127.0.0.1:%d" % freeport()
        self.events = {}
        self.budget = 0  # bytes that may be downloaded twice
        self.line_budget = 0  # bytes that may be read (printed) twice
        self.violations = []
        self.rank_errors = 0
        self.evlog = []  # (secs, what, detail): the timeline kept for a download violation
        self.t0 = time.time()
        self.coord = None
        self.ranks = {}  # (rank, channel) -> Popen
        self.incs = {}
        self.started = {}
        self.start_size = {}
        self.cuts = {}  # (rank, channel) -> line counts where the node's cache was wiped
        self.channels = CHANNELS if mode != "ddp" else ("a",)
        # a stale mirror: the loss strikes between two uploads of the journal
        self.stale = mode == "loss" and seed in env.args.stale_seeds
        self.mirror_ms = STALE_MIRROR_MS if self.stale else 200
        self.samples = []  # (time, {channel: (epoch, bytes committed)}) before the loss

    # ---- processes ----------------------------------------------------------
    def job(self):
        chans = {"a": {"Distribution": "Dynamic", "ShardTargetBytes": 0},
                 "b": {"Distribution": "ShardedByS3Key", "ShardTargetBytes": 0}}
        if self.mode == "ddp":
            chans = {"a": {"Distribution": "Dynamic", "ShardTargetBytes": 0,
                           "EqualSteps": self.E.args.ddp.capitalize()}}
        idc = [{"ChannelName": ch, "ShuffleConfig": {"Seed": self.seed + i},
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                "S3Uri": "s3://data/ds/%s/" % ch}}}
               for i, ch in enumerate(self.channels)]
        spec = {"InputDataConfig": idc,
                "S3Shard": {"Epochs": EPOCHS, "LeaseSeconds": 3, "Channels": chans}}
        path = os.path.join(self.dir, "job.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        return path

    def start_coord(self, with_job=True):
        args = [self.E.coordbin, "--listen", self.url, "--state", self.state, "--world-size",
                str(WORLD), "--endpoint", self.E.ep, "--state-uri", self.uri,
                "--mirror-interval-ms", str(self.mirror_ms)]
        if with_job:
            args[1:1] = ["--job", self.jobpath]
        err = open(os.path.join(self.dir, "coord.err"), "a")
        self.coord = subprocess.Popen(args, env=self.E.env, stdout=subprocess.DEVNULL,
                                      stderr=err)
        err.close()
        for _ in range(300):
            if self.status() is not None:
                return
            if self.coord.poll() is not None:
                break
            time.sleep(0.1)
        self.violation("coordinator did not come up (exit %s)" % self.coord.poll())
        raise RuntimeError("coordinator")

    def status(self, ledger=False):
        a = [self.E.bin, "status", self.url, "--json"] + (["--ledger"] if ledger else [])
        r = subprocess.run(a, env=self.E.env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def node_of(self, rank):
        return "A" if rank in NODES["A"] else "B"

    def cache_dir(self, rank):
        return os.path.join(self.dir, "cache-" + self.node_of(rank))

    def start_rank(self, rank, ch):
        key = (rank, ch)
        self.incs[key] = self.incs.get(key, 0) + 1
        a = [self.E.bin, "--endpoint", self.E.ep, "consume", "--coordinator", self.url,
             "--channel", ch, "--rank", str(rank), "--world-size", str(WORLD),
             "--commit-bytes", str(self.cb)]
        step = self.step_ms(rank)
        if step:
            a += ["--step-ms", str(step)]
        if self.E.has_cache:
            d = self.cache_dir(rank)
            os.makedirs(d, exist_ok=True)
            a += ["--cache-dir", d]
        out = open(os.path.join(self.dir, "lines-%d-%s" % (rank, ch)), "a")
        self.start_size[key] = out.tell()
        err = open(os.path.join(self.dir, "rank-%d-%s.err" % (rank, ch)), "a")
        self.ranks[key] = subprocess.Popen(a, env=self.E.env, stdout=out, stderr=err)
        self.started[key] = time.time()
        self.note("start", [rank, ch, self.start_size[key]])
        out.close()
        err.close()

    def step_ms(self, rank):
        if self.mode == "ddp":
            return (0, 2, 10, 40)[rank]  # very different speeds
        if self.stale:
            # an epoch must outlast a few mirror intervals, or every moment
            # between two uploads holds an epoch boundary (which uploads)
            return max(self.E.args.step_ms, STALE_STEP_MS)
        if self.mode == "loss":
            # on a fast machine an unpaced epoch of the loss test lasts ~2 s:
            # the loss must strike inside one (and inside an object)
            return max(self.E.args.step_ms, LOSS_STEP_MS)
        return self.E.args.step_ms

    def reap(self):
        """Restarts processes that failed on their own (counted, not hidden)."""
        for key, p in list(self.ranks.items()):
            rc = p.poll()
            if rc is None or rc == 0:
                continue
            errf = os.path.join(self.dir, "rank-%d-%s.err" % key)
            text = open(errf, errors="replace").read()[-4000:]
            if "Sanitizer" in text or "runtime error" in text:
                self.violation("rank %d/%s: sanitizer report:\n%s" % (key[0], key[1], text))
            self.rank_errors += 1
            log("seed %d: rank %d/%s exited %d: %s" %
                (self.seed, key[0], key[1], rc, text.strip().splitlines()[-1:]))
            self.start_rank(*key)

    def live(self):
        return [k for k, p in self.ranks.items() if p.poll() is None]

    # ---- the schedule -------------------------------------------------------
    def count(self, kind):
        self.events[kind] = self.events.get(kind, 0) + 1
        self.note(kind)

    def note(self, what, detail=None):
        self.evlog.append((round(time.time() - self.t0, 3), what, detail))

    BLOCK = 8 << 20  # the worker's GET size (s3s_worker_opts.block_size default)

    def window(self, keys, st=None):
        """The in-flight window of processes: their ranks' live leases'
        uncommitted bytes in the coordinator (asked after the processes died,
        before their successors replace them). Returns (read, downloaded):
        what may be read again, and what may be downloaded again, which also
        counts each lease's block from its start. A tail resuming mid-block
        is fetched from its resume offset, so the same epoch downloads
        nothing committed again; but the part of a block consumed while the
        block was still arriving dies with the process (the block never
        reached the node's cache), and a later epoch reading the object on
        that node fetches it (one object per shard here, so shard offsets
        are object offsets)."""
        st = st or self.status()
        if st is None:  # no answer: the worst case of 2 leases of the largest object
            w = len(keys) * 2 * (self.E.largest + self.BLOCK)
            return w, w
        w = heads = 0
        seen = []
        for c in st["channels"]:
            for r in c.get("ranks", []):
                if (r["rank"], c["name"]) in keys:
                    for shard, start, committed, end in r.get("leases", []):
                        w += end - committed
                        heads += committed % self.BLOCK
                        seen.append([r["rank"], c["name"], c["epoch"], shard, start, committed, end])
        self.note("window", seen)
        return w, w + heads

    def add_window(self, keys, read=True):
        """Adds the window of keys' processes to the budgets: downloads, and
        with read the bytes that may be read (printed) twice."""
        r, d = self.window(keys)
        self.budget += d
        if read:
            self.line_budget += r

    def ev_kill_rank(self):
        live = self.live()
        if not live:
            return
        key = self.rnd.choice(sorted(live))
        self.ranks[key].kill()
        self.ranks[key].wait()
        self.count("kill_rank")
        self.add_window({key})
        time.sleep(self.rnd.uniform(0.05, 0.6))
        self.start_rank(*key)

    def ev_term_rank(self):
        # a drain needs the signal handler, installed at start-up: a process
        # signalled before (exec, sanitizer start-up: seconds on a loaded
        # machine) simply dies, holding no lease. Only processes that printed
        # a line since they started are drained.
        live = [k for k in self.live() if os.path.getsize(
            os.path.join(self.dir, "lines-%d-%s" % k)) > self.start_size[k]]
        if not live:
            return
        key = self.rnd.choice(sorted(live))
        p = self.ranks[key]
        # a drain reads nothing twice, but what it had prefetched past its
        # position (its leases' uncommitted bytes, measured before: they only
        # shrink) is downloaded again by whoever takes those leases, unless
        # it reached a cache on that node. It is measured with the process
        # stopped (a lease asked for just before shows in the coordinator
        # meanwhile); from the SIGTERM on it takes no new lease.
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        self.add_window({key}, read=False)
        p.send_signal(signal.SIGTERM)
        p.send_signal(signal.SIGCONT)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "timeout"
        self.count("term_rank")
        if rc != 0:
            self.violation("rank %d/%s: SIGTERM (drain) exit %s" % (key[0], key[1], rc))
        time.sleep(self.rnd.uniform(0.05, 0.4))
        self.start_rank(*key)

    def ev_kill_node(self):
        node = self.rnd.choice(sorted(NODES))
        keys = [(r, ch) for r in NODES[node] for ch in self.channels]
        for k in keys:
            self.ranks[k].kill()
        for k in keys:
            self.ranks[k].wait()
        wipe = self.rnd.random() < 0.5
        self.count("kill_node_wipe" if wipe else "kill_node_keep")
        self.add_window(set(keys))
        d = self.cache_dir(NODES[node][0])
        if wipe:
            shutil.rmtree(d, ignore_errors=True)
            self.new_cache_generation(node)
        time.sleep(self.rnd.uniform(0.1, 0.8))
        for k in keys:
            self.start_rank(*k)

    def ev_kill_coord(self):
        # every live lease expires at the restart: the window is every rank's.
        # The ranks are stopped while it is measured, so that no grant slips in
        live = self.live()
        for k in live:
            self.ranks[k].send_signal(signal.SIGSTOP)
        time.sleep(0.05)
        self.add_window(set(self.ranks))
        self.coord.kill()
        self.coord.wait()
        for k in live:
            self.ranks[k].send_signal(signal.SIGCONT)
        self.count("kill_coord")
        self.save_ledgers()
        time.sleep(self.rnd.uniform(0.05, 0.8))
        self.start_coord()

    def ev_s3_fault(self):
        fault = self.rnd.choice(["slowdown", "internal", "reset", "reset_mid", "short"])
        rate = self.rnd.choice([0.02, 0.05, 0.1])
        # the proxy's limit counts every fault since the run's reset
        self.fault_limit = getattr(self, "fault_limit", 0) + self.rnd.randint(3, 12)
        cfg = "fault=%s\nrate=%s\nlimit=%d\nseed=%d\nmethod=GET\nmatch=/data/ds/" % (
            fault, rate, self.fault_limit, self.rnd.randint(1, 1 << 30))
        self.E.proxy("config", cfg.encode())
        self.count("s3_" + fault)
        self.fault_until = time.time() + self.rnd.uniform(1.0, 3.0)

    def new_cache_generation(self, node):
        """A wiped cache: lines printed from now on belong to a new cache
        generation of the node (the line counts of its files mark the cut)."""
        for r in NODES[node]:
            for ch in self.channels:
                p = os.path.join(self.dir, "lines-%d-%s" % (r, ch))
                n = sum(1 for _ in open(p)) if os.path.exists(p) else 0
                self.cuts.setdefault((r, ch), []).append(n)

    def save_ledgers(self):
        if os.path.isdir(self.state):
            for n in os.listdir(self.state):
                if n.startswith("ledger-") and n.endswith(".json"):
                    shutil.copy(os.path.join(self.state, n), os.path.join(self.saved, n))

    def ev_cluster_loss(self):
        """Every rank dies; the coordinator's last mirror upload happens; then
        the coordinator dies and its state dir is deleted. New ranks (empty
        caches) and a coordinator with only --state-uri resume. It strikes in
        the second epoch, once a quarter of channel a is committed."""
        for _ in range(600):
            st = self.status()
            c = st and [x for x in st["channels"] if x["name"] == "a"][0]
            if st:
                self.samples.append((time.time(), {x["name"]: (x["epoch"], x["bytes_committed"])
                                                   for x in st["channels"]}))
            if c and (c["epoch"] >= 2 or c["finished"] or
                      (c["epoch"] == 1 and c["bytes_committed"] * 4 >= c["bytes_total"])):
                break
            time.sleep(0.2)
        if self.stale:
            # right after a mirror upload (the proxy sees the journal's PUT),
            # a moment of progress, a sample (st), then everything at once, the
            # coordinator first: the next upload is a whole interval away, so
            # the sample holds progress the mirror lacks
            st = self.stale_moment(st)
            t_loss = time.time()
            self.coord.kill()
            for k in self.live():
                self.ranks[k].kill()
            self.coord.wait()
            for k in list(self.ranks):
                self.ranks[k].wait()
            # lines printed and not committed: the leases' windows then, and
            # one piece per process committed after the sample
            self.line_budget += self.window(set(self.ranks), st)[0] + len(self.ranks) * self.cb
        else:
            self.mid_object = self.wait_mid_object()
            for k in self.live():
                self.ranks[k].kill()
            for k in list(self.ranks):
                self.ranks[k].wait()
            # the killed ranks' uncommitted pieces are in what is left to
            # download (below): after the resume nothing may be downloaded twice
            self.line_budget += self.window(set(self.ranks))[0]
            time.sleep(1.0)  # > 2 mirror intervals: the journal's last state is uploaded
            st = self.status()
            self.coord.kill()
            self.coord.wait()
        self.save_ledgers()
        shutil.rmtree(self.state)
        for n in NODES:
            shutil.rmtree(self.cache_dir(NODES[n][0]), ignore_errors=True)
            self.new_cache_generation(n)
        self.count("cluster_loss")
        if self.stale:
            # what the mirror had: the new coordinator's state before any rank
            # comes; the lost progress is what was committed after its upload
            self.start_coord(with_job=False)
            st = self.stale_check(st, t_loss)
            self.line_budget += sum(self.stale_lag.values())  # read again, as promised
        # what is left to download: the current epoch's uncommitted bytes + later epochs
        self.E.proxy("reset", b"")
        self.loss_left = 0
        for c in st["channels"]:
            if c["finished"]:
                continue
            self.loss_left += c["bytes_total"] - c["bytes_committed"] - c["bytes_dropped"]
            self.loss_left += c["bytes_total"] * (EPOCHS - 1 - c["epoch"])
        self.loss_at = [[c["name"], c["epoch"], c["bytes_committed"], c["bytes_total"]]
                        for c in st["channels"]]
        self.loss_gen = {n: len(self.cuts.get((NODES[n][0], self.channels[0]), []))
                         for n in NODES}
        if not any(0 < c["bytes_committed"] < c["bytes_total"] for c in st["channels"]):
            self.violation("the cluster loss did not strike mid-epoch (%s): the test proves "
                           "nothing; raise or lower --loss-after" % self.loss_at)
        if not self.stale:
            self.start_coord(with_job=False)
        for k in sorted(self.ranks):
            self.start_rank(*k)

    def wait_mid_object(self, secs=4.0):
        """Waits (at most secs) until some rank is inside an object: a live
        lease committed past its start and not at a block boundary, so the
        loss cuts an object whose tail must resume mid-block (fetched from the
        exact offset: nothing committed is downloaded again). Returns how many
        such leases the last sample showed."""
        end = time.time() + secs
        n = 0
        while time.time() < end:
            st = self.status()
            chans = (st or {}).get("channels", [])
            n = sum(1 for c in chans for r in c.get("ranks", [])
                    for shard, start, committed, stop in r.get("leases", [])
                    if start < committed < stop and committed % self.BLOCK)
            if n:
                break
            # never wait the job's last epoch away: the loss must strike mid-epoch
            if chans and not any(not c["finished"] and c["bytes_committed"] * 10 <
                                 c["bytes_total"] * 7 for c in chans):
                log("mid-object: none before every channel's last 30%; the loss strikes now")
                break
            time.sleep(0.05)
        return n

    def journal_puts(self):
        keys = json.loads(self.E.proxy("stats")).get("keys", {})
        pre = "/" + self.uri[len("s3://"):] + "/journal"
        return sum(v.get("PUT", 0) for k, v in keys.items() if k.split("?")[0] == pre)

    def stale_moment(self, st):
        """Waits for a mirror upload, then for committed progress after it in
        the same epochs (>= 256 KiB on some channel, or 2 s): a moment whose
        progress the mirror lacks. Timing alone is not enough: on an idle
        machine an epoch may end (an upload at its boundary) within any fixed
        wait, on a loaded one nothing may be committed in it. An epoch change
        meanwhile starts over at the next upload; a channel finished at the
        upload is left out (nothing of it can be lost). Returns the last sample."""
        def shape(x):
            return {c["name"]: (c["epoch"], c["bytes_committed"], c["finished"])
                    for c in x["channels"]}
        for _ in range(12):
            self.wait_mirror_upload()
            base = self.status()
            if base is None:
                continue
            b = {k: v for k, v in shape(base).items() if not v[2]}
            if not b:
                break
            end = time.time() + 2.0
            while True:
                time.sleep(0.05)
                cur = self.status()
                if cur is None:
                    continue
                c = shape(cur)
                self.samples.append((time.time(), {k: v[:2] for k, v in c.items()}))
                if any(c[k][0] != b[k][0] or c[k][2] for k in b):
                    log("stale moment: an epoch ended meanwhile (%s -> %s); again" % (b, c))
                    break  # an epoch ended: its boundary uploads; try again
                if (any(c[k][1] - b[k][1] >= 256 << 10 for k in b) or
                        (time.time() > end and any(c[k][1] > b[k][1] for k in b))):
                    return cur
        return self.status() or st

    def wait_mirror_upload(self):
        n = self.journal_puts()
        end = time.time() + 3 * self.mirror_ms / 1000.0
        while time.time() < end and self.journal_puts() == n:
            time.sleep(0.05)

    def stale_check(self, before, t_loss):
        """A stale mirror: the resumed coordinator (from --state-uri alone) is
        at the mirror's positions, behind what was committed at the loss by at
        most the progress of one mirror interval (two, for the upload's own
        time on a loaded machine). Returns its status; keeps the mirror's
        committed ranges of the epoch of the loss (no line after the loss may
        touch them)."""
        st = self.status(ledger=True)
        if st is None:
            self.violation("stale mirror: no status from the resumed coordinator")
            raise RuntimeError("status")
        self.stale_lag = {}
        self.mirror_rows = {}
        for b in before["channels"]:
            a = [x for x in st["channels"] if x["name"] == b["name"]][0]
            if a["epoch"] > b["epoch"] and not b["finished"]:
                # the epoch ended between the sample and the kill: its
                # boundary upload holds all of it; nothing of it is lost
                log("stale mirror: channel %s ended epoch %d after the sample" %
                    (b["name"], b["epoch"]))
                self.stale_lag[b["name"]] = 0
                continue
            if a["epoch"] != b["epoch"]:
                self.violation("stale mirror: channel %s resumed in epoch %d, lost in epoch %d "
                               "(the mirror uploads at every epoch boundary)" %
                               (b["name"], a["epoch"], b["epoch"]))
                continue
            # before: the last sample; an upload after it (and before the
            # kill) may hold more than it: then nothing is proved for the channel
            lag = max(0, b["bytes_committed"] - a["bytes_committed"])
            self.stale_lag[b["name"]] = lag
            # the bound: the progress of the last two mirror intervals
            t0 = t_loss - 2 * self.mirror_ms / 1000.0
            base = 0
            for t, m in self.samples:
                if t <= t0 and b["name"] in m and m[b["name"]][0] == b["epoch"]:
                    base = m[b["name"]][1]
            if lag > b["bytes_committed"] - base:
                self.violation("stale mirror: channel %s lost %d committed bytes, more than the "
                               "%d committed in the last %d ms" % (
                                   b["name"], lag, b["bytes_committed"] - base,
                                   2 * self.mirror_ms))
            self.mirror_rows[b["name"]] = [(r["key"], r["start"], r["end"])
                                           for r in a.get("ledger", [])
                                           if r["epoch"] == b["epoch"] and r.get("key")]
        if sum(self.stale_lag.values()) <= 0:
            self.violation("stale mirror: nothing was committed after the mirror's last upload "
                           "(%s): the test proves nothing" % self.stale_lag)
        return st

    # ---- the run ------------------------------------------------------------
    def violation(self, text):
        self.violations.append(text)
        print("VIOLATION (seed %d, %s): %s" % (self.seed, self.mode, text), flush=True)

    def go(self):
        a = self.E.args
        t0 = time.time()
        self.E.proxy("reset?config=1", b"")
        self.jobpath = self.job()
        self.start_coord()
        for r in range(WORLD):
            for ch in self.channels:
                self.start_rank(r, ch)
        kinds = ["kill_rank", "term_rank", "kill_node", "kill_coord", "s3_fault"]
        weights = [3, 2, 1, 2, 2]
        if a.kinds:  # only these kinds (to study one)
            weights = [w for k, w in zip(kinds, weights) if k in a.kinds]
            kinds = [k for k in kinds if k in a.kinds]
        n_events = self.rnd.randint(a.min_events, a.max_events)
        if self.mode == "ddp":
            kinds, weights, n_events = ["kill_rank"], [1], 1
        if self.mode == "loss":
            kinds, weights, n_events = ["cluster_loss"], [1], 1
        # every kind once (when there is room), the rest drawn by weight, shuffled
        plan = list(kinds) if n_events >= len(kinds) else []
        plan += [self.rnd.choices(kinds, weights)[0] for _ in range(n_events - len(plan))]
        self.rnd.shuffle(plan)
        gaps = [self.rnd.uniform(a.gap_min, a.gap_max) for _ in plan]
        if self.mode == "loss":  # mid-job: in the second epoch, half-way
            gaps = [self.E.args.loss_after]
        self.fault_until = None
        deadline = t0 + a.run_timeout
        next_at = time.time() + (gaps[0] if gaps else 0)
        finished = False
        while time.time() < deadline:
            self.reap()
            if self.coord.poll() is not None:
                self.violation("the coordinator exited on its own (%s)" % self.coord.poll())
                self.start_coord()
            if self.fault_until and time.time() > self.fault_until:
                self.E.proxy("config", b"fault=none")
                self.fault_until = None
            if not self.live():
                finished = True
                break
            if plan and time.time() >= next_at:
                getattr(self, "ev_" + plan.pop(0))()
                gaps.pop(0)
                next_at = time.time() + (gaps[0] if gaps else 0)
            time.sleep(0.05)
        if self.fault_until:
            self.E.proxy("config", b"fault=none")
        if not finished:
            self.violation("the job did not finish within %d s" % a.run_timeout)
        if plan:
            self.events["not_run"] = len(plan)
        st = self.status(ledger=True)
        pstats = json.loads(self.E.proxy("stats"))
        self.save_ledgers()
        for p in self.ranks.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.coord.poll() is None:
            self.coord.send_signal(signal.SIGTERM)
            try:
                self.coord.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.coord.kill()
                self.coord.wait()
        if finished:
            self.verify(st, pstats)
        self.secs = time.time() - t0
        return self.report()

    # ---- the verifier -------------------------------------------------------
    def lines(self):
        out = []
        for r in range(WORLD):
            for ch in self.channels:
                p = os.path.join(self.dir, "lines-%d-%s" % (r, ch))
                if not os.path.exists(p):
                    continue
                cuts = self.cuts.get((r, ch), [])
                for i, l in enumerate(open(p)):
                    gen = sum(1 for c in cuts if i >= c)
                    f = l.rstrip("\n").split("\t")
                    if len(f) != 5:
                        if l.strip():
                            self.violation("malformed line in %s: %r" % (p, l[:200]))
                        continue
                    out.append((r, ch, int(f[0]), f[1], int(f[2]), int(f[3]), f[4],
                                (self.node_of(r), gen)))
        return out

    def verify(self, st, pstats):
        E = self.E
        if st is None or st.get("finished") is not True:
            self.violation("status does not say finished: %s" % (st and st.get("finished")))
            return
        lines = self.lines()
        # the coordinator's own per-epoch report: one row per epoch and channel
        self.coord_refetched = 0
        for c in st["channels"]:
            rows = c.get("epoch_stats", [])
            if self.mode != "loss" and [r["epoch"] for r in rows] != list(range(EPOCHS)):
                self.violation("status: channel %s epoch_stats for epochs %s" %
                               (c["name"], [r["epoch"] for r in rows]))
            self.coord_refetched += sum(r["bytes_refetched"] for r in rows)
        self.read_twice = 0
        self.dropped = 0
        for ch in self.channels:
            sizes = E.sizes[ch]
            total = sum(sizes.values())
            for e in range(EPOCHS):
                # the coverage ledger: every byte of every object exactly once
                p = os.path.join(self.saved, "ledger-%s-%d.json" % (ch, e))
                if not os.path.exists(p):
                    self.violation("no ledger for channel %s epoch %d (epoch incomplete?)" % (ch, e))
                    continue
                led = json.load(open(p))
                if led.get("verified") is not True:
                    self.violation("ledger %s/%d: the coordinator's own check failed" % (ch, e))
                per = {}
                for row in led["rows"]:
                    per.setdefault(row["key"], []).append((row["start"], row["end"],
                                                           row.get("dropped", False)))
                if set(per) != set(sizes):
                    self.violation("ledger %s/%d: %d keys, expected %d (missing e.g. %s)" % (
                        ch, e, len(per), len(sizes), sorted(set(sizes) - set(per))[:3]))
                for k, rs in per.items():
                    rs.sort()
                    at = 0
                    for a_, b_, dr in rs:
                        if a_ != at:
                            self.violation("ledger %s/%d %s: %s at byte %d (row %d-%d)" % (
                                ch, e, k, "gap" if a_ > at else "overlap", at, a_, b_))
                        at = max(at, b_)
                        if dr:
                            self.dropped += b_ - a_
                    if k in sizes and at != sizes[k]:
                        self.violation("ledger %s/%d %s: covers %d of %d bytes" %
                                       (ch, e, k, at, sizes[k]))
                # the lines: sha256 right, union covers every byte (unless dropped)
                cov = {}
                got = 0
                for (r, c, ep, key, a_, b_, h, _) in lines:
                    if c != ch or ep != e:
                        continue
                    if key not in sizes or b_ > sizes[key] or a_ >= b_:
                        self.violation("line %s/%d: bad range %s %d-%d" % (ch, e, key, a_, b_))
                        continue
                    if hashlib.sha256(E.read(key, a_, b_)).hexdigest() != h:
                        self.violation("line %s/%d: sha256 of %s [%d,%d) is wrong (rank %d)" % (
                            ch, e, key, a_, b_, r))
                    cov.setdefault(key, []).append((a_, b_))
                    got += b_ - a_
                for k, n in sizes.items():
                    at = 0
                    for a_, b_ in sorted(cov.get(k, [])):
                        if a_ > at:
                            break
                        at = max(at, b_)
                    if at < n and not any(x[2] for x in per.get(k, [])):
                        self.violation("lines %s/%d %s: read up to %d of %d bytes" %
                                       (ch, e, k, at, n))
                self.read_twice += max(0, got - total)
        if self.read_twice > self.line_budget and self.mode != "ddp":
            self.violation("bytes read twice %d > budget %d (%s)" %
                           (self.read_twice, self.line_budget, self.events))
        # downloads: the proxy's per-key body bytes against the data's size
        keys = pstats.get("keys", {})
        dl = 0
        # only a fault that cuts a body (reset_mid, short) wastes bytes;
        # 503/500/reset waste none
        bf = pstats.get("by_fault", {})
        faults = bf.get("reset_mid", 0) + bf.get("short", 0)
        for ch in self.channels:
            for k, n in E.sizes[ch].items():
                dl += keys.get("/data/" + k, {}).get("bytes_down", 0)
        if self.mode == "loss":
            expect = self.loss_left
            # after the loss, the ranks read exactly what was not committed: in
            # the epoch of the loss, the uncommitted bytes, nothing more
            for name, ep_, committed, total in self.loss_at:
                after = sum(b_ - a_ for (r, c, ep, key, a_, b_, h, gen) in lines
                            if c == name and ep == ep_ and gen[1] >= self.loss_gen[gen[0]])
                if after != total - committed:
                    self.violation("after the loss, channel %s epoch %d: %d bytes read, but %d "
                                   "were not committed" % (name, ep_, after, total - committed))
                rows = getattr(self, "mirror_rows", {}).get(name, [])
                mine = {}
                for k, a_, b_ in rows:
                    mine.setdefault(k, []).append((a_, b_))
                for (r, c, ep, key, a_, b_, h, gen) in lines:
                    if c == name and ep == ep_ and gen[1] >= self.loss_gen[gen[0]] and any(
                            a_ < mb and ma < b_ for ma, mb in mine.get(key, [])):
                        self.violation("after the loss, channel %s epoch %d: %s [%d,%d) read "
                                       "again, but the mirror had it committed" %
                                       (name, ep_, key, a_, b_))
                        break
            if E.has_cache:  # new, empty caches: each object once per node that read it
                expect = self.cache_expect(
                    [l for l in lines if l[7][1] >= self.loss_gen[l[7][0]]])
        elif E.has_cache:
            # with node caches, an object is downloaded once per (node, cache
            # generation) that read it: a kept cache serves every later read
            expect = self.cache_expect(lines)
        else:
            expect = EPOCHS * sum(sum(E.sizes[ch].values()) for ch in self.channels)
        self.downloaded = dl
        self.redownloaded = dl - expect
        # per faulted key: half its GET (a block, or the object when smaller:
        # the proxy cuts at half the body), for each fault of that key
        fb = 0
        if faults:
            for ch in self.channels:
                for k, n in E.sizes[ch].items():
                    f = keys.get("/data/" + k, {}).get("faults", 0)
                    fb += f * (min(self.BLOCK, n) // 2 + 1)
        self.budget_total = self.budget + fb
        self.faults = pstats.get("faults", 0)
        if self.mode != "ddp" and self.redownloaded > self.budget_total:
            self.violation("bytes downloaded twice %d > budget %d (%d S3 faults, %s)" % (
                self.redownloaded, self.budget_total, faults, self.events))
            self.dump_downloads(keys, lines)
        if self.mode != "ddp" and not E.has_cache and self.redownloaded < -self.dropped:
            self.violation("downloaded %d bytes, %d fewer than the data (cache?)" %
                           (dl, -self.redownloaded))
        if self.mode == "ddp":
            self.verify_ddp(st, lines)

    def dump_downloads(self, keys, lines):
        """For a download violation: downloads.json in the run's folder, the
        keys downloaded beyond what their lines needed (per node and cache
        generation with caches), with their lines and proxy counters."""
        per = {}
        for l in lines:
            per.setdefault(l[3], []).append(l)
        out = []
        for ch in self.channels:
            for k in self.E.sizes[ch]:
                got = keys.get("/data/" + k, {})
                ls = per.get(k, [])
                need = (self.cache_expect(ls) if self.E.has_cache
                        else sum(b_ - a_ for (_, _, _, _, a_, b_, _, _) in ls))
                if got.get("bytes_down", 0) > need:
                    out.append({"key": k, "size": self.E.sizes[ch][k],
                                "bytes_down": got.get("bytes_down", 0), "needed": need,
                                "proxy": got, "lines": [[r, c, ep, a_, b_, list(g)]
                                                        for (r, c, ep, _, a_, b_, _, g) in ls]})
        out.sort(key=lambda x: x["needed"] - x["bytes_down"])
        with open(os.path.join(self.dir, "downloads.json"), "w") as f:
            json.dump(out, f, indent=1)
        with open(os.path.join(self.dir, "events.json"), "w") as f:  # the timeline
            json.dump(self.evlog, f)
        log("downloads beyond need: %d keys, see %s" % (len(out),
                                                        os.path.join(self.dir, "downloads.json")))

    @staticmethod
    def cache_expect(lines):
        """Bytes a run with node caches must download: per object and (node,
        cache generation), the union of the ranges read."""
        rs = {}
        for (r, c, ep, key, a_, b_, h, gen) in lines:
            rs.setdefault((key, gen), []).append((a_, b_))
        expect = 0
        for v in rs.values():
            at = 0
            for a_, b_ in sorted(v):
                expect += max(0, b_ - max(a_, at))
                at = max(at, b_)
        return expect

    def verify_ddp(self, st, lines):
        sizes = self.E.sizes["a"]
        S = len(sizes)
        mode = self.E.args.ddp
        quota = S // WORLD if mode == "drop" else -(-S // WORLD)
        for e in range(EPOCHS):
            led = json.load(open(os.path.join(self.saved, "ledger-a-%d.json" % e)))
            counts = led.get("rank_samples")
            if counts is None:
                self.violation("ledger a/%d has no rank_samples" % e)
                continue
            if led.get("quota") != quota:
                self.violation("epoch %d: quota %s, expected %d" % (e, led.get("quota"), quota))
            if any(c != quota for c in counts):
                self.violation("epoch %d: samples per rank %s, expected %d each" % (e, counts, quota))
            # the ranks' own count: pieces that reached an object's end
            own = [0] * WORLD
            for (r, c, ep, key, a_, b_, h, _) in lines:
                if ep == e and b_ == sizes[key]:
                    own[r] += 1
            killed = self.killed_ranks
            for r in range(WORLD):
                if r in killed:
                    if not quota <= own[r] <= quota + 1:
                        self.violation("epoch %d: restarted rank %d finished %d samples, quota %d"
                                       % (e, r, own[r], quota))
                elif own[r] != quota:
                    self.violation("epoch %d: rank %d finished %d samples, quota %d" %
                                   (e, r, own[r], quota))
            self.ddp_counts = getattr(self, "ddp_counts", []) + [own]

    def report(self):
        return {"seed": self.seed, "mode": self.mode, "secs": round(self.secs, 1),
                "events": self.events, "rank_errors": self.rank_errors,
                "read_twice": getattr(self, "read_twice", None),
                "redownloaded": getattr(self, "redownloaded", None),
                "budget": getattr(self, "budget_total", None),
                "s3_faults": getattr(self, "faults", None),
                "coord_refetched": getattr(self, "coord_refetched", None),
                "ddp_samples": getattr(self, "ddp_counts", None),
                "loss_at": getattr(self, "loss_at", None),
                "stale_lag": getattr(self, "stale_lag", None),
                "mid_object_at_loss": getattr(self, "mid_object", None),
                "violations": len(self.violations)}


class DdpRun(Run):
    killed_ranks = ()

    def ev_kill_rank(self):
        # the slowest rank is killed mid-epoch and restarted
        key = (3, "a")
        self.ranks[key].kill()
        self.ranks[key].wait()
        self.killed_ranks = (3,)
        self.count("kill_rank")
        time.sleep(0.3)
        self.start_rank(*key)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("S3SHARD_BUILD_DIR", "build"))
    ap.add_argument("--s3rver", default=os.environ.get("S3SHARD_S3RVER_JS"))
    ap.add_argument("--seeds", default="", help="comma-separated seeds")
    ap.add_argument("--runs", type=int, default=0, help="random seeds: this many runs")
    ap.add_argument("--minutes", type=float, default=0, help="random seeds for this long")
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--total-mb", type=float, default=300)
    ap.add_argument("--max-mb", type=float, default=50)
    ap.add_argument("--sigma", type=float, default=2.4)
    ap.add_argument("--data-seed", type=int, default=1)
    ap.add_argument("--commit-bytes", type=int, default=1 << 20)
    ap.add_argument("--step-ms", type=int, default=0)
    ap.add_argument("--kinds", default="",
                    help="chaos mode: only these event kinds (comma-separated: kill_rank, "
                         "term_rank, kill_node, kill_coord, s3_fault)")
    ap.add_argument("--min-events", type=int, default=3)
    ap.add_argument("--max-events", type=int, default=8)
    ap.add_argument("--gap-min", type=float, default=0.3)
    ap.add_argument("--gap-max", type=float, default=1.5)
    ap.add_argument("--run-timeout", type=int, default=300)
    ap.add_argument("--ddp", choices=["drop", "pad"], help="the equal-steps test instead")
    ap.add_argument("--cluster-loss", action="store_true", help="the whole-cluster loss test")
    ap.add_argument("--stale-mirror-seeds", default="",
                    help="--cluster-loss: comma-separated seeds whose loss strikes while the "
                    "mirror is behind (--mirror-interval-ms %d instead of 200)" % STALE_MIRROR_MS)
    ap.add_argument("--loss-after", type=float, default=6.0,
                    help="--cluster-loss: seconds into the job")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--keep-failed", default="",
                    help="copy the folder of each run with a violation here (no caches)")
    a = ap.parse_args()
    a.stale_seeds = {int(x) for x in a.stale_mirror_seeds.split(",") if x}
    a.kinds = [x for x in a.kinds.split(",") if x]
    if not a.s3rver:
        raise SystemExit("chaos: --s3rver (or $S3SHARD_S3RVER_JS) is required")
    mode = "ddp" if a.ddp else "loss" if a.cluster_loss else "chaos"
    E = Env(a)
    results = []
    t0 = time.time()
    try:
        E.start()
        seeds = [int(s) for s in a.seeds.split(",") if s]
        sr = random.SystemRandom()
        i = 0
        while True:
            if seeds:
                if i >= len(seeds):
                    break
                seed = seeds[i]
            else:
                if a.runs and i >= a.runs:
                    break
                if a.minutes and time.time() - t0 > a.minutes * 60:
                    break
                if not a.runs and not a.minutes and i >= 1:
                    break
                seed = sr.randint(1, 1 << 31)
            i += 1
            R = (DdpRun if mode == "ddp" else Run)(E, seed, mode)
            try:
                rep = R.go()
            except Exception as ex:  # a harness failure is a failed run, not a crash
                R.violation("harness: %r" % ex)
                R.secs = 0
                rep = R.report()
            print(json.dumps(rep), flush=True)
            results.append((rep, R.violations))
            if R.violations and a.keep_failed:  # its evidence, without the caches
                dst = os.path.join(a.keep_failed, os.path.basename(R.dir))
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(R.dir, dst, ignore=shutil.ignore_patterns("cache-*"))
                log("kept the failed run in", dst)
            if not a.keep:  # a long soak must not fill the disk with caches
                shutil.rmtree(R.dir, ignore_errors=True)
    finally:
        E.stop()
    # the summary
    kinds = {}
    for rep, _ in results:
        for k, v in rep["events"].items():
            kinds[k] = kinds.get(k, 0) + v
    bad = [(rep["seed"], v) for rep, v in results if v]
    red = sum(rep["redownloaded"] or 0 for rep, _ in results)
    print("summary: %d runs in %.0f s, events %s, bytes re-downloaded %d (budget %d), "
          "bytes read twice %d, S3 faults %d, rank errors %d, violations %d%s" % (
              len(results), time.time() - t0, json.dumps(kinds, sort_keys=True), red,
              sum(rep["budget"] or 0 for rep, _ in results),
              sum(rep["read_twice"] or 0 for rep, _ in results),
              sum(rep["s3_faults"] or 0 for rep, _ in results),
              sum(rep["rank_errors"] for rep, _ in results), sum(len(v) for _, v in bad),
              (" (seeds " + ",".join(str(s) for s, _ in bad) + ")") if bad else ""),
          flush=True)
    return 1 if bad or not results else 0


if __name__ == "__main__":
    sys.exit(main())
