#!/usr/bin/env python3
"""A TCP proxy in front of nfs-ganesha < 6.2 that turns NFSv4.2 READ_PLUS into READ.

Why: Linux >= 6.6 (CONFIG_NFS_V4_2_READ_PLUS=y, as in the guest's Debian 6.12 kernel) reads
with READ_PLUS on every NFSv4.2 mount. nfs-ganesha before 6.2 (Debian bookworm has 4.3,
bookworm-backports 5.9) handles READ_PLUS as a plain read into an uninitialised reply, so every
read over vers=4.2 fails with EIO in the client (nfs-ganesha issue #1188; fixed upstream by
commit 24da5c30 "Initialize read_arg->info properly for read_plus"). The write-path tests use
ganesha as the reference server, so for vers=4.2 they reach it through this proxy:

  client --COMPOUND{SEQUENCE, PUTFH, READ_PLUS(stateid, offset, count)}--> proxy
  proxy  --COMPOUND{SEQUENCE, PUTFH, READ(stateid, offset, count)}-------> ganesha
  ganesha --READ4res{eof, data}--> proxy --READ_PLUS4res{eof, [DATA(offset, data)]}--> client

READ_PLUS4args and READ4args have the same layout, so only the opcode changes on the way in;
on the way back the READ result becomes one data segment at the requested offset. Everything
else (other compounds, the NFSv4.1 backchannel, NFSv3, MOUNT) passes through byte for byte.
One upstream connection per client connection; when either side closes, both close (so a
killed server looks to the client like a dropped connection, as it would without the proxy).

  readplus-proxy.py LISTEN_PORT UPSTREAM_PORT      (both on 127.0.0.1)
Prints "readplus-proxy: listening" when ready; on SIGTERM prints how many READ_PLUS it rewrote.
"""
import asyncio
import signal
import struct
import sys

OP_SEQUENCE, OP_PUTFH, OP_READ, OP_READ_PLUS = 53, 22, 25, 68
NFS_PROG = 100003
stats = {"rewritten": 0, "connections": 0, "unparsed_replies": 0}


def log(msg):
    print(f"readplus-proxy: {msg}", file=sys.stderr, flush=True)


def pad4(n):
    return (n + 3) & ~3


async def read_record(reader):
    """One RPC record (all fragments); None at EOF."""
    parts = []
    while True:
        try:
            hdr = await reader.readexactly(4)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        (word,) = struct.unpack(">I", hdr)
        try:
            parts.append(await reader.readexactly(word & 0x7FFFFFFF))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        if word & 0x80000000:
            return b"".join(parts)


def frame(record):
    return struct.pack(">I", 0x80000000 | len(record)) + record


def rewrite_call(rec, pending):
    """A COMPOUND whose ops are SEQUENCE, PUTFH, READ_PLUS: READ_PLUS becomes READ."""
    try:
        xid, mtype, _rpcvers, prog, vers, proc = struct.unpack_from(">6I", rec, 0)
        if mtype != 0 or prog != NFS_PROG or vers != 4 or proc != 1:
            return rec
        p = 24
        for _ in range(2):  # credential, verifier
            _flavor, n = struct.unpack_from(">2I", rec, p)
            p += 8 + pad4(n)
        (taglen,) = struct.unpack_from(">I", rec, p)
        p += 4 + pad4(taglen)
        minor, nops = struct.unpack_from(">2I", rec, p)
        p += 8
        if minor != 2:
            return rec
        for _ in range(nops):
            (op,) = struct.unpack_from(">I", rec, p)
            if op == OP_SEQUENCE:
                p += 4 + 32
            elif op == OP_PUTFH:
                (n,) = struct.unpack_from(">I", rec, p + 4)
                p += 8 + pad4(n)
            elif op == OP_READ_PLUS:
                (offset,) = struct.unpack_from(">Q", rec, p + 4 + 16)
                pending[xid] = offset
                stats["rewritten"] += 1
                return rec[:p] + struct.pack(">I", OP_READ) + rec[p + 4:]
            else:
                return rec
    except struct.error:
        pass
    return rec


def rewrite_reply(rec, pending):
    """The reply to a rewritten call: the READ result becomes a READ_PLUS result."""
    if len(rec) < 8:
        return rec
    xid, mtype = struct.unpack_from(">2I", rec, 0)
    if mtype != 1 or xid not in pending:
        return rec
    offset = pending.pop(xid)
    try:
        p = 8
        (reply_stat,) = struct.unpack_from(">I", rec, p)
        p += 4
        if reply_stat != 0:
            return rec
        _flavor, n = struct.unpack_from(">2I", rec, p)
        p += 8 + pad4(n)
        (accept_stat,) = struct.unpack_from(">I", rec, p)
        p += 4
        if accept_stat != 0:
            return rec
        p += 4  # compound status
        (taglen,) = struct.unpack_from(">I", rec, p)
        p += 4 + pad4(taglen)
        (nres,) = struct.unpack_from(">I", rec, p)
        p += 4
        for _ in range(nres):
            op, status = struct.unpack_from(">2I", rec, p)
            if op == OP_SEQUENCE:
                p += 8 + (36 if status == 0 else 0)
            elif op == OP_PUTFH:
                p += 8
            elif op == OP_READ:
                head = rec[:p] + struct.pack(">2I", OP_READ_PLUS, status)
                if status != 0:
                    return head + rec[p + 8:]
                eof, n = struct.unpack_from(">2I", rec, p + 8)
                data = rec[p + 16:p + 16 + pad4(n)]
                rest = rec[p + 16 + pad4(n):]
                if n == 0:
                    body = struct.pack(">2I", eof, 0)
                else:
                    body = struct.pack(">3IQI", eof, 1, 0, offset, n) + data
                return head + body + rest
            else:
                break
    except struct.error:
        pass
    stats["unparsed_replies"] += 1
    log(f"could not rewrite the reply to xid {xid:#x}; passed through")
    return rec


async def pump(reader, writer, fn, pending):
    try:
        while True:
            rec = await read_record(reader)
            if rec is None:
                break
            writer.write(frame(fn(rec, pending)))
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def handle(creader, cwriter, upstream_port):
    stats["connections"] += 1
    try:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        cwriter.close()  # the server is down: drop the client, as a refused connect would
        return
    pending = {}
    await asyncio.gather(pump(creader, uwriter, rewrite_call, pending),
                         pump(ureader, cwriter, rewrite_reply, pending))


async def main():
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.start_server(lambda r, w: handle(r, w, upstream_port), "127.0.0.1", listen_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    log("listening")
    async with server:
        await stop.wait()
    log(f"{stats['rewritten']} READ_PLUS rewritten to READ over {stats['connections']} connections; "
        f"{stats['unparsed_replies']} replies not understood")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main())
