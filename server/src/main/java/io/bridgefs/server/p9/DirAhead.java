package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.Qid;
import io.bridgefs.server.posix.Dirents;
import io.bridgefs.server.posix.Posix;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.io.IOException;

/**
 * The first entries of a directory opened on the network thread, read by the I/O pool right after the
 * open (issue 11), so that the Treaddir that follows, and for a directory that fits the empty one that
 * ends its listing, are answered on the network thread. Kept encoded as Rreaddir carries them: at most
 * {@link #SIZE} bytes a fid, within the server's budget for them ({@link P9ServerContext#holdAhead}).
 * Guarded by the connection's {@link P9Ops}.
 *
 * <p>What a client reads from it is the directory as it was right after the open; POSIX leaves entries
 * added or removed after opendir to the implementation, and a rewind (offset 0 once read) reads the
 * directory again.
 */
final class DirAhead {
    static final int SIZE = 16 << 10;
    private static final int ENTRY_HEAD = Qid.SIZE + 8 + 1 + 2;     // qid, offset, type, name length

    private final ByteBuf entries;     // heap: its memory is the budget's, no reference to count
    /** The Treaddir offset it answers next: 0, then the offset of the last entry it gave. */
    long start;
    /** Whether the directory ended after its entries. */
    final boolean eof;

    private DirAhead(ByteBuf entries, boolean eof) {
        this.entries = entries;
        this.eof = eof;
    }

    /**
     * The I/O pool reads the first entries of {@code f}, opened now on the network thread, once its Rlopen
     * is written: handed over earlier, the woken I/O thread could take the CPU from the network thread
     * before the reply is out (on two cores beside a guest, a fast Tlopen then took 93 us, p50). The task
     * uses the fid ({@link P9Ops#holdAgain}), so a clunk meanwhile leaves its descriptor open until the
     * task ends, and the entries are then let go.
     */
    static void soon(P9Ops ops, P9ServerContext server, Fid f) {
        if (!server.holdAhead()) return;
        if (!ops.holdAgain(f)) {
            server.releaseAhead();
            return;
        }
        Runnable giveBack = () -> {
            server.releaseAhead();
            ops.doneFast(f);
        };
        try {
            ops.afterReplies.execute(() -> {
                try {
                    server.executor.execute(() -> readFor(ops, server, f));      // not a 9P request: it runs as the server
                } catch (java.util.concurrent.RejectedExecutionException e) {
                    giveBack.run();
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            giveBack.run();             // the event loop is shutting down
        }
    }

    private static void readFor(P9Ops ops, P9ServerContext server, Fid f) {
        DirAhead a = null;
        try {
            synchronized (f) {                  // as Treaddir: one reader of the descriptor at a time
                if (f.dirFd >= 0) a = read(f.dirFd, f.export.mapped());
            }
        } catch (IOException | RuntimeException e) {
            a = null;                           // the Treaddir reads it again and reports what fails
        } finally {
            if (a == null || !keep(ops, f, a)) server.releaseAhead();
            ops.doneFast(f);
        }
    }

    /** Entries read ahead become {@code f}'s; false if it is no longer open (the caller gives back their budget). */
    private static boolean keep(P9Ops ops, Fid f, DirAhead a) {
        synchronized (ops) {
            if (f.dropped || f.dirFd < 0 || f.ahead != null) return false;
            f.ahead = a;
            return true;
        }
    }

    /**
     * Treaddir from {@code f}'s entries read ahead, into {@code out}: false where the directory must be
     * read instead (none read ahead, another offset, all given with more to come, or no room for one).
     * Those that no longer match the client's offset are let go.
     */
    static boolean serve(P9Ops ops, P9ServerContext server, Fid f, long offset, int count, ByteBuf out) {
        synchronized (ops) {
            DirAhead a = f.ahead;
            if (a == null) return false;
            if (a.start != offset || a.exhausted() && !a.eof) {
                drop(server, f);
                return false;
            }
            if (a.take(out, count) == 0 && !a.exhausted()) return false;
            if (a.exhausted() && !a.eof) drop(server, f);
            return true;
        }
    }

    /** {@code f}'s entries read ahead, if any, are let go (with the connection's lock held). */
    static void drop(P9ServerContext server, Fid f) {
        if (f.ahead == null) return;
        f.ahead = null;
        server.releaseAhead();
    }

    /** Reads entries of {@code dirFd} from its start, up to {@link #SIZE} bytes of them. */
    static DirAhead read(int dirFd, boolean mapped) throws IOException {
        if (Posix.lseek(dirFd, 0, 0) < 0) throw new IOException("lseek of a directory failed");
        ByteBuf b = Unpooled.buffer(SIZE, SIZE);
        boolean eof = encode(dirFd, mapped, b, SIZE);
        return new DirAhead(b, eof);
    }

    /**
     * Encodes the entries of {@code dirFd} from its position into {@code out}, as Rreaddir carries them,
     * until {@code room} bytes would be exceeded or the directory ends: whether it ended. Entries read but
     * not encoded are read again by the next Treaddir, from the last encoded entry's offset.
     */
    static boolean encode(int dirFd, boolean mapped, ByteBuf out, int room) throws IOException {
        int from = out.writerIndex();
        Dirents d = Dirents.mine();
        while (true) {
            // a host entry takes about the room its 9P entry does: ask for no more than is left
            int n = d.read(dirFd, room - (out.writerIndex() - from));
            if (n <= 0) return true;
            for (int pos = 0; pos < n; pos += d.reclen(pos)) {
                int dtype = d.type(pos);
                if (mapped && dtype != 4) dtype = 0;    // DT_UNKNOWN: the guest's type is in the xattrs, as QEMU says
                byte[] name = d.name(pos);
                if (out.writerIndex() - from + ENTRY_HEAD + name.length > room) return false;
                int qt = dtype == 4 ? Qid.QTDIR : dtype == 10 ? Qid.QTSYMLINK : Qid.QTFILE;
                out.writeByte(qt).writeIntLE(0).writeLongLE(d.ino(pos));
                out.writeLongLE(d.off(pos)).writeByte(dtype).writeShortLE(name.length).writeBytes(name);
            }
        }
    }

    /** Copies whole entries, at most {@code count} bytes of them, into {@code out}; {@link #start} moves past them. Bytes copied. */
    int take(ByteBuf out, int count) {
        int from = entries.readerIndex();
        int pos = from;
        while (pos < entries.writerIndex()) {
            int len = ENTRY_HEAD + entries.getUnsignedShortLE(pos + ENTRY_HEAD - 2);
            if (pos + len - from > count) break;
            start = entries.getLongLE(pos + Qid.SIZE);
            pos += len;
        }
        out.writeBytes(entries, from, pos - from);
        entries.readerIndex(pos);
        return pos - from;
    }

    /** Whether every entry it holds has been given. */
    boolean exhausted() {
        return !entries.isReadable();
    }
}
