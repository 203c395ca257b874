#!/usr/bin/env python3
"""fake_runner.py SOCKET LOG [drop]: a socket that answers like a wasp
runner (the attack of docs/security.md, "Local users"). Every message it
gets goes to LOG, with "+fd" when a file descriptor came along. With
"drop", it binds as root and becomes uid 65534 before listen(), so its
peer credentials name another user though the directory is root's."""
import os
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
out = open(log, "a", buffering=1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path)
if len(sys.argv) > 3 and sys.argv[3] == "drop":
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
s.listen(4)
out.write("listening\n")
while True:
    c, _ = s.accept()
    while True:
        msg, fds, _, _ = socket.recv_fds(c, 4096, 4)
        if not msg:
            break
        out.write(msg.decode(errors="replace").strip() + (" +fd" if fds else "") + "\n")
        for fd in fds:
            os.write(fd, b"planted")  # what a hijacker would do with it
            os.close(fd)
        if msg.startswith(b"ping"):
            c.send(b"ok wasp-run pid=1 name=job proto=2\n")
        elif msg.startswith(b"checkpoint"):
            c.send(b"ok bytes=7 ms=1.000 id=- kind=full\n")
        else:
            c.send(b"ok bytes=7 ms=1.000 stopped=1 id=- kind=full\n")
    c.close()
