package io.bridgefs.server.net;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The server-wide budget for request and reply bytes (every connection of both paths). A reservation
 * that does not fit is refused; the connection then stops reading and asks to be called back
 * ({@link #whenAvailable}) once bytes are released. One reservation is always granted when nothing is
 * reserved, so a single request larger than the budget cannot wait forever.
 *
 * <p>Large frames reserved before their bytes have arrived ({@link #tryReserveFrame}) may hold at most
 * half of it together: clients that announce large writes and then send nothing, or send slowly, can
 * hold back other large writes (until the guard cuts them off, see {@link ConnectionGuard}), never the
 * reads and small requests of everyone else. When a reservation was last refused tells the guard
 * whether others are waiting for memory.
 */
public final class MemoryBudget {
    private final long limit;
    private final AtomicLong used = new AtomicLong();
    private final AtomicLong frames = new AtomicLong();
    private final ConcurrentLinkedQueue<Runnable> waiters = new ConcurrentLinkedQueue<>();
    private volatile long lastRefusal = System.nanoTime() - (1L << 62);

    public MemoryBudget(long limit) {
        this.limit = limit;
    }

    public boolean tryReserve(long n) {
        while (true) {
            long u = used.get();
            if (u > 0 && u + n > limit) return refused();
            if (used.compareAndSet(u, u + n)) return true;
        }
    }

    /** A large frame about to be read: within the budget and within half of it for such frames together. */
    public boolean tryReserveFrame(long n) {
        while (true) {
            long f = frames.get();
            if (f > 0 && f + n > limit / 2) return refused();
            if (!frames.compareAndSet(f, f + n)) continue;
            if (tryReserve(n)) return true;
            frames.addAndGet(-n);
            return false;
        }
    }

    /** A reserved frame has been read whole: its bytes stay reserved (as a request's) but no longer count as a frame's. */
    public void frameRead(long n) {
        frames.addAndGet(-n);
        wakeWaiters();
    }

    /** A reserved frame's bytes given back unread or not kept: no longer reserved at all. */
    public void releaseFrame(long n) {
        frames.addAndGet(-n);
        release(n);
    }

    private boolean refused() {
        lastRefusal = System.nanoTime();
        return false;
    }

    /** Whether a reservation was refused within the last {@code nanos}: someone waits, or waited, for memory. */
    public boolean refusedWithin(long nanos) {
        return System.nanoTime() - lastRefusal < nanos;
    }

    public void release(long n) {
        used.addAndGet(-n);
        wakeWaiters();
    }

    /**
     * Runs {@code r} (once) when bytes are next released, or at once if {@code needed} bytes fit now (a
     * release may have happened since the caller's refusal). Never at once otherwise: a waiter that still
     * does not fit would register again and spin.
     */
    public void whenAvailable(long needed, Runnable r) {
        waiters.add(r);
        if (fits(needed)) wakeWaiters();
    }

    /** {@link #whenAvailable} for a large frame, which must also fit the frames' half. */
    public void whenFrameFits(long needed, Runnable r) {
        waiters.add(r);
        long f = frames.get();
        if ((f == 0 || f + needed <= limit / 2) && fits(needed)) wakeWaiters();
    }

    /** Whether a connection waits to be called back: someone wants memory now. */
    public boolean hasWaiters() {
        return !waiters.isEmpty();
    }

    /** A connection that ended no longer waits. */
    public void forget(Runnable r) {
        waiters.remove(r);
    }

    private boolean fits(long needed) {
        long u = used.get();
        return u == 0 || u + needed <= limit;
    }

    private void wakeWaiters() {
        Runnable r;
        while ((r = waiters.poll()) != null) r.run();
    }

    public long used() { return used.get(); }

    /** Bytes reserved for large frames not yet read whole. */
    public long frames() { return frames.get(); }

    public long limit() { return limit; }
}
