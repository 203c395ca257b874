#!/usr/bin/env python3
"""qemu_migrate.py: one QEMU/KVM live migration over loopback, for
bench_migrate.sh (README.md beside it).

A source QEMU runs dirtier_mb.bin (the twin of tests/asm/dirtier.asm); a
destination QEMU with the same machine waits with `-incoming defer`; QMP
(unix sockets) sets the downtime limit, lifts the bandwidth cap, starts the
migration and polls query-migrate until it ends. Checked: the migration
completed, the destination runs, and the guest's marks (one byte every 250
passes: 1, 2, 3, ... mod 256) go on at the destination exactly where the
source left them. Prints one JSON object of numbers on stdout. --probe
only boots the source, waits for the guest's first mark (does QEMU/KVM run
a guest here at all?) and measures its passes per second; --rate-file does
that for the wasp dirtier's output.

Exit status: 0 done, 1 a step failed (one line on stderr says which),
2 bad usage. QEMU processes die with this one (PR_SET_PDEATHSIG) and are
killed on every exit; files stay in --work (the caller's temp dir).
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time


class Fail(Exception):
    pass


def die_with_parent():
    # Even a SIGKILL of this script must not leave a QEMU behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Qmp:
    def __init__(self, path, deadline):
        self.sock = None
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self.sock = s
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise Fail("no QMP socket at " + path)
                time.sleep(0.05)
        self.sock.settimeout(30)
        self.buf = b""
        self.events = []
        self.read()  # greeting
        self.cmd("qmp_capabilities")

    def read(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise Fail("QMP connection closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise Fail("QMP %s: %s" % (name, r["error"].get("desc", r["error"])))
            return r.get("return")

    def event_time(self, name):
        """The wall-clock time (s) QEMU stamped on its first event NAME."""
        for e in self.events:
            if e["event"] == name:
                t = e["timestamp"]
                return t["seconds"] + t["microseconds"] / 1e6
        return None

    def close(self):
        if self.sock:
            self.sock.close()


def marks(path):
    """The guest's marks so far in a debugcon file (bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def pass_rate(path, at_least, deadline, count, check=lambda: None, windows=3):
    """Passes per second of a guest that marks every 250th pass in PATH
    (COUNT(data) = marks so far): from one new mark to the first new mark
    at least AT_LEAST s later, so the window starts and ends on a mark
    (polled every 5 ms).
    The best of WINDOWS windows in a row: on a shared host the least
    disturbed one is the closest to what the guest itself can do."""
    def edge(after):
        n = count(marks(path))
        while True:
            check()
            if time.monotonic() > deadline:
                raise Fail("timed out waiting for the guest's marks in " + path)
            time.sleep(0.005)
            m = count(marks(path))
            if m != n and time.monotonic() >= after:
                return m, time.monotonic()
            n = m
    best = 0
    n0, t0 = edge(0)
    for _ in range(windows):
        n1, t1 = edge(t0 + at_least)
        best = max(best, (n1 - n0) * 250 / (t1 - t0))
        n0, t0 = n1, t1
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--kernel")
    ap.add_argument("--size", type=int, default=16, help="MiB")
    ap.add_argument("--region", type=int, default=1024, help="KiB")
    ap.add_argument("--fill", type=int, default=0, help="MiB")
    ap.add_argument("--downtime-ms", type=int, default=50)
    ap.add_argument("--cpu", default="host")
    ap.add_argument("--work")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--rate-file", help="only measure the pass rate of the guest writing to this file")
    a = ap.parse_args()

    deadline = time.monotonic() + a.timeout
    if a.rate_file:
        try:
            # wasp's dirtier: a "pass N" line every 250 passes.
            rate = pass_rate(a.rate_file, 1.0, deadline, lambda d: d.count(b"\n"))
            print(json.dumps({"passes_per_s": rate}))
            return 0
        except Fail as e:
            print("qemu_migrate: " + str(e), file=sys.stderr)
            return 1
    if not a.kernel or not a.work:
        ap.error("--kernel and --work are needed")
    if any(c.isspace() for c in a.kernel):
        # The guest finds its arguments after the first space of QEMU's
        # multiboot command line, "KERNEL ARGS".
        ap.error("--kernel: the path must not contain spaces: '%s'" % a.kernel)
    procs = []
    qmps = []

    def machine(role, extra):
        qmp = os.path.join(a.work, "qmp-%s.sock" % role)
        con = os.path.join(a.work, "con-%s.txt" % role)
        for p in (qmp, con):
            if os.path.exists(p):
                os.unlink(p)
        argv = [a.qemu, "-enable-kvm", "-cpu", a.cpu, "-m", "%dM" % a.size,
                "-nodefaults", "-nographic", "-no-reboot", "-no-user-config",
                "-serial", "none", "-monitor", "none",
                "-kernel", a.kernel, "-append", "%d %d" % (a.region, a.fill),
                "-chardev", "file,id=con,path=" + con,
                "-device", "isa-debugcon,iobase=0xe9,chardev=con",
                "-qmp", "unix:%s,server=on,wait=off" % qmp] + extra
        err = open(os.path.join(a.work, "qemu-%s.err" % role), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                             preexec_fn=die_with_parent)
        err.close()
        procs.append((role, p))
        return p, qmp, con

    def alive(role, p):
        if p.poll() is not None:
            try:
                with open(os.path.join(a.work, "qemu-%s.err" % role), "rb") as f:
                    tail = f.read().decode("utf-8", "replace").strip().splitlines()[-1:]
            except (OSError, IndexError):
                tail = []
            raise Fail("%s QEMU exited with status %d%s" % (role, p.returncode,
                       (": " + tail[0]) if tail else ""))

    def wait(what, cond, limit, *watch):
        end = min(deadline, time.monotonic() + limit)
        while not cond():
            for role, p in watch:
                alive(role, p)
            if time.monotonic() > end:
                raise Fail("timed out waiting for " + what)
            time.sleep(0.02)

    try:
        src, src_qmp, src_con = machine("source", [])
        # Its first mark comes after the fill, as the wasp guest's first line.
        wait("the guest's first mark", lambda: marks(src_con), 120, ("source", src))
        q_src = Qmp(src_qmp, deadline)
        qmps.append(q_src)
        st = q_src.cmd("query-status")
        if st.get("status") != "running":
            raise Fail("source status '%s'" % st.get("status"))
        if a.probe:
            # The rate the guest dirties at, unmigrated.
            rate = pass_rate(src_con, 1.0, deadline, len, lambda: alive("source", src))
            print(json.dumps({"probe": "running", "passes_per_s": rate}))
            return 0

        dst, dst_qmp, dst_con = machine("destination", ["-incoming", "defer"])
        q_dst = Qmp(dst_qmp, deadline)
        qmps.append(q_dst)
        # Port 0: the kernel picks a free one and QEMU names it.
        q_dst.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
        addr = q_dst.cmd("query-migrate").get("socket-address") or []
        port = next((x.get("port") for x in addr if x.get("type") == "inet"), None)
        if not port:
            raise Fail("the destination named no port: %r" % addr)

        # wasp's defaults: 50 ms downtime target, no bandwidth limit (QEMU's
        # default cap is 128 MiB/s; 1 TiB/s is none in practice).
        q_src.cmd("migrate-set-parameters", **{"downtime-limit": a.downtime_ms,
                                                "max-bandwidth": 1 << 40})
        t_migrate = time.time()  # the clock of QMP's event time stamps
        q_src.cmd("migrate", uri="tcp:127.0.0.1:%s" % port)
        info = {}

        def done():
            nonlocal info
            info = q_src.cmd("query-migrate")
            return info.get("status") in ("completed", "failed", "cancelled")
        wait("the migration to end", done, a.timeout, ("source", src), ("destination", dst))
        if info["status"] != "completed":
            raise Fail("migration %s: %s" % (info["status"], info.get("error-desc", "")))

        # The destination runs the guest on: status running, and its marks
        # continue the source's exactly: no mark lost, none repeated.
        wait("the destination to run", lambda: q_dst.cmd("query-status").get("status") == "running",
             30, ("destination", dst))
        wait("the guest's marks at the destination", lambda: len(marks(dst_con)) >= 2, 30,
             ("destination", dst))
        src_marks = marks(src_con)
        dst_marks = marks(dst_con)
        got = src_marks + dst_marks
        bad = next((i for i in range(len(got)) if got[i] != (i + 1) & 0xff), None)
        if bad is not None:
            raise Fail("the guest's marks do not go on: mark %d is %d, not %d (%d at the source)"
                       % (bad + 1, got[bad], (bad + 1) & 0xff, len(src_marks)))
        if q_src.cmd("query-status").get("status") != "postmigrate":
            raise Fail("the source did not stop after migrating")

        # The times as wasp's: total from the start to the destination
        # running the guest, downtime from the guest stopping at the source
        # to it running at the destination. QEMU's own total-time and
        # downtime end when the source has sent everything, before the
        # destination has loaded the last of it and started.
        stop = q_src.event_time("STOP")
        resume = q_dst.event_time("RESUME")
        if stop is None or resume is None:
            raise Fail("no STOP event from the source (%s) or RESUME from the destination (%s)"
                       % (stop, resume))
        ram = info.get("ram", {})
        syncs = ram.get("dirty-sync-count", 0)
        page = ram.get("page-size", 4096)
        sent = ram.get("transferred", 0)
        out = {
            "total_ms": (resume - t_migrate) * 1e3,
            "downtime_ms": (resume - stop) * 1e3,
            "qemu_total_ms": info.get("total-time"),
            "qemu_downtime_ms": info.get("downtime"),
            "setup_ms": info.get("setup-time"),
            # dirty-sync-count counts the dirty bitmap syncs: one at set-up,
            # one before each live pass after the first, one with the guest
            # stopped; the last live check's sync comes before the stop.
            "rounds": max(1, syncs - 2),
            "syncs": syncs,
            "bytes": sent,
            "ram_total": ram.get("total"),
            "normal_pages": ram.get("normal"),
            "zero_pages": ram.get("duplicate"),
            "ratio": (ram.get("normal", 0) * page / sent) if sent else 0,
            "mbps": ram.get("mbps"),
            "dest_marks": len(dst_marks),
        }
        print(json.dumps(out))
        return 0
    except Fail as e:
        print("qemu_migrate: " + str(e), file=sys.stderr)
        return 1
    except (OSError, socket.timeout, ValueError) as e:
        print("qemu_migrate: %s" % e, file=sys.stderr)
        return 1
    finally:
        for q in qmps:
            q.close()
        for _, p in procs:
            if p.poll() is None:
                p.kill()
        for _, p in procs:
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
