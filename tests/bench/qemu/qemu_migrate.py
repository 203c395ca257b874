#!/usr/bin/env python3
"""qemu_migrate.py: one QEMU/KVM live migration over loopback, for
bench_migrate.sh, or one checkpoint to a file and restore from it, for
bench_qemu_ckpt.sh (README.md beside them).

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

--cpu takes a comma-separated list of CPU models: the source boots with the
first one whose QEMU runs the guest (QEMU 7.2 aborts with `-cpu host` on
some KVM hosts, kvm_buf_set_msrs: Assertion failed, where `-cpu EPYC`
runs); the JSON names the model used ("cpu") and why the ones before it
were refused ("cpu_refused"). The destination uses the same model.

--checkpoint (guest touch_mb.bin, the twin of touch.asm): once the guest has
filled its RAM, stop it, `migrate` to a file (exec:cat > FILE: QEMU 7.2 has
no file: URI), fsync the file, end that QEMU; then a fresh QEMU with
`-incoming defer` loads it (`migrate-incoming exec:cat FILE`) and runs it
on. Checked: both migrations completed, the file holds at least the bytes
the guest filled, the guest's fill reads back the same (seed, first and
last word, through QMP), and its marks go on at the destination exactly
where the source left them. Times (the driver's CLOCK_MONOTONIC):
save_ms, from sending `migrate` to QEMU's MIGRATION event "completed" plus
the fsync of the file (save_fsync_ms); restore_ms, from sending
`migrate-incoming` to the destination's "completed" (QEMU already running,
its machine built); restore_process_ms, from starting the QEMU process to
the same point.

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

    def wait_event(self, name, pred, deadline):
        """Reads until an event NAME with pred(data) arrives (or one is
        already queued); returns the monotonic time it was read at."""
        for i, e in enumerate(self.events):
            if e["event"] == name and pred(e.get("data", {})):
                del self.events[i]
                return time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("timed out waiting for the QMP event " + name)
            self.sock.settimeout(min(left, 30))
            r = self.read()
            if "event" in r:
                if r["event"] == name and pred(r.get("data", {})):
                    self.sock.settimeout(30)
                    return time.monotonic()
                self.events.append(r)

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

# touch_mb.asm's RESULT block (keep in step with it): the image starts at
# 1 MiB, the block 0x800 into it; the fill runs from FILL to the RAM top.
RESULT = 0x100800
FILL = 0x120000
DONE_MAGIC = 0x454e4f44


def xorshift64(x):
    x ^= (x << 13) & 0xffffffffffffffff
    x ^= x >> 7
    x ^= (x << 17) & 0xffffffffffffffff
    return x


def children(pid):
    """The child processes of PID (all its threads'), from /proc."""
    kids = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                kids += f.read().split()
    except OSError:
        pass
    return kids


def read_u64(q, addr):
    """A word of guest-physical memory, through the human monitor's xp."""
    r = q.cmd("human-monitor-command", **{"command-line": "xp /1gx 0x%x" % addr})
    try:
        return int(r.split(":")[1].split()[0], 16)
    except (IndexError, ValueError):
        raise Fail("xp 0x%x: unexpected answer %r" % (addr, r))


def fill_state(q):
    """touch_mb's RESULT block: done, seed, first, last, top."""
    return [read_u64(q, RESULT + 8 * i) for i in range(5)]


def checkpoint(a, deadline, boot_source, machine, wait, alive, qmps, procs, cpu_info):
    """--checkpoint: module docstring. Returns the JSON object."""
    path = os.path.join(a.work, "ckpt.qemu")
    if os.path.exists(path):
        os.unlink(path)
    src, src_qmp, src_con = boot_source()
    q_src = Qmp(src_qmp, deadline)
    qmps.append(q_src)
    done, seed, first, last, top = fill_state(q_src)
    # The first mark follows the fill, so the fill is done and says so.
    if done != DONE_MAGIC:
        raise Fail("the guest marked before its fill was done (0x%x)" % done)
    # The RAM top as QEMU's multiboot map gives it: 128 KiB under the end
    # of RAM in QEMU 7.2.
    if not (a.size << 20) - (1 << 20) <= top <= a.size << 20 or first != xorshift64(seed):
        raise Fail("the guest filled up to 0x%x (RAM 0x%x), first word 0x%x (want 0x%x)"
                   % (top, a.size << 20, first, xorshift64(seed)))
    if read_u64(q_src, top - 8) != last or read_u64(q_src, FILL) != first:
        raise Fail("the guest's fill does not hold its first and last words")
    filled = top - FILL

    # Stopped first, as wasp's save pauses its guest before saving.
    q_src.cmd("stop")
    q_src.cmd("migrate-set-capabilities",
              capabilities=[{"capability": "events", "state": True}])
    # No bandwidth cap (QEMU's default is 128 MiB/s; 1 TiB/s is none).
    q_src.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    src_marks = marks(src_con)
    t0 = time.monotonic()
    q_src.cmd("migrate", uri="exec:cat > " + path)
    t1 = q_src.wait_event("MIGRATION", lambda d: d.get("status") in ("completed", "failed"),
                          deadline)
    # "completed" comes before QEMU closes the pipe: the file is whole
    # when the exec: child (sh, cat) has written it and exited, which QEMU
    # waits for on close. So the save ends when QEMU has no child left.
    end = min(deadline, time.monotonic() + 60)
    while children(src.pid):
        alive("source", src)
        if time.monotonic() > end:
            raise Fail("the source's exec: child did not end: %s" % children(src.pid))
        time.sleep(0.0005)
    t1 = time.monotonic()
    info = q_src.cmd("query-migrate")
    if info.get("status") != "completed":
        raise Fail("migration to the file %s: %s" % (info.get("status"), info.get("error-desc", "")))
    # The file as durable as wasp's: its save fsyncs the file and its
    # directory.
    t2 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    dfd = os.open(a.work, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    t3 = time.monotonic()
    if size < filled:
        raise Fail("the checkpoint file has %d bytes, the guest filled %d" % (size, filled))
    if marks(src_con) != src_marks:
        raise Fail("the stopped guest went on marking")
    sent = info.get("ram", {}).get("transferred", 0)
    # The source is gone before the restore: the file is all there is.
    q_src.close()
    qmps.remove(q_src)
    src.kill()
    src.wait()

    tp = time.monotonic()
    dst, dst_qmp, dst_con = machine("destination", ["-incoming", "defer"])
    q_dst = Qmp(dst_qmp, deadline)
    qmps.append(q_dst)
    q_dst.cmd("migrate-set-capabilities",
              capabilities=[{"capability": "events", "state": True}])
    t4 = time.monotonic()
    q_dst.cmd("migrate-incoming", uri="exec:cat " + path)
    t5 = q_dst.wait_event("MIGRATION", lambda d: d.get("status") in ("completed", "failed"),
                          deadline)
    info = q_dst.cmd("query-migrate")
    if info.get("status") != "completed":
        raise Fail("restore from the file %s: %s" % (info.get("status"), info.get("error-desc", "")))
    # It was stopped when saved, so QEMU keeps it paused (the stream
    # carries the run state): `cont`, and it runs on from where it stopped,
    # its fill intact, its marks continuing the source's.
    st = q_dst.cmd("query-status").get("status")
    if st != "paused":
        raise Fail("the restored guest is '%s', not paused as it was saved" % st)
    q_dst.cmd("cont")
    wait("the restored guest to run", lambda: q_dst.cmd("query-status").get("status") == "running",
         30, ("destination", dst))
    wait("the restored guest's marks", lambda: len(marks(dst_con)) >= 2, 60, ("destination", dst))
    if fill_state(q_dst) != [done, seed, first, last, top] or read_u64(q_dst, top - 8) != last \
            or read_u64(q_dst, FILL) != first:
        raise Fail("the restored guest's memory differs from the source's")
    got = src_marks + marks(dst_con)
    bad = next((i for i in range(len(got)) if got[i] != (i + 1) & 0xff), None)
    if bad is not None:
        raise Fail("the guest's marks do not go on after the restore: mark %d is %d, not %d "
                   "(%d at the source)" % (bad + 1, got[bad], (bad + 1) & 0xff, len(src_marks)))
    out = {
        "size_mib": a.size,
        "filled_bytes": filled,
        "save_ms": (t3 - t0 - (t2 - t1)) * 1e3,
        "save_migrate_ms": (t1 - t0) * 1e3,
        "save_fsync_ms": (t3 - t2) * 1e3,
        "restore_ms": (t5 - t4) * 1e3,
        "restore_process_ms": (t5 - tp) * 1e3,
        "bytes": size,
        "sent": sent,
        "dest_marks": len(marks(dst_con)),
    }
    out.update(cpu_info())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--kernel")
    ap.add_argument("--size", type=int, default=16, help="MiB")
    ap.add_argument("--region", type=int, default=1024, help="KiB")
    ap.add_argument("--fill", type=int, default=0, help="MiB")
    ap.add_argument("--downtime-ms", type=int, default=50)
    ap.add_argument("--cpu", default="host",
                    help="CPU models to try in order, comma-separated (e.g. host,EPYC,qemu64)")
    ap.add_argument("--accel", default="kvm", choices=("kvm", "tcg"),
                    help="tcg: only to try this driver where there is no KVM")
    ap.add_argument("--work")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--checkpoint", action="store_true",
                    help="checkpoint to a file and restore (guest touch_mb.bin)")
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

    cpus = [c for c in a.cpu.split(",") if c]
    if not cpus:
        ap.error("--cpu: no CPU model")
    chosen = {"cpu": cpus[0], "refused": []}

    def machine(role, extra):
        qmp = os.path.join(a.work, "qmp-%s.sock" % role)
        con = os.path.join(a.work, "con-%s.txt" % role)
        for p in (qmp, con):
            if os.path.exists(p):
                os.unlink(p)
        argv = [a.qemu, "-accel", a.accel, "-cpu", chosen["cpu"], "-m", "%dM" % a.size,
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
            how = ("died of signal %d" % -p.returncode if p.returncode < 0
                   else "exited with status %d" % p.returncode)
            raise Fail("%s QEMU %s%s" % (role, how, (": " + tail[0]) if tail else ""))

    def wait(what, cond, limit, *watch):
        end = min(deadline, time.monotonic() + limit)
        while not cond():
            for role, p in watch:
                alive(role, p)
            if time.monotonic() > end:
                raise Fail("timed out waiting for " + what)
            time.sleep(0.02)

    def boot_source():
        """The source QEMU with the first CPU model of --cpu that runs the
        guest up to its first mark: a QEMU that exits before it (an abort
        at start-up, a model KVM refuses) is that model refused, and the
        next is tried; one that runs but shows no mark is a failure."""
        for i, cpu in enumerate(cpus):
            chosen["cpu"] = cpu
            src, src_qmp, src_con = machine("source", [])
            try:
                # Its first mark comes after the fill, as the wasp guest's first line.
                wait("the guest's first mark", lambda: marks(src_con), 120, ("source", src))
                return src, src_qmp, src_con
            except Fail as e:
                if src.poll() is None:
                    raise
                chosen["refused"].append("%s: %s" % (cpu, e))
                procs.pop()
                if i == len(cpus) - 1:
                    raise Fail("no CPU model ran the guest: " + "; ".join(chosen["refused"]))
        raise Fail("no CPU model")  # not reached

    def cpu_info():
        return {"cpu": chosen["cpu"], "cpu_refused": "; ".join(chosen["refused"])}

    try:
        if a.checkpoint:
            print(json.dumps(checkpoint(a, deadline, boot_source, machine, wait, alive,
                                        qmps, procs, cpu_info)))
            return 0
        src, src_qmp, src_con = boot_source()
        q_src = Qmp(src_qmp, deadline)
        qmps.append(q_src)
        st = q_src.cmd("query-status")
        if st.get("status") != "running":
            raise Fail("source status '%s'" % st.get("status"))
        if a.probe:
            # The rate the guest dirties at, unmigrated.
            rate = pass_rate(src_con, 1.0, deadline, len, lambda: alive("source", src))
            out = {"probe": "running", "passes_per_s": rate}
            out.update(cpu_info())
            print(json.dumps(out))
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
        out.update(cpu_info())
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
