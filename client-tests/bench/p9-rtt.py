#!/usr/bin/env python3
"""One 9P client on loopback, one request at a time: the round trip a server adds per request, without
a guest's time around it. Attaches to ANAME, then N times: walk to tree/dNNN/fNNN (a new fid), getattr
of it, clunk of it. Prints the median round trip of each in microseconds: "WALK GETATTR CLUNK".

  p9-rtt.py HOST PORT ANAME N [UID]  (the tree p9-bench.sh makes: tree/d000..d099/f000..f199;
                                      UID: attach as that user, default 0)
"""
import socket
import statistics
import struct
import sys
import time

host, port, aname, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
uid = int(sys.argv[5]) if len(sys.argv) > 5 else 0
sock = socket.create_connection((host, port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def s(text):
    b = text.encode()
    return struct.pack('<H', len(b)) + b


def recv_exactly(k):
    out = b''
    while len(out) < k:
        chunk = sock.recv(k - len(out))
        if not chunk:
            sys.exit('p9-rtt: the server closed the connection')
        out += chunk
    return out


def rpc(mtype, body, tag=1):
    sock.sendall(struct.pack('<IBH', 7 + len(body), mtype, tag) + body)
    size, rtype, _ = struct.unpack('<IBH', recv_exactly(7))
    rest = recv_exactly(size - 7)
    if rtype == 7:   # Rlerror
        sys.exit('p9-rtt: request type %d failed: errno %d' % (mtype, struct.unpack('<I', rest[:4])[0]))
    if rtype != mtype + 1:
        sys.exit('p9-rtt: reply type %d to request type %d' % (rtype, mtype))
    return rest


TVERSION, TATTACH, TWALK, TGETATTR, TCLUNK = 100, 104, 110, 24, 120
rpc(TVERSION, struct.pack('<I', 262144) + s('9P2000.L'), 0xFFFF)
rpc(TATTACH, struct.pack('<II', 0, 0xFFFFFFFF) + s('root' if uid == 0 else 'u%d' % uid) + s(aname) + struct.pack('<I', uid))
walk, getattr, clunk = [], [], []
for i in range(n):
    t0 = time.perf_counter_ns()
    rpc(TWALK, struct.pack('<IIH', 0, 1, 3) + s('tree') + s('d%03d' % (i % 100)) + s('f%03d' % (i * 7 % 200)))
    t1 = time.perf_counter_ns()
    rpc(TGETATTR, struct.pack('<IQ', 1, 0x3fff))
    t2 = time.perf_counter_ns()
    rpc(TCLUNK, struct.pack('<I', 1))
    t3 = time.perf_counter_ns()
    walk.append(t1 - t0)
    getattr.append(t2 - t1)
    clunk.append(t3 - t2)
print(' '.join('%.1f' % (statistics.median(v) / 1000) for v in (walk, getattr, clunk)))
