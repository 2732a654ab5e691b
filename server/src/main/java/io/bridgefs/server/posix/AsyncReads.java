package io.bridgefs.server.posix;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import java.nio.ByteBuffer;

/**
 * Many reads with one system call: Linux native AIO on O_DIRECT descriptors. Reads are queued (each a
 * preadv into page buffers), then all submitted with one {@code io_submit}, so the block layer hands
 * them to the disk together: one doorbell for the lot instead of one per read (in a virtual machine
 * each costs a trip to the hypervisor). Completions are reaped as they come. One thread uses an
 * instance at a time; reads in flight must be reaped before {@link #reset} or {@link #close}.
 */
public final class AsyncReads implements AutoCloseable {
    public static final int MAX_READS = 64;
    public static final int MAX_PAGES = 32;                // buffers per read
    private static final int IOCB = 64, EVENT = 32, IOVEC = 16;
    private static final short IOCB_CMD_PREADV = 7;
    private final long ctx;
    private final Memory iocbs = new Memory((long) IOCB * MAX_READS);
    private final Memory pointers = new Memory(8L * MAX_READS);
    private final Memory iovecs = new Memory((long) IOVEC * MAX_PAGES * MAX_READS);
    private final Memory events = new Memory((long) EVENT * MAX_READS);
    private int queued, submitted, reaped;
    private boolean closed;

    private AsyncReads(long ctx) {
        this.ctx = ctx;
    }

    /** A context; throws where the kernel (or this architecture) has no native AIO, or its limit is reached. */
    public static AsyncReads open() throws Posix.ErrnoException {
        return new AsyncReads(Posix.ioSetup(MAX_READS));
    }

    /** How many more reads can be queued. */
    public int room() {
        return MAX_READS - queued;
    }

    /**
     * Queues a read of {@code count} whole buffers (direct, aligned for O_DIRECT) from {@code fd} at
     * {@code position}; returns its number, reported by {@link #reap}.
     */
    public int add(int fd, ByteBuffer[] buffers, int count, long position) {
        if (queued == MAX_READS || count < 1 || count > MAX_PAGES) throw new IllegalArgumentException("read " + count + " at slot " + queued);
        int i = queued;
        long iov = (long) IOVEC * MAX_PAGES * i;
        for (int k = 0; k < count; k++) {
            iovecs.setPointer(iov + IOVEC * k, Posix.at(buffers[k]));
            iovecs.setLong(iov + IOVEC * k + 8, buffers[k].remaining());
        }
        long cb = (long) IOCB * i;
        iocbs.share(cb).clear(IOCB);
        iocbs.setLong(cb, i);                                         // aio_data
        iocbs.setShort(cb + 16, IOCB_CMD_PREADV);                     // aio_lio_opcode
        iocbs.setInt(cb + 20, fd);                                    // aio_fildes
        iocbs.setLong(cb + 24, Pointer.nativeValue(iovecs) + iov);    // aio_buf: the iovec array
        iocbs.setLong(cb + 32, count);                                // aio_nbytes: its length
        iocbs.setLong(cb + 40, position);                             // aio_offset
        pointers.setLong(8L * i, Pointer.nativeValue(iocbs) + cb);
        queued++;
        return i;
    }

    /**
     * Submits the queued reads. Returns how many are in flight in all; reads numbered from there on
     * were refused (the kernel's AIO limit, a descriptor it cannot read asynchronously) and are the
     * caller's to read otherwise.
     */
    public int submit() {
        while (submitted < queued) {
            int n;
            try {
                n = Posix.ioSubmit(ctx, queued - submitted, Pointer.nativeValue(pointers) + 8L * submitted);
            } catch (Posix.ErrnoException e) {
                break;
            }
            if (n <= 0) break;
            submitted += n;
        }
        return submitted;
    }

    /** Reads submitted and not yet reaped. */
    public int inFlight() {
        return submitted - reaped;
    }

    /**
     * Waits for at least one read in flight to finish; stores the numbers and results (bytes read, or
     * a negative errno) of those that did and returns how many. 0 if nothing is in flight.
     */
    public int reap(int[] which, long[] results) throws Posix.ErrnoException {
        if (inFlight() == 0) return 0;
        int n;
        do {
            n = Posix.ioGetevents(ctx, 1, Math.min(inFlight(), Math.min(which.length, MAX_READS)), Pointer.nativeValue(events));
        } while (n == 0);
        for (int k = 0; k < n; k++) {
            which[k] = (int) events.getLong((long) EVENT * k);
            results[k] = events.getLong((long) EVENT * k + 16);
        }
        reaped += n;
        return n;
    }

    /** Ready for another batch (nothing in flight). */
    public void reset() {
        if (inFlight() != 0) throw new IllegalStateException(inFlight() + " reads in flight");
        queued = submitted = reaped = 0;
    }

    /** Frees the context; waits for any read still in flight (the kernel writes into its buffers until then). */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Posix.ioDestroy(ctx);
    }
}
